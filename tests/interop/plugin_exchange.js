#!/usr/bin/env node
'use strict'
// Two ilp-plugin-btp clients (alice, bob) authenticate to the connector as child accounts and
// exchange Prepare/Fulfill/Reject through it. Prints one JSON summary line; exit 0 iff all checks
// passed. See README.md in this folder.

const crypto = require('crypto')
const WebSocket = require('ws')
const BtpPlugin = require('ilp-plugin-btp')
const IlpPacket = require('ilp-packet')
const BtpPacket = require('btp-packet')
const ILDCP = require('ilp-protocol-ildcp')
const { DEFAULT_TIMEOUT_MS, parseArgs, portArg, Report, watchdog, withTimeout, errorText } = require('./lib/harness')

const USAGE = 'usage: node plugin_exchange.js --btp-port PORT [--address test.m2m] [--timeout-ms 30000]'
const args = parseArgs(process.argv.slice(2))
const port = portArg(args, 'btp-port', USAGE)
const NODE = typeof args.address === 'string' ? args.address : 'test.m2m'
const TIMEOUT_MS = Number(args['timeout-ms']) || DEFAULT_TIMEOUT_MS
const STEP_MS = Math.min(10000, TIMEOUT_MS)

const report = new Report('plugin_exchange', { btpPort: port, node: NODE })
watchdog(report, TIMEOUT_MS)

const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest()
const hex = (buf) => Buffer.from(buf).toString('hex')
const ZERO32 = Buffer.alloc(32)
const PEER_CONDITION = sha256(ZERO32)

// What Bob answers, keyed by the Prepare's data (so Alice's checks can find the packet Bob saw).
const BOB_REJECT = {
  code: 'F99',
  triggeredBy: `${NODE}.bob`,
  message: 'bob refuses \u2717 reject-me',
  data: Buffer.from('0b0b0b00ff7f80c0ffee', 'hex')
}
const BOB_FULFILL_DATA = Buffer.from('bob-fulfill-data:\u00e9\u0000\u00ff', 'utf8')
const bobSeen = new Map() // data hex -> { prepare, reply }

function bobHandler (packet) {
  const prepare = IlpPacket.deserializeIlpPrepare(packet)
  const text = prepare.data.toString('utf8')
  let reply
  if (text === 'reject-me') {
    reply = IlpPacket.serializeIlpReject(BOB_REJECT)
  } else if (text.startsWith('wrong-fulfillment')) {
    reply = IlpPacket.serializeIlpFulfill({ fulfillment: crypto.randomBytes(32), data: BOB_FULFILL_DATA })
  } else {
    reply = IlpPacket.serializeIlpFulfill({ fulfillment: sha256(prepare.data), data: BOB_FULFILL_DATA })
  }
  bobSeen.set(hex(prepare.data), { prepare, reply })
  return reply
}

function makePlugin (account, token) {
  return new BtpPlugin({
    server: `btp+ws://${account}:${token}@127.0.0.1:${port}`,
    responseTimeout: STEP_MS,
    reconnectInterval: 500
  })
}

/** Sends a Prepare whose fulfillment is SHA-256(data). */
async function sendPrepare (plugin, { amount, destination, data, expiresInMs = 15000, condition }) {
  const fulfillment = sha256(data)
  const prepare = {
    amount: String(amount),
    expiresAt: new Date(Date.now() + expiresInMs),
    executionCondition: condition || sha256(fulfillment),
    destination,
    data
  }
  const raw = await withTimeout(plugin.sendData(IlpPacket.serializeIlpPrepare(prepare)), STEP_MS,
    `reply to Prepare for ${destination}`)
  return { prepare, fulfillment, raw }
}

function describeReply (raw) {
  if (!raw || raw.length === 0) return { type: 'empty' }
  try {
    const p = IlpPacket.deserializeIlpPacket(raw)
    if (p.type === IlpPacket.Type.TYPE_ILP_FULFILL) {
      return { type: 'fulfill', fulfillment: hex(p.data.fulfillment), data: hex(p.data.data) }
    }
    if (p.type === IlpPacket.Type.TYPE_ILP_REJECT) {
      return { type: 'reject', code: p.data.code, triggeredBy: p.data.triggeredBy, message: p.data.message, data: hex(p.data.data) }
    }
    return { type: 'prepare?', hex: hex(raw) }
  } catch (err) {
    return { type: 'undecodable', hex: hex(raw), error: err.message }
  }
}

