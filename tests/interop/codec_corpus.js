#!/usr/bin/env node
'use strict'
// Cross-checks the JavaScript reference codecs (ilp-packet, btp-packet) with ours.
//
//   node codec_corpus.js generate OUT.json [--seed N] [--count N]
//       Writes a deterministic corpus of ILP packets and BTP frames encoded by the JS codecs.
//   node codec_corpus.js verify IN.json
//       Reads a corpus (same shape, e.g. produced by our Rust codec), decodes every item with the
//       JS codecs, compares the fields with `decoded`, re-encodes and compares the bytes.
//
// Corpus shape: a JSON array of {id, kind: "ilp"|"btp", valid: true, hex, decoded}, where
// `decoded` uses the field names of tests/data/vectors.json. Binary fields are lower-case hex
// strings. Amounts (ILP Prepare `amount`, BTP Transfer `amount`) are DECIMAL STRINGS, because a
// u64 does not fit a JSON number that JavaScript can read exactly; `verify` also accepts numbers.
// ILP `expiresAt` is the 17-digit ILP timestamp; BTP `triggeredAt` is the 19-character
// GeneralizedTime `YYYYMMDDHHmmSS.fffZ` (the only form btp-packet decodes).
//
// Prints one JSON summary line; exit 0 only if every item matched.

const fs = require('fs')
const IlpPacket = require('ilp-packet')
const BtpPacket = require('btp-packet')
const { parseArgs, errorText } = require('./lib/harness')

const USAGE = 'usage: node codec_corpus.js generate OUT.json [--seed N] [--count N]\n' +
  '       node codec_corpus.js verify IN.json'

// ---------------------------------------------------------------------------------------------
// Deterministic PRNG: xorshift128 over four 32-bit words, seeded through a 32-bit mixing step.

class Rng {
  constructor (seed) {
    let s = (Number(seed) >>> 0) || 1
    const mix = () => {
      s = (s + 0x9e3779b9) >>> 0
      let z = s
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
      return (z ^ (z >>> 16)) >>> 0
    }
    this.state = [mix(), mix(), mix(), mix()]
    if (this.state.every(w => w === 0)) this.state[0] = 1
  }

  u32 () {
    const st = this.state
    let t = st[3]
    const s = st[0]
    st[3] = st[2]
    st[2] = st[1]
    st[1] = s
    t ^= t << 11
    t ^= t >>> 8
    st[0] = (t ^ s ^ (s >>> 19)) >>> 0
    return st[0]
  }

  /** Integer in [lo, hi], inclusive. */
  int (lo, hi) {
    return lo + Math.floor((this.u32() / 0x100000000) * (hi - lo + 1))
  }

  chance (p) { return this.u32() / 0x100000000 < p }
  pick (list) { return list[this.int(0, list.length - 1)] }

  bytes (n) {
    const out = Buffer.alloc(n)
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff
    return out
  }

  u64 () {
    const kind = this.int(0, 9)
    if (kind === 0) return '0'
    if (kind === 1) return '18446744073709551615'
    if (kind === 2) return String(this.int(1, 1000))
    if (kind === 3) return ((1n << 53n) + BigInt(this.int(0, 1000))).toString()
    return ((BigInt(this.u32()) << 32n) | BigInt(this.u32())).toString()
  }
}

// ---------------------------------------------------------------------------------------------
// Value generators

const SCHEMES = ['g', 'private', 'example', 'peer', 'self', 'test', 'test1', 'test2', 'test3', 'local']
const SEGMENT_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_~-'

function segment (rng, len) {
  let s = ''
  for (let i = 0; i < len; i++) s += SEGMENT_CHARS[rng.int(0, SEGMENT_CHARS.length - 1)]
  return s
}

/** A valid ILP address of roughly `target` bytes (never above 1023). */
function address (rng, target) {
  let a = rng.pick(SCHEMES)
  const want = Math.min(1023, Math.max(target, a.length + 2))
  while (a.length + 2 <= want) {
    const room = want - a.length - 1
    a += '.' + segment(rng, Math.min(room, rng.int(1, 40)))
  }
  return a
}

