#!/usr/bin/env node
'use strict'
// A STREAM payment (ilp-protocol-stream) from alice to bob, both child accounts of the connector.
// Both sides learn their addresses from the connector over IL-DCP. Prints one JSON summary line;
// exit 0 iff all checks passed.

const crypto = require('crypto')
const BtpPlugin = require('ilp-plugin-btp')
require('./lib/stream_node20_shim')
const { createServer, createConnection } = require('ilp-protocol-stream')
const { DEFAULT_TIMEOUT_MS, parseArgs, portArg, Report, watchdog, withTimeout, errorText } = require('./lib/harness')

const USAGE = 'usage: node stream_payment.js --btp-port PORT [--address test.m2m] [--amount 1000] [--receiver-asset USD] [--expect-received N] [--timeout-ms 30000]'
const args = parseArgs(process.argv.slice(2))
const port = portArg(args, 'btp-port', USAGE)
const NODE = typeof args.address === 'string' ? args.address : 'test.m2m'
const AMOUNT = Number(args.amount || 1000)
// bob's asset, and what he must receive (in his units): another asset converts at the node's rate.
const RECEIVER_ASSET = typeof args['receiver-asset'] === 'string' ? args['receiver-asset'] : 'USD'
const EXPECT_RECEIVED = Number(args['expect-received'] || AMOUNT)
const TIMEOUT_MS = Number(args['timeout-ms']) || DEFAULT_TIMEOUT_MS
const STEP_MS = Math.min(15000, TIMEOUT_MS)

const report = new Report('stream_payment', { btpPort: port, node: NODE, amount: AMOUNT, receiverAsset: RECEIVER_ASSET, expectReceived: EXPECT_RECEIVED })
watchdog(report, TIMEOUT_MS)

function makePlugin (account, token) {
  return new BtpPlugin({
    server: `btp+ws://${account}:${token}@127.0.0.1:${port}`,
    responseTimeout: STEP_MS,
    reconnectInterval: 500
  })
}

const stepTimes = {}
let stepStart = Date.now()
function step (name) {
  if (report.extra.step) stepTimes[report.extra.step] = Date.now() - stepStart
  stepStart = Date.now()
  report.extra.step = name
}

async function main () {
  report.extra.stepMs = stepTimes
  const alice = makePlugin('alice', 'alice-token')
  const bob = makePlugin('bob', 'bob-token')

  step('connect')
  await withTimeout(Promise.all([alice.connect(), bob.connect()]), STEP_MS, 'BTP connect + auth of alice and bob')
  report.check('connect: alice and bob authenticated', true)

  step('server')
  const server = await withTimeout(createServer({ plugin: bob, serverSecret: crypto.randomBytes(32) }), STEP_MS,
    'STREAM server start (IL-DCP for bob)')
  report.equal('server: asset from IL-DCP', { code: server.assetCode, scale: server.assetScale }, { code: RECEIVER_ASSET, scale: 6 })

  let received = 0
  let moneyEvents = 0
  let resolveReceived
  const allReceived = new Promise((resolve) => { resolveReceived = resolve })
  server.on('connection', (conn) => {
    conn.on('stream', (stream) => {
      stream.setReceiveMax(AMOUNT * 10)
      stream.on('money', (amount) => {
        received += Number(amount)
        moneyEvents++
        if (received >= EXPECT_RECEIVED) resolveReceived()
      })
    })
  })

  const { destinationAccount, sharedSecret } = server.generateAddressAndSecret()
  report.check('server: address under test.m2m.bob', destinationAccount.startsWith(`${NODE}.bob.`), destinationAccount)

  step('client')
  const conn = await withTimeout(createConnection({ plugin: alice, destinationAccount, sharedSecret }), STEP_MS,
    'STREAM client connect (IL-DCP for alice, connection setup)')
  report.check('client: source address from IL-DCP', conn.sourceAccount === `${NODE}.alice`, conn.sourceAccount)

  step('send')
  const stream = conn.createStream()
  await withTimeout(stream.sendTotal(AMOUNT), STEP_MS, `sending ${AMOUNT} over STREAM`)
  await withTimeout(allReceived, 5000, 'receiver seeing the money')
  report.equal('payment: stream totalSent', stream.totalSent, String(AMOUNT))
  report.equal('payment: server received the full amount (converted at the node\'s rate)', received, EXPECT_RECEIVED)
  report.extra.moneyEvents = moneyEvents
  report.extra.totalDelivered = conn.totalDelivered

  step('close')
  await withTimeout(conn.end(), 5000, 'closing the STREAM connection').catch((err) => {
    report.extra.closeWarning = err.message
  })
  // server.close() waits for every connection to be fully closed, which can take seconds;
  // the payment is already checked, so only wait briefly.
  await withTimeout(server.close(), 1000, 'closing the STREAM server').catch((err) => {
    report.extra.serverCloseNote = err.message
  })
  await withTimeout(Promise.all([alice.disconnect(), bob.disconnect()]), 2000, 'disconnect').catch(() => {})
  step('done')
  report.finish()
}

main().catch(err => report.finish(errorText(err)))
