#!/usr/bin/env node
// Starts the JavaScript reference connector (ilp-connector, pinned in package.json) for
// scripts/side-by-side.sh: node address ADDRESS (default test.js) with two child accounts in one
// asset, each an ilp-plugin-btp *server* listening on 127.0.0.1:
//
//   alice  ws://127.0.0.1:ALICE_PORT  auth_token "alice-token"   (m2m-loadgen --role sender)
//   bob    ws://127.0.0.1:BOB_PORT    auth_token "bob-token"     (m2m-loadgen --role fulfiller)
//
// so the topology is the same as ours: sender -> connector -> fulfiller, destination ADDRESS.bob.
//
//   node launch.js --alice-port 4001 --bob-port 4002 [--address test.js] [--max-seconds 900]
//
// Writes "side-by-side: ready ..." on stderr once ilp-connector has started and both listeners
// accept connections. Stops (connector.shutdown(), then exit) on SIGTERM/SIGINT, and by itself
// after --max-seconds so a forgotten process cannot outlive a run.
//
// Configuration, checked against the installed ilp-connector 23.0.2 source (dist/):
// - rateLimit: the rate-limit middleware's token bucket defaults to 10,000 packets per 60 s per
//   account (refillPeriod 60000, refillCount 10000) and rejects beyond it with T05; raised here
//   to 10^9 per second with a capacity of 10^9.
// - deduplicate: answers a Prepare from a cache when SHA-256 of the packet after its first 25
//   bytes (the rest of the condition, destination and data) was seen before; m2m-loadgen's data
//   and condition are unique per packet, so every packet is forwarded (the cache stays on, as in
//   production, and costs what it costs).
// - balance: enforced (as ours enforces credit limits), with limits far above what a run uses.
// - maxPacketAmount: set, far above the packets' amount (1).
// - backend one-to-one with spread 0: the default backend (ecb) fetches rates over the network,
//   and the default spread (0.002) would turn an amount of 1 into 0.
// - plugin listeners bind 127.0.0.1 (wsOpts.host); ilp-plugin-btp's server mode accepts a
//   connection whose auth packet's auth_token equals listener.secret (auth_username ignored).
'use strict'

const path = require('path')

function parseArgs (argv) {
  const args = { address: 'test.js', alicePort: 0, bobPort: 0, maxSeconds: 900 }
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]]
    if (value === undefined) throw new Error('missing value for ' + flag)
    switch (flag) {
      case '--address': args.address = value; break
      case '--alice-port': args.alicePort = Number(value); break
      case '--bob-port': args.bobPort = Number(value); break
      case '--max-seconds': args.maxSeconds = Number(value); break
      default: throw new Error('unknown argument ' + flag)
    }
  }
  for (const port of [args.alicePort, args.bobPort]) {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error('bad port ' + port)
  }
  if (!(args.maxSeconds > 0 && args.maxSeconds <= 3600)) throw new Error('--max-seconds must be 1..3600')
  return args
}

const HUGE = '1000000000000000' // 10^15, the credit limit scripts/side-by-side.sh gives alice on ours

function account (port, secret, balance) {
  return {
    relation: 'child',
    plugin: 'ilp-plugin-btp',
    assetCode: 'USD',
    assetScale: 6,
    options: {
      listener: { port, secret, wsOpts: { host: '127.0.0.1', port } }
    },
    maxPacketAmount: HUGE,
    balance,
    rateLimit: { refillPeriod: 1000, refillCount: 1000000000, capacity: 1000000000 }
  }
}

function config (args) {
  return {
    env: 'test',
    ilpAddress: args.address,
    backend: 'one-to-one',
    spread: 0,
    accounts: {
      // alice's balance goes up with each Prepare she sends (she owes the connector).
      alice: account(args.alicePort, 'alice-token', { minimum: '-' + HUGE, maximum: HUGE }),
      // bob's goes down with each Prepare forwarded to him (the connector owes him).
      bob: account(args.bobPort, 'bob-token', { minimum: '-' + HUGE, maximum: HUGE })
    },
    routes: [{ targetPrefix: args.address + '.bob', peerId: 'bob' }],
    defaultRoute: '',
    // ilp-connector waits this long for the accounts' plugins to connect before it starts its
    // middlewares; a server-mode plugin only "connects" when a client does, so don't wait.
    initialConnectTimeout: 500,
    adminApi: false
  }
}

function waitForPort (port, deadline) {
  const net = require('net')
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const socket = net.connect({ host: '127.0.0.1', port }, () => { socket.destroy(); resolve() })
      socket.on('error', () => {
        socket.destroy()
        if (Date.now() > deadline) reject(new Error('nothing listens on 127.0.0.1:' + port))
        else setTimeout(attempt, 50)
      })
    }
    attempt()
  })
}

async function main () {
  const args = parseArgs(process.argv.slice(2))
  // ilp-connector resolves the plugin by name; make sure it is the copy installed next to us.
  process.chdir(__dirname)
  const { createApp } = require(path.join(__dirname, 'node_modules', 'ilp-connector'))
  const version = require(path.join(__dirname, 'node_modules', 'ilp-connector', 'package.json')).version
  const connector = createApp(config(args))

  let stopping = false
  const stop = async (why, code) => {
    if (stopping) return
    stopping = true
    process.stderr.write(`side-by-side: stopping (${why})\n`)
    const force = setTimeout(() => process.exit(code), 5000)
    force.unref()
    try { await connector.shutdown() } catch (error) { process.stderr.write(`side-by-side: shutdown: ${error}\n`) }
    process.exit(code)
  }
  process.on('SIGTERM', () => stop('SIGTERM', 0))
  process.on('SIGINT', () => stop('SIGINT', 0))
  setTimeout(() => stop('--max-seconds reached', 1), args.maxSeconds * 1000).unref()
  // Keep the event loop alive until stopped, even if the connector has nothing scheduled.
  const keepAlive = setInterval(() => {}, 1 << 30)

  await connector.listen()
  const deadline = Date.now() + 10000
  await Promise.all([waitForPort(args.alicePort, deadline), waitForPort(args.bobPort, deadline)])
  process.stderr.write(`side-by-side: ready ilp-connector ${version} address=${args.address} ` +
    `alice=ws://127.0.0.1:${args.alicePort} bob=ws://127.0.0.1:${args.bobPort}\n`)
  void keepAlive
}

main().catch((error) => {
  process.stderr.write(`side-by-side: ${error && error.stack ? error.stack : error}\n`)
  process.exit(2)
})