function addressLength (rng) {
  return rng.pick([
    () => rng.int(3, 30),
    () => rng.int(3, 30),
    () => rng.int(31, 127),
    () => rng.int(128, 300),
    () => rng.int(900, 1023),
    () => 1023
  ])()
}

/** Lengths chosen to cover 1-, 2- and 3-byte length determinants and their boundaries. */
function dataLength (rng, max) {
  const small = [
    () => 0,
    () => rng.int(1, 64),
    () => rng.int(1, 127),
    () => 127,
    () => 128,
    () => rng.int(129, 1000),
    () => 255,
    () => 256
  ]
  const large = [
    () => rng.int(1001, 16383),
    () => 16383,
    () => 16384,
    () => rng.int(16385, max),
    () => max
  ]
  return Math.min(max, rng.pick(rng.chance(0.12) ? large : small)())
}

const TEXT_PIECES = ['a', 'Z', '0', ' ', '.', '-', '\u00e9', '\u00df', '\u20ac', '\u2717', '\u4e2d', '\u{1F4B8}', '"', '\\', '\n']

/** A UTF-8 string of at most `maxBytes` bytes (possibly fewer, never splitting a character). */
function text (rng, maxBytes) {
  const target = rng.int(0, maxBytes)
  let s = ''
  let bytes = 0
  for (;;) {
    const piece = rng.chance(0.7) ? String.fromCharCode(rng.int(0x20, 0x7e)) : rng.pick(TEXT_PIECES)
    const n = Buffer.byteLength(piece, 'utf8')
    if (bytes + n > target) break
    s += piece
    bytes += n
  }
  return s
}

function ilpTimestamp (rng) {
  const special = rng.int(0, 19)
  let ms
  // Not 1970-01-01T00:00:00.000: ilp-packet rejects the epoch itself ("invalid date", its
  // validity test is `!date.valueOf()`), so the corpus stays one millisecond after it.
  if (special === 0) ms = Date.UTC(1970, 0, 1, 0, 0, 0, 1)
  else if (special === 1) ms = Date.UTC(9999, 11, 31, 23, 59, 59, 999)
  else if (special === 2) ms = Date.UTC(2016, 11, 31, 23, 59, 59, 999)
  else if (special === 3) ms = Date.UTC(2024, 1, 29, 12, 0, 0, 0)
  else ms = Date.UTC(rng.int(2000, 2099), 0, 1) + rng.int(0, 365 * 24 * 3600) * 1000 + rng.int(0, 999)
  return new Date(ms)
}

const pad = (n, w) => String(n).padStart(w, '0')

/** Date -> 17-digit ILP timestamp (our own formatter, not the library's). */
function formatIlpTime (d) {
  return pad(d.getUTCFullYear(), 4) + pad(d.getUTCMonth() + 1, 2) + pad(d.getUTCDate(), 2) +
    pad(d.getUTCHours(), 2) + pad(d.getUTCMinutes(), 2) + pad(d.getUTCSeconds(), 2) +
    pad(d.getUTCMilliseconds(), 3)
}

/** Date -> 19-character GeneralizedTime `YYYYMMDDHHmmSS.fffZ`. */
function formatGeneralizedTime (d) {
  const t = formatIlpTime(d)
  return t.slice(0, 14) + '.' + t.slice(14) + 'Z'
}

function parseIlpTime (s) {
  if (!/^[0-9]{17}$/.test(s)) throw new Error(`bad ILP timestamp ${JSON.stringify(s)}`)
  return new Date(Date.UTC(+s.slice(0, 4), +s.slice(4, 6) - 1, +s.slice(6, 8), +s.slice(8, 10),
    +s.slice(10, 12), +s.slice(12, 14), +s.slice(14, 17)))
}

const ILP_CODES = ['F00', 'F01', 'F02', 'F03', 'F04', 'F05', 'F06', 'F07', 'F08', 'F99',
  'T00', 'T01', 'T02', 'T03', 'T04', 'T05', 'T99', 'R00', 'R01', 'R02', 'R99', 'F09', 'F42', 'T17']
