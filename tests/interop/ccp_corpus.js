#!/usr/bin/env node
'use strict'
// Cross-checks the reference CCP codec (ilp-protocol-ccp) with ours (src/ilp/ccp.rs).
//
//   node ccp_corpus.js generate OUT.json [--seed N] [--count N]
//       Writes a deterministic corpus of route control requests and route updates, serialized by
//       ilp-protocol-ccp.
//   node ccp_corpus.js verify IN.json
//       Reads a corpus of the same shape (e.g. written by our codec), decodes every item with
//       ilp-protocol-ccp, compares the fields with `decoded`, re-serializes and compares bytes.
//
// Corpus shape: a JSON array of {id, kind: "control"|"update", hex, decoded}, where `decoded`
// has ilp-protocol-ccp's field names; `auth` and non-UTF-8 property values are lower-case hex.
// Prints one JSON summary line; exit 0 only if every item matched.

const fs = require('fs')
const ccp = require('ilp-protocol-ccp')
const { parseArgs, errorText } = require('./lib/harness')

const USAGE = 'usage: node ccp_corpus.js generate OUT.json [--seed N] [--count N] | verify IN.json'

// A small deterministic generator (xorshift128 over a splitmix-like seed).
class Rng {
  constructor (seed) {
    let s = (Number(seed) >>> 0) || 1
    const next = () => {
      s = (s + 0x9e3779b9) >>> 0
      let z = s
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
      return (z ^ (z >>> 16)) >>> 0
    }
    this.state = [next(), next(), next(), next()]
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

  int (lo, hi) { return lo + Math.floor((this.u32() / 0x100000000) * (hi - lo + 1)) }
  chance (p) { return this.u32() / 0x100000000 < p }
  pick (list) { return list[this.int(0, list.length - 1)] }
  bytes (n) {
    const out = Buffer.alloc(n)
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff
    return out
  }
}

const SEGMENT = 'abcdefghijklmnopqrstuvwxyz0123456789_~-'
const TEXT = ['a', 'Z', '0', ' ', '-', '\u00e9', '\u20ac', '\u4e2d', '\u{1F4B8}']

function segment (rng) {
  let out = ''
  for (let i = rng.int(1, 12); i > 0; i--) out += rng.pick(SEGMENT)
  return out
}

function address (rng) {
  const parts = [rng.pick(['g', 'test', 'test1', 'private', 'example', 'peer'])]
  for (let i = rng.int(0, 4); i > 0; i--) parts.push(segment(rng))
  return parts.join('.')
}

function text (rng, max) {
  let out = ''
  for (let i = rng.int(0, max); i > 0; i--) out += rng.pick(TEXT)
  return out
}

function uuid (rng) {
  const h = rng.bytes(16).toString('hex')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
}

function u32 (rng) { return rng.pick([0, 1, 4294967295, rng.int(0, 1000), rng.u32()]) }

function genControl (rng) {
  const features = []
  for (let i = rng.int(0, 3); i > 0; i--) features.push(text(rng, 8))
  return { mode: rng.int(0, 1), lastKnownRoutingTableId: uuid(rng), lastKnownEpoch: u32(rng), features }
}

function genProp (rng) {
  const isOptional = rng.chance(0.5)
  // The only flag combinations the reference serializer writes.
  const isTransitive = isOptional ? rng.chance(0.5) : true
  const isPartial = isOptional && isTransitive ? rng.chance(0.5) : false
  const isUtf8 = rng.chance(0.5)
  const value = isUtf8 ? text(rng, 10) : rng.bytes(rng.int(0, 12)).toString('hex')
  return { isOptional, isTransitive, isPartial, isUtf8, id: rng.int(0, 65535), value }
}

function genUpdate (rng) {
  const newRoutes = []
  for (let i = rng.pick([0, 1, 2, 5]); i > 0; i--) {
    const path = []
    for (let j = rng.int(0, 3); j > 0; j--) path.push(address(rng))
    const props = []
    for (let j = rng.pick([0, 0, 1, 3]); j > 0; j--) props.push(genProp(rng))
    newRoutes.push({ prefix: address(rng), path, auth: rng.bytes(32).toString('hex'), props })
  }
  const withdrawnRoutes = []
  for (let i = rng.pick([0, 0, 1, 3]); i > 0; i--) withdrawnRoutes.push(address(rng))
  return {
    routingTableId: uuid(rng),
    currentEpochIndex: u32(rng),
    fromEpochIndex: u32(rng),
    toEpochIndex: u32(rng),
    holdDownTime: u32(rng),
    speaker: address(rng),
    newRoutes,
    withdrawnRoutes
  }
}

// Corpus values ⇄ the library's objects (Buffers for auth and binary property values).
function toLibrary (kind, d) {
  if (kind === 'control') return d
  return Object.assign({}, d, {
    newRoutes: d.newRoutes.map(r => Object.assign({}, r, {
      auth: Buffer.from(r.auth, 'hex'),
      props: r.props.map(p => Object.assign({}, p, { value: p.isUtf8 ? p.value : Buffer.from(p.value, 'hex') }))
    }))
  })
}

function fromLibrary (kind, d) {
  if (kind === 'control') return { mode: d.mode, lastKnownRoutingTableId: d.lastKnownRoutingTableId, lastKnownEpoch: d.lastKnownEpoch, features: d.features }
  return {
    routingTableId: d.routingTableId,
    currentEpochIndex: d.currentEpochIndex,
    fromEpochIndex: d.fromEpochIndex,
    toEpochIndex: d.toEpochIndex,
    holdDownTime: d.holdDownTime,
    speaker: d.speaker,
    newRoutes: d.newRoutes.map(r => ({
      prefix: r.prefix,
      path: r.path,
      auth: Buffer.from(r.auth).toString('hex'),
      props: r.props.map(p => ({
        isOptional: p.isOptional,
        isTransitive: p.isTransitive,
        isPartial: p.isPartial,
        isUtf8: p.isUtf8,
        id: p.id,
        value: p.isUtf8 ? p.value : Buffer.from(p.value).toString('hex')
      }))
    })),
    withdrawnRoutes: d.withdrawnRoutes
  }
}

function serialize (kind, d) {
  return kind === 'control'
    ? ccp.serializeCcpRouteControlRequestPayload(toLibrary(kind, d))
    : ccp.serializeCcpRouteUpdateRequestPayload(toLibrary(kind, d))
}

function deserialize (kind, bytes) {
  const d = kind === 'control'
    ? ccp.deserializeCcpRouteControlRequestPayload(bytes)
    : ccp.deserializeCcpRouteUpdateRequestPayload(bytes)
  return fromLibrary(kind, d)
}

// Key order does not matter; values do.
function canonical (v) {
  if (Array.isArray(v)) return '[' + v.map(canonical).join(',') + ']'
  if (v && typeof v === 'object') return '{' + Object.keys(v).sort().map(k => JSON.stringify(k) + ':' + canonical(v[k])).join(',') + '}'
  return JSON.stringify(v)
}

function checkItem (item) {
  const problems = []
  const bytes = Buffer.from(item.hex, 'hex')
  let decoded
  try {
    decoded = deserialize(item.kind, bytes)
  } catch (err) {
    return [`does not decode: ${err.message}`]
  }
  if (canonical(decoded) !== canonical(item.decoded)) problems.push(`fields differ: library ${canonical(decoded)} corpus ${canonical(item.decoded)}`)
  const again = serialize(item.kind, decoded).toString('hex')
  if (again !== item.hex) problems.push(`re-serializes to ${again}`)
  return problems
}

function generate (out, seed, count) {
  const rng = new Rng(seed)
  const items = []
  for (let i = 0; i < count; i++) {
    const kind = rng.chance(0.3) ? 'control' : 'update'
    const decoded = kind === 'control' ? genControl(rng) : genUpdate(rng)
    items.push({ id: `JS-CCP-${String(i).padStart(4, '0')}`, kind, hex: serialize(kind, decoded).toString('hex'), decoded })
  }
  const mismatches = items.map(item => ({ id: item.id, problems: checkItem(item) })).filter(r => r.problems.length)
  fs.writeFileSync(out, JSON.stringify(items, null, 1))
  summary({ command: 'generate', file: out, seed: Number(seed), items: items.length, mismatches })
}

function verify (file) {
  const corpus = JSON.parse(fs.readFileSync(file, 'utf8'))
  if (!Array.isArray(corpus) || corpus.length === 0) throw new Error(`${file}: expected a non-empty JSON array`)
  const mismatches = corpus.map(item => ({ id: item.id, problems: checkItem(item) })).filter(r => r.problems.length)
  summary({ command: 'verify', file, items: corpus.length, mismatches })
}

function summary (s) {
  const ok = s.mismatches.length === 0
  process.stdout.write(JSON.stringify(Object.assign({ script: 'ccp_corpus', ok }, s, { mismatches: s.mismatches.slice(0, 20), mismatchCount: s.mismatches.length })) + '\n')
  for (const m of s.mismatches.slice(0, 20)) process.stderr.write(`MISMATCH ${m.id}: ${m.problems.join('; ')}\n`)
  process.exitCode = ok ? 0 : 1
}

function main () {
  const args = parseArgs(process.argv.slice(2))
  const [command, file] = args._
  if (command === 'generate' && file) {
    generate(file, args.seed !== undefined ? Number(args.seed) : 20261206, args.count !== undefined ? Number(args.count) : 300)
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
  process.stdout.write(JSON.stringify({ script: 'ccp_corpus', ok: false, error: err.message }) + '\n')
  process.stderr.write(errorText(err) + '\n')
  process.exitCode = 1
}