async function stepFulfill (alice) {
  report.extra.step = 'fulfill'
  const amount = 12345
  const data = Buffer.from('pay-' + crypto.randomBytes(8).toString('hex'))
  const { prepare, fulfillment, raw } = await sendPrepare(alice, { amount, destination: `${NODE}.bob.x`, data })
  const reply = describeReply(raw)
  report.equal('fulfill: alice gets a Fulfill', reply.type, 'fulfill')
  if (reply.type !== 'fulfill') {
    report.check('fulfill: reply detail', false, reply)
    return
  }
  report.equal('fulfill: fulfillment is SHA-256(data)', reply.fulfillment, hex(fulfillment))
  const seen = bobSeen.get(hex(data))
  if (!report.check('fulfill: bob received the Prepare', !!seen)) return
  report.equal('fulfill: Fulfill relayed byte for byte', hex(raw), hex(seen.reply))
  report.equal('fulfill: bob received the same amount', seen.prepare.amount, String(amount))
  report.equal('fulfill: destination unchanged', seen.prepare.destination, prepare.destination)
  report.equal('fulfill: condition unchanged', hex(seen.prepare.executionCondition), hex(prepare.executionCondition))
  report.equal('fulfill: data unchanged', hex(seen.prepare.data), hex(data))
  const fwdExpiry = seen.prepare.expiresAt.getTime()
  report.check('fulfill: forwarded expiry not later than the original', fwdExpiry <= prepare.expiresAt.getTime(),
    `original ${prepare.expiresAt.toISOString()}, forwarded ${seen.prepare.expiresAt.toISOString()}`)
  report.extra.expiryShortenedMs = prepare.expiresAt.getTime() - fwdExpiry
}

async function stepBobRejects (alice) {
  report.extra.step = 'bob-rejects'
  const data = Buffer.from('reject-me')
  const { raw } = await sendPrepare(alice, { amount: 77, destination: `${NODE}.bob.x`, data })
  const reply = describeReply(raw)
  report.equal("reject: alice gets bob's Reject unchanged", reply, {
    type: 'reject',
    code: BOB_REJECT.code,
    triggeredBy: BOB_REJECT.triggeredBy,
    message: BOB_REJECT.message,
    data: hex(BOB_REJECT.data)
  })
  report.equal('reject: relayed byte for byte', hex(raw), hex(IlpPacket.serializeIlpReject(BOB_REJECT)))
}

async function stepUnreachable (alice) {
  report.extra.step = 'unreachable'
  const data = Buffer.from('to-nowhere')
  const { raw } = await sendPrepare(alice, { amount: 5, destination: 'test.nowhere.x', data })
  const reply = describeReply(raw)
  report.equal('unreachable: F02 triggered by the connector',
    { type: reply.type, code: reply.code, triggeredBy: reply.triggeredBy },
    { type: 'reject', code: 'F02', triggeredBy: NODE })
}

async function stepWrongFulfillment (alice) {
  report.extra.step = 'wrong-fulfillment'
  const data = Buffer.from('wrong-fulfillment-' + crypto.randomBytes(4).toString('hex'))
  const { raw } = await sendPrepare(alice, { amount: 9, destination: `${NODE}.bob.x`, data })
  const reply = describeReply(raw)
  report.check('wrong fulfillment: bob was asked', bobSeen.has(hex(data)))
  report.equal('wrong fulfillment: F05 triggered by the connector',
    { type: reply.type, code: reply.code, triggeredBy: reply.triggeredBy },
    { type: 'reject', code: 'F05', triggeredBy: NODE })
}