const BTP_ERRORS = [['T00', 'UnreachableError'], ['F00', 'NotAcceptedError'], ['F01', 'InvalidFieldsError'],
  ['F03', 'TransferNotFoundError'], ['F04', 'InvalidFulfillmentError'], ['F05', 'DuplicateIdError'],
  ['F06', 'AlreadyRolledBackError'], ['F07', 'AlreadyFulfilledError'], ['F08', 'InsufficientBalanceError'],
  ['L13', 'errorName'], ['F99', 'X']]

// ---------------------------------------------------------------------------------------------
// Item builders: each returns { kind, value } where value is the corpus `decoded` object.

function genPrepare (rng) {
  const condition = rng.chance(0.1)
    ? Buffer.from('66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925', 'hex')
    : rng.bytes(32)
  return {
    type: 12,
    amount: rng.u64(),
    expiresAt: formatIlpTime(ilpTimestamp(rng)),
    executionCondition: condition.toString('hex'),
    destination: address(rng, addressLength(rng)),
    data: rng.bytes(dataLength(rng, 32767)).toString('hex')
  }
}

function genFulfill (rng) {
  return {
    type: 13,
    fulfillment: (rng.chance(0.1) ? Buffer.alloc(32) : rng.bytes(32)).toString('hex'),
    data: rng.bytes(dataLength(rng, 32767)).toString('hex')
  }
}

function genReject (rng) {
  const code = rng.pick(ILP_CODES)
  let data
  if (code === 'F08' && rng.chance(0.8)) {
    const b = Buffer.alloc(16)
    b.writeBigUInt64BE(BigInt(rng.u64()), 0)
    b.writeBigUInt64BE(BigInt(rng.u64()), 8)
    data = b
  } else {
    data = rng.bytes(dataLength(rng, 32767))
  }
  return {
    type: 14,
    code,
    triggeredBy: rng.chance(0.1) ? '' : address(rng, addressLength(rng)),
    message: text(rng, rng.chance(0.2) ? 8191 : 200),
    data: data.toString('hex')
  }
}

function genProtocolData (rng, withIlp) {
  const count = rng.chance(0.02) ? rng.int(256, 300) : rng.int(0, 6)
  const names = new Set()
  const entries = []
  if (withIlp) {
    const ilp = encodeIlp(rng.pick([genPrepare, genFulfill, genReject])(rng))
    names.add('ilp')
    entries.push({ protocolName: 'ilp', contentType: 0, data: ilp.toString('hex') })
  }
  while (entries.length < count + (withIlp ? 1 : 0)) {
    const name = rng.chance(0.1)
      ? rng.pick(['auth', 'auth_username', 'auth_token', 'foo', 'beep', 'json', 'settle', ''])
      : segment(rng, rng.int(1, rng.chance(0.05) ? 200 : 20))
    if (names.has(name)) continue
    names.add(name)
    const contentType = rng.chance(0.85) ? rng.int(0, 2) : rng.int(3, 255)
    let data
    if (contentType === 1) data = Buffer.from(text(rng, 300), 'utf8')
    else if (contentType === 2) data = Buffer.from(JSON.stringify({ k: text(rng, 40), n: rng.int(0, 1e6) }), 'utf8')
    else data = rng.bytes(count > 100 ? rng.int(0, 4) : dataLength(rng, rng.chance(0.9) ? 2000 : 20000))
    entries.push({ protocolName: name, contentType, data: data.toString('hex') })
  }
  return entries
}

function requestId (rng) {
  return rng.pick([() => 0, () => 0xffffffff, () => rng.int(1, 1000), () => rng.u32()])()
}

function genBtp (rng) {
  const type = rng.pick([1, 1, 6, 6, 6, 2, 7])
  const frame = { type, requestId: requestId(rng) }
  if (type === 2) {
    const [code, name] = rng.pick(BTP_ERRORS)
    frame.code = code
    frame.name = name
    frame.triggeredAt = formatGeneralizedTime(ilpTimestamp(rng))
    frame.data = Buffer.from(rng.chance(0.5)
      ? JSON.stringify({ message: text(rng, 200) })
      : text(rng, rng.chance(0.1) ? 8192 : 100), 'utf8').toString('hex')
    frame.protocolData = genProtocolData(rng, false)
  } else if (type === 7) {
    frame.amount = rng.u64()
    frame.protocolData = genProtocolData(rng, false)
  } else {
    frame.protocolData = genProtocolData(rng, rng.chance(0.5))
  }
  return frame
}

