#!/usr/bin/env node
'use strict'
// Route exchange (CCP) between the M2M Connector and a live ilp-connector 23 (the JavaScript
// reference connector), with no route configured on either side:
// - ilp-connector `test.ilpc` dials our node as its peer; its child `bob` connects to it;
//   our child `alice` connects to us;
// - ilp-connector's routing table (its admin API, GET /routing) learns `test.m2m` and our child
//   `test.m2m.alice`; ours (the Explorer's GET /api/routes) learns `test.ilpc`;
// - a STREAM payment crosses the learned routes in each direction (alice -> bob, bob -> alice);
// - alice disconnects for longer than our route expiry: ilp-connector's table loses her;
// - ilp-connector stops: once its hold-down time passes, our table loses `test.ilpc`.
// Prints one JSON summary line; exit 0 iff all checks passed.

const crypto = require('crypto')
const http = require('http')
const net = require('net')
const BtpPlugin = require('ilp-plugin-btp')
require('./lib/stream_node20_shim')
const { createServer, createConnection } = require('ilp-protocol-stream')
const { createApp } = require('ilp-connector')
const { parseArgs, portArg, Report, watchdog, withTimeout, errorText } = require('./lib/harness')

const USAGE = 'usage: node ccp_ilp_connector.js --btp-port PORT --explorer-port PORT [--timeout-ms 50000]'
const args = parseArgs(process.argv.slice(2))
const btpPort = portArg(args, 'btp-port', USAGE)
const explorerPort = portArg(args, 'explorer-port', USAGE)
const TIMEOUT_MS = Number(args['timeout-ms']) || 50000
const STEP_MS = 15000
const AMOUNT = 1000

const report = new Report('ccp_ilp_connector', { btpPort, explorerPort })
watchdog(report, TIMEOUT_MS)

const stepTimes = {}
let stepStart = Date.now()
function step (name) {
  if (report.extra.step) stepTimes[report.extra.step] = Date.now() - stepStart
  stepStart = Date.now()
  report.extra.step = name
}