async function stepIldcp (plugin, account) {
  report.extra.step = `ildcp-${account}`
  const request = IlpPacket.serializeIlpPrepare({
    amount: '0',
    expiresAt: new Date(Date.now() + 30000),
    executionCondition: PEER_CONDITION,
    destination: 'peer.config',
    data: Buffer.alloc(0)
  })
  const raw = await withTimeout(plugin.sendData(request), STEP_MS, `IL-DCP reply for ${account}`)
  const reply = describeReply(raw)
  if (!report.equal(`ildcp ${account}: Fulfill with the zero fulfillment`,
    { type: reply.type, fulfillment: reply.fulfillment }, { type: 'fulfill', fulfillment: hex(ZERO32) })) {
    report.check(`ildcp ${account}: reply detail`, false, reply)
    return
  }
  let info
  try {
    info = ILDCP.deserializeIldcpResponse(raw)
  } catch (err) {
    report.check(`ildcp ${account}: response decodes`, false, err.message)
    return
  }
  report.equal(`ildcp ${account}: client info`,
    { clientAddress: info.clientAddress, assetCode: info.assetCode, assetScale: info.assetScale },
    { clientAddress: `${NODE}.${account}`, assetCode: 'USD', assetScale: 6 })
  // The library helper must agree with the raw decoding.
  const fetched = await withTimeout(ILDCP.fetch(plugin.sendData.bind(plugin)), STEP_MS, `ILDCP.fetch for ${account}`)
  report.equal(`ildcp ${account}: ILDCP.fetch agrees`, fetched.clientAddress, `${NODE}.${account}`)
}

/** A raw BTP client with a wrong token must get a BTP Error for its auth request, then a close. */
async function stepBadAuth () {
  report.extra.step = 'bad-auth'
  const requestId = 0x5eed0001
  const auth = BtpPacket.serializeMessage(requestId, [
    { protocolName: 'auth', contentType: BtpPacket.MIME_APPLICATION_OCTET_STREAM, data: Buffer.alloc(0) },
    { protocolName: 'auth_username', contentType: BtpPacket.MIME_TEXT_PLAIN_UTF8, data: Buffer.from('alice') },
    { protocolName: 'auth_token', contentType: BtpPacket.MIME_TEXT_PLAIN_UTF8, data: Buffer.from('not-the-token') }
  ])
  const result = { frames: [], closed: false }
  let ws
  const outcome = await withTimeout(new Promise((resolve) => {
    ws = new WebSocket(`ws://127.0.0.1:${port}`)
    ws.on('open', () => ws.send(auth))
    ws.on('message', (msg) => {
      try {
        const p = BtpPacket.deserialize(Buffer.from(msg))
        result.frames.push({ type: p.type, requestId: p.requestId, code: p.data.code, name: p.data.name })
      } catch (err) {
        result.frames.push({ undecodable: Buffer.from(msg).toString('hex') })
      }
    })
    ws.on('close', (code) => { result.closed = true; result.closeCode = code; resolve(result) })
    ws.on('error', (err) => { result.error = err.message })
  }), 5000, 'connector closing a connection with a bad token')
    .catch(err => { ws.terminate(); return Object.assign(result, { timeout: err.message }) })
  const first = outcome.frames && outcome.frames[0]
  report.check('bad auth: BTP Error for the auth request', !!first && first.type === BtpPacket.TYPE_ERROR && first.requestId === requestId, outcome)
  report.check('bad auth: connection closed', outcome.closed === true, outcome)
}

async function main () {
  const alice = makePlugin('alice', 'alice-token')
  const bob = makePlugin('bob', 'bob-token')
  bob.registerDataHandler(async (packet) => bobHandler(packet))
  alice.registerDataHandler(async () => { throw new Error('alice expects no incoming Prepare') })

  report.extra.step = 'connect'
  try {
    await withTimeout(Promise.all([alice.connect(), bob.connect()]), STEP_MS, 'BTP connect + auth of alice and bob')
    report.check('connect: alice and bob authenticated', true)
  } catch (err) {
    report.check('connect: alice and bob authenticated', false, err.message)
    return report.finish()
  }

  const steps = [
    () => stepIldcp(alice, 'alice'),
    () => stepIldcp(bob, 'bob'),
    () => stepFulfill(alice),
    () => stepBobRejects(alice),
    () => stepUnreachable(alice),
    () => stepWrongFulfillment(alice),
    () => stepBadAuth()
  ]
  for (const step of steps) {
    try {
      await step()
    } catch (err) {
      report.check(`step ${report.extra.step} completed`, false, err.message)
    }
  }
  report.extra.step = 'disconnect'
  await withTimeout(Promise.all([alice.disconnect(), bob.disconnect()]), 2000, 'disconnect').catch(() => {})
  report.finish()
}

main().catch(err => report.finish(errorText(err)))