// ---------------------------------------------------------------------------------------------
// JS codec adapters: our `decoded` shape <-> library objects

const fromHex = (h) => Buffer.from(h, 'hex')

function encodeIlp (d) {
  switch (d.type) {
    case 12:
      return IlpPacket.serializeIlpPrepare({
        amount: String(d.amount),
        expiresAt: parseIlpTime(d.expiresAt),
        executionCondition: fromHex(d.executionCondition),
        destination: d.destination,
        data: fromHex(d.data)
      })
    case 13:
      return IlpPacket.serializeIlpFulfill({ fulfillment: fromHex(d.fulfillment), data: fromHex(d.data) })
    case 14:
      return IlpPacket.serializeIlpReject({
        code: d.code, triggeredBy: d.triggeredBy, message: d.message, data: fromHex(d.data)
      })
    default:
      throw new Error(`unknown ILP type ${d.type}`)
  }
}

function decodeIlp (buf) {
  const p = IlpPacket.deserializeIlpPacket(buf)
  const v = p.data
  switch (p.type) {
    case 12:
      return {
        type: 12,
        amount: String(v.amount),
        expiresAt: formatIlpTime(v.expiresAt),
        executionCondition: v.executionCondition.toString('hex'),
        destination: v.destination,
        data: v.data.toString('hex')
      }
    case 13:
      return { type: 13, fulfillment: v.fulfillment.toString('hex'), data: v.data.toString('hex') }
    case 14:
      return { type: 14, code: v.code, triggeredBy: v.triggeredBy, message: v.message, data: v.data.toString('hex') }
  }
  throw new Error(`unexpected ILP type ${p.type}`)
}

const toLibProtocolData = (list) => list.map(e => ({
  protocolName: e.protocolName, contentType: e.contentType, data: fromHex(e.data)
}))
const fromLibProtocolData = (list) => list.map(e => ({
  protocolName: e.protocolName, contentType: e.contentType, data: e.data.toString('hex')
}))

function encodeBtp (d) {
  const base = { type: d.type, requestId: d.requestId }
  switch (d.type) {
    case 1:
    case 6:
      return BtpPacket.serialize(Object.assign(base, { data: { protocolData: toLibProtocolData(d.protocolData) } }))
    case 7:
      return BtpPacket.serialize(Object.assign(base, {
        data: { amount: String(d.amount), protocolData: toLibProtocolData(d.protocolData) }
      }))
    case 2: {
      const t = d.triggeredAt
      if (!/^[0-9]{14}\.[0-9]{3}Z$/.test(t)) throw new Error(`triggeredAt ${JSON.stringify(t)} is not YYYYMMDDHHmmSS.fffZ`)
      const iso = `${t.slice(0, 4)}-${t.slice(4, 6)}-${t.slice(6, 8)}T${t.slice(8, 10)}:${t.slice(10, 12)}:${t.slice(12, 18)}Z`
      return BtpPacket.serialize(Object.assign(base, {
        data: {
          code: d.code,
          name: d.name,
          triggeredAt: iso,
          data: fromHex(d.data).toString('utf8'),
          protocolData: toLibProtocolData(d.protocolData)
        }
      }))
    }
  }
  throw new Error(`unknown BTP type ${d.type}`)
}

function decodeBtp (buf) {
  const p = BtpPacket.deserialize(buf)
  const out = { type: p.type, requestId: p.requestId }
  if (p.type === 2) {
    const when = p.data.triggeredAt
    out.code = p.data.code
    out.name = p.data.name
    out.triggeredAt = when instanceof Date && !isNaN(when) ? formatGeneralizedTime(when) : String(when)
    out.data = Buffer.from(p.data.data, 'utf8').toString('hex')
  }
  if (p.type === 7) out.amount = String(p.data.amount)
  out.protocolData = fromLibProtocolData(p.data.protocolData)
  return out
}