function freePort () {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

function getJson (port, path) {
  return new Promise((resolve, reject) => {
    const request = http.get({ host: '127.0.0.1', port, path, timeout: 2000 }, (response) => {
      let body = ''
      response.on('data', (chunk) => { body += chunk })
      response.on('end', () => {
        try { resolve(JSON.parse(body)) } catch (err) { reject(new Error(`GET ${path}: not JSON: ${body.slice(0, 200)}`)) }
      })
    })
    request.on('timeout', () => request.destroy(new Error(`GET ${path}: timed out`)))
    request.on('error', reject)
  })
}

/** Polls `read` every 100 ms until `test` holds on its value; rejects with the last value. */
async function until (what, read, test, ms = STEP_MS) {
  const deadline = Date.now() + ms
  let last
  for (;;) {
    try { last = await read() } catch (err) { last = String(err) }
    if (typeof last !== 'string' && test(last)) return last
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms; last seen: ${JSON.stringify(last).slice(0, 2000)}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

const ilpcRoutes = (adminPort) => () => getJson(adminPort, '/routing').then((status) => status.localRoutingTable || {})
const ourRoutes = () => getJson(explorerPort, '/api/routes').then((body) => body.routes || [])

/** A STREAM payment of AMOUNT from `sender` to `receiver` (two connected plugins). */
async function pay (name, sender, receiver, receiverPrefix) {
  const server = await withTimeout(createServer({ plugin: receiver, serverSecret: crypto.randomBytes(32) }), STEP_MS, `${name}: STREAM server (IL-DCP)`)
  let received = 0
  let resolveReceived
  const allReceived = new Promise((resolve) => { resolveReceived = resolve })
  server.on('connection', (conn) => {
    conn.on('stream', (stream) => {
      stream.setReceiveMax(AMOUNT * 10)
      stream.on('money', (amount) => {
        received += Number(amount)
        if (received >= AMOUNT) resolveReceived()
      })
    })
  })
  const { destinationAccount, sharedSecret } = server.generateAddressAndSecret()
  report.check(`${name}: receiver's address from IL-DCP is under ${receiverPrefix}`, destinationAccount.startsWith(receiverPrefix + '.'), destinationAccount)
  const conn = await withTimeout(createConnection({ plugin: sender, destinationAccount, sharedSecret }), STEP_MS, `${name}: STREAM connect`)
  const stream = conn.createStream()
  await withTimeout(stream.sendTotal(AMOUNT), STEP_MS, `${name}: sending ${AMOUNT}`)
  await withTimeout(allReceived, 5000, `${name}: the receiver seeing the money`)
  report.equal(`${name}: the receiver got the full amount`, received, AMOUNT)
  await withTimeout(conn.end(), 3000, `${name}: closing`).catch(() => {})
  await withTimeout(server.close(), 1000, `${name}: closing the server`).catch(() => {})
}

async function main () {
  report.extra.stepMs = stepTimes
  const [adminPort, bobPort] = [await freePort(), await freePort()]
  step('ilp-connector')
  const ilpc = createApp({
    env: 'test',
    ilpAddress: 'test.ilpc',
    backend: 'one-to-one',
    spread: 0,
    store: 'memory',
    adminApi: true,
    adminApiHost: '127.0.0.1',
    adminApiPort: adminPort,
    routeBroadcastInterval: 500,
    routeCleanupInterval: 250,
    routeExpiry: 3000,
    accounts: {
      m2m: {
        relation: 'peer',
        plugin: 'ilp-plugin-btp',
        assetCode: 'USD',
        assetScale: 6,
        options: { server: `btp+ws://ilpc:ilpc-token@127.0.0.1:${btpPort}`, reconnectInterval: 500 }
      },
      bob: {
        relation: 'child',
        plugin: 'ilp-plugin-btp',
        assetCode: 'USD',
        assetScale: 6,
        options: { listener: { port: bobPort, secret: 'bob-secret' } }
      }
    }
  })
  // Each payment gets its own plugins (a STREAM endpoint keeps its plugin's data handler).
  const plugins = () => [
    new BtpPlugin({ server: `btp+ws://alice:alice-token@127.0.0.1:${btpPort}`, responseTimeout: STEP_MS }),
    new BtpPlugin({ server: `btp+ws://bob:bob-secret@127.0.0.1:${bobPort}`, responseTimeout: STEP_MS, reconnectInterval: 200 })
  ]
  let [alice, bob] = plugins()
  // ilp-connector's start waits for bob's listener to see bob: both at once.
  await withTimeout(Promise.all([ilpc.listen(), alice.connect(), bob.connect()]), STEP_MS, 'ilp-connector start (dials our node), alice and bob connect')

  step('routes learned')
  const theirs = await until('ilp-connector learning test.m2m and test.m2m.alice', ilpcRoutes(adminPort),
    (table) => table['test.m2m'] && table['test.m2m.alice'])
  report.equal('ilp-connector: test.m2m via our node', theirs['test.m2m'].nextHop, 'm2m')
  // Its admin API shows a path as its hops joined by spaces.
  report.equal('ilp-connector: our child test.m2m.alice via our node, path [test.m2m]', [theirs['test.m2m.alice'].nextHop, theirs['test.m2m.alice'].path], ['m2m', 'test.m2m'])
  const ours = await until('our node learning test.ilpc', ourRoutes, (routes) => routes.some((route) => route.prefix === 'test.ilpc'))
  const learned = ours.find((route) => route.prefix === 'test.ilpc')
  report.equal('m2m: test.ilpc learned from the ilpc peer with path [test.ilpc]', [learned.peer, learned.source, learned.path], ['ilpc', 'learned', ['test.ilpc']])

  step('payments')
  await pay('alice -> bob', alice, bob, 'test.ilpc.bob')
  await Promise.all([alice.disconnect(), bob.disconnect()])
  ;[alice, bob] = plugins()
  await withTimeout(Promise.all([alice.connect(), bob.connect()]), STEP_MS, 'alice and bob connect again')
  await pay('bob -> alice', bob, alice, 'test.m2m.alice')

  step('child gone')
  await alice.disconnect()
  // Our route expiry is 1.5 s: well within the step's time, the withdrawal reaches ilp-connector.
  const after = await until('ilp-connector dropping test.m2m.alice', ilpcRoutes(adminPort), (table) => !table['test.m2m.alice'])
  report.check('ilp-connector: test.m2m.alice withdrawn, test.m2m kept', !after['test.m2m.alice'] && after['test.m2m'] && after['test.m2m'].nextHop === 'm2m', Object.keys(after))

  step('ilp-connector gone')
  await bob.disconnect()
  await withTimeout(ilpc.shutdown(), STEP_MS, 'ilp-connector shutdown')
  // Its hold-down time is 3 s: after it, our node drops what it learned.
  const left = await until('our node dropping test.ilpc', ourRoutes, (routes) => !routes.some((route) => route.prefix === 'test.ilpc'))
  report.check('m2m: test.ilpc withdrawn after the hold-down time', true, left.map((route) => route.prefix))
  step('done')
  report.finish()
}

main().catch((err) => report.finish(errorText(err)))
