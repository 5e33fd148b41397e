'use strict'
// Small helpers shared by the interop scripts: argument parsing, a global watchdog, per-step
// timeouts, a check recorder and the one-line JSON summary that the Rust tests read.

const DEFAULT_TIMEOUT_MS = 30000

/** Parses `--name value` pairs (and bare `--flag`) into an object; positional args in `_`. */
function parseArgs (argv) {
  const out = { _: [] }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=')
      if (eq !== -1) {
        out[arg.slice(2, eq)] = arg.slice(eq + 1)
      } else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) {
        out[arg.slice(2)] = argv[++i]
      } else {
        out[arg.slice(2)] = true
      }
    } else {
      out._.push(arg)
    }
  }
  return out
}

/** Reads a TCP port argument or exits with a usage message. */
function portArg (args, name, usage) {
  const raw = args[name]
  const port = Number(raw)
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    process.stderr.write(`error: --${name} must be a TCP port, got ${JSON.stringify(raw)}\n${usage}\n`)
    process.exit(2)
  }
  return port
}

/**
 * Collects named checks and prints the summary. `finish()` exits 0 only if every recorded
 * check passed and at least one was recorded.
 */
class Report {
  constructor (script, extra) {
    this.script = script
    this.started = Date.now()
    this.checks = []
    this.extra = Object.assign({}, extra)
    this.done = false
  }

  check (name, ok, detail) {
    const entry = { name, ok: !!ok }
    if (detail !== undefined) entry.detail = detail
    this.checks.push(entry)
    if (!ok) {
      process.stderr.write(`FAIL ${name}: ${typeof detail === 'string' ? detail : JSON.stringify(detail)}\n`)
    }
    return !!ok
  }

  /** Records a check comparing `actual` with `expected` by deep JSON equality. */
  equal (name, actual, expected) {
    const a = JSON.stringify(actual)
    const e = JSON.stringify(expected)
    return this.check(name, a === e, a === e ? undefined : `expected ${e}, got ${a}`)
  }

  finish (fatal) {
    if (this.done) return
    this.done = true
    const failed = this.checks.filter(c => !c.ok).map(c => c.name)
    const ok = !fatal && failed.length === 0 && this.checks.length > 0
    const summary = Object.assign({
      script: this.script,
      ok,
      passed: this.checks.length - failed.length,
      failed: failed.length,
      failedChecks: failed,
      elapsedMs: Date.now() - this.started
    }, fatal ? { error: fatal } : {}, this.extra, { checks: this.checks })
    process.stdout.write(JSON.stringify(summary) + '\n')
    if (fatal) process.stderr.write(`FATAL ${this.script}: ${fatal}\n`)
    // Exit on the next tick so stdout is flushed even when it is a pipe.
    process.exitCode = ok ? 0 : 1
    setImmediate(() => process.exit(ok ? 0 : 1))
  }
}

/** Starts a watchdog that ends the process with a failure summary after `ms`. */
function watchdog (report, ms) {
  const timer = setTimeout(() => {
    report.finish(`global timeout after ${ms} ms (last step: ${report.extra.step || 'none'})`)
  }, ms)
  return timer
}

/** Rejects with a clear message if `promise` does not settle within `ms`. */
function withTimeout (promise, ms, what) {
  let timer
  const timeout = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

function errorText (err) {
  return err && err.stack ? err.stack : String(err)
}

module.exports = { DEFAULT_TIMEOUT_MS, parseArgs, portArg, Report, watchdog, withTimeout, errorText }