// ---------------------------------------------------------------------------------------------
// Comparison

/** Normalizes a corpus `decoded` value so equivalent spellings compare equal. */
function normalize (kind, d) {
  const out = JSON.parse(JSON.stringify(d))
  if (out.amount !== undefined) out.amount = BigInt(out.amount).toString()
  for (const key of ['executionCondition', 'fulfillment', 'data']) {
    if (typeof out[key] === 'string') out[key] = out[key].toLowerCase()
  }
  if (Array.isArray(out.protocolData)) {
    out.protocolData = out.protocolData.map(e => ({
      protocolName: e.protocolName, contentType: e.contentType, data: String(e.data).toLowerCase()
    }))
  }
  return out
}

function canonicalJson (v) {
  if (Array.isArray(v)) return '[' + v.map(canonicalJson).join(',') + ']'
  if (v && typeof v === 'object') {
    return '{' + Object.keys(v).sort().map(k => JSON.stringify(k) + ':' + canonicalJson(v[k])).join(',') + '}'
  }
  return JSON.stringify(v)
}

function firstDifference (a, b) {
  const keys = new Set([...Object.keys(a || {}), ...Object.keys(b || {})])
  for (const k of keys) {
    const x = canonicalJson(a && a[k])
    const y = canonicalJson(b && b[k])
    if (x !== y) {
      const clip = (s) => s && s.length > 160 ? s.slice(0, 160) + `... (${s.length} chars)` : s
      return { field: k, expected: clip(y), got: clip(x) }
    }
  }
  return null
}

function firstByteDifference (a, b) {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i
  return a.length === b.length ? -1 : n
}

/** Checks one item against the JS codec; returns a list of problems (empty when it matches). */
function checkItem (item) {
  const problems = []
  if (item.kind !== 'ilp' && item.kind !== 'btp') return [`unknown kind ${JSON.stringify(item.kind)}`]
  const bytes = fromHex(item.hex)
  const decodeJs = item.kind === 'ilp' ? decodeIlp : decodeBtp
  const encodeJs = item.kind === 'ilp' ? encodeIlp : encodeBtp
  let decoded
  try {
    decoded = decodeJs(bytes)
  } catch (err) {
    return [`JS decode failed: ${err.message}`]
  }
  const want = normalize(item.kind, item.decoded)
  const diff = firstDifference(normalize(item.kind, decoded), want)
  if (diff) problems.push(`decoded field ${diff.field} differs: corpus ${diff.expected}, JS ${diff.got}`)
  try {
    const again = encodeJs(decoded)
    if (!again.equals(bytes)) {
      const at = firstByteDifference(again, bytes)
      problems.push(`JS re-encoding differs at byte ${at} (corpus ${bytes.length} bytes, JS ${again.length}): ` +
        `corpus ${bytes.slice(Math.max(0, at - 4), at + 12).toString('hex')} vs JS ${again.slice(Math.max(0, at - 4), at + 12).toString('hex')}`)
    }
  } catch (err) {
    problems.push(`JS re-encode failed: ${err.message}`)
  }
  // Also encode straight from the corpus values: catches a decoder that is too lenient.
  try {
    const direct = encodeJs(item.decoded)
    if (!direct.equals(bytes)) problems.push(`JS encoding of the corpus 'decoded' differs from 'hex' at byte ${firstByteDifference(direct, bytes)}`)
  } catch (err) {
    problems.push(`JS encode of corpus 'decoded' failed: ${err.message}`)
  }
  return problems
}

// ---------------------------------------------------------------------------------------------
// Commands

function generate (out, seed, count) {
  const rng = new Rng(seed)
  const items = []
  const kinds = [genPrepare, genPrepare, genFulfill, genReject, genReject, genBtp, genBtp, genBtp]
  // A few fixed edge cases first, then random ones.
  const fixed = [
    { type: 12, amount: '0', expiresAt: '20150616000100000', executionCondition: '66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925', destination: 'peer.config', data: '' },
    { type: 13, fulfillment: '00'.repeat(32), data: '' },
    { type: 14, code: 'T00', triggeredBy: '', message: '', data: '' },
    { type: 14, code: 'F08', triggeredBy: 'test.m2m', message: 'amount too large', data: '000000000000006400000000000000c8' },
    { type: 12, amount: '18446744073709551615', expiresAt: '99991231235959999', executionCondition: 'ff'.repeat(32), destination: 'g.' + 'a'.repeat(1021), data: 'ab'.repeat(32767) }
  ]
  for (const d of fixed) items.push({ kind: 'ilp', value: d })
  items.push({ kind: 'btp', value: { type: 1, requestId: 0, protocolData: [] } })
  items.push({ kind: 'btp', value: { type: 6, requestId: 4294967295, protocolData: [{ protocolName: 'ilp', contentType: 0, data: encodeIlp(fixed[4]).toString('hex') }] } })
  while (items.length < count) {
    const gen = rng.pick(kinds)
    items.push({ kind: gen === genBtp ? 'btp' : 'ilp', value: gen(rng) })
  }
  const corpus = items.map(({ kind, value }, i) => {
    const bytes = kind === 'ilp' ? encodeIlp(value) : encodeBtp(value)
    return { id: `JS-${kind.toUpperCase()}-${pad(i, 4)}`, kind, valid: true, hex: bytes.toString('hex'), decoded: value }
  })
  // The generator must agree with the library it feeds: decode everything once more.
  const selfCheck = corpus.map(item => ({ id: item.id, problems: checkItem(item) })).filter(r => r.problems.length)
  fs.writeFileSync(out, JSON.stringify(corpus, null, 1))
  const stats = {}
  for (const item of corpus) {
    const key = `${item.kind}-${item.decoded.type}`
    stats[key] = (stats[key] || 0) + 1
  }
  const maxLen = Math.max(...corpus.map(i => i.hex.length / 2))
  summary({ command: 'generate', file: out, seed: Number(seed), items: corpus.length, byType: stats, maxBytes: maxLen, mismatches: selfCheck })
}

function verify (file) {
  const corpus = JSON.parse(fs.readFileSync(file, 'utf8'))
  if (!Array.isArray(corpus) || corpus.length === 0) throw new Error(`${file}: expected a non-empty JSON array`)
  const mismatches = []
  let checked = 0
  let skipped = 0
  for (const item of corpus) {
    // Invalid items, items without a decode and other kinds (vectors.json also holds OER and
    // CCP vectors) are counted as skipped.
    if (item.valid === false || item.valid === null || !item.decoded || (item.kind !== 'ilp' && item.kind !== 'btp')) {
      skipped++
      continue
    }
    checked++
    const problems = checkItem(item)
    if (problems.length) mismatches.push({ id: item.id, kind: item.kind, type: item.decoded.type, problems })
  }
  summary({ command: 'verify', file, items: corpus.length, checked, skipped, mismatches })
}

function summary (s) {
  const ok = s.mismatches.length === 0
  process.stdout.write(JSON.stringify(Object.assign({ script: 'codec_corpus', ok }, s, {
    mismatches: s.mismatches.slice(0, 50), mismatchCount: s.mismatches.length
  })) + '\n')
  for (const m of s.mismatches.slice(0, 20)) process.stderr.write(`MISMATCH ${m.id}: ${m.problems.join('; ')}\n`)
  process.exitCode = ok ? 0 : 1
}

function main () {
  const args = parseArgs(process.argv.slice(2))
  const [command, file] = args._
  if (command === 'generate' && file) {
    generate(file, args.seed !== undefined ? Number(args.seed) : 20240601, args.count !== undefined ? Number(args.count) : 300)
  } else if (command === 'verify' && file) {
    verify(file)
  } else {
    process.stderr.write(USAGE + '\n')
    process.exitCode = 2
  }
}

try {
  main()
} catch (err) {
  process.stdout.write(JSON.stringify({ script: 'codec_corpus', ok: false, error: err.message }) + '\n')
  process.stderr.write(errorText(err) + '\n')
  process.exitCode = 1
}
