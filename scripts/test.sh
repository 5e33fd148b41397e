#!/usr/bin/env bash
# Runs every test of the M2M Connector: the payment-channel contracts (forge unit, fuzz and
# invariant tests, slither, committed artifacts checked against a fresh compile), the Explorer
# UI (its committed build reproduced from the lockfile, vitest), a short fuzz
# smoke of every decoder, then unit, property, integration (real sockets), interop tests with the
# JavaScript reference stack, the TigerBeetle ledger tests against a real TigerBeetle server, and
# the settlement tests against a real Ethereum node (anvil), and the Explorer in Debian's
# chromium, then clippy with warnings as errors; the container image built with buildah and
# run, the Kubernetes manifests validated offline, and the monitoring rules and dashboards.
# Installs what it needs idempotently (npm packages from lockfiles: the interop stack, solc-js,
# anvil and forge; slither from PyPI; cargo-fuzz; Zig from PyPI; the TigerBeetle server built
# from the source the client crate ships; libclang-dev; buildah, podman, debootstrap and
# prometheus (promtool) from apt; kubernetes-validate and checkov from PyPI), so it works on a
# fresh machine with
# Rust, Node.js and Python. Every socket is on 127.0.0.1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n== %s (%s)\n' "$1" "$(date +%H:%M:%S)"; }

step "JavaScript reference stack (npm ci from tests/interop/package-lock.json)"
bash tests/interop/install.sh

step "payment-channel contracts: artifacts, forge unit/fuzz/invariant tests, slither (scripts/contracts.sh)"
# Also installs anvil, which the settlement integration tests run against.
bash scripts/contracts.sh

step "Explorer UI: npm ci, chromium, committed build reproduced, vitest (scripts/explorer.sh)"
# Also installs what the browser tests (cargo test ... explorer::in_a_real_browser) drive.
bash scripts/explorer.sh all

step "TigerBeetle server and Zig (scripts/tigerbeetle.sh install)"
bash scripts/tigerbeetle.sh install
ZIG_PATH="$(bash scripts/tigerbeetle.sh zig-path)"
export ZIG_PATH

step "container image: debootstrap base, buildah build of the runtime stage, run as user 1000 (scripts/image.sh)"
# Also builds the release binaries (--features tigerbeetle) that the next two steps use.
bash scripts/image.sh

step "Kubernetes manifests: kustomize, Kubernetes 1.29 schemas, checkov, config validate (scripts/k8s.sh)"
bash scripts/k8s.sh

step "monitoring: promtool rule tests, dashboards, metric names against a real node (scripts/monitoring.sh)"
bash scripts/monitoring.sh

step "fuzz smoke: every decoder for ${FUZZ_SECONDS:-15} s"
FUZZ_SECONDS="${FUZZ_SECONDS:-15}" bash scripts/fuzz-smoke.sh

step "cargo test: unit, property, integration, interop, TigerBeetle (and each bench run once)"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# Bounded: a hung test fails the run instead of eating CI's time limit.
timeout 2400 cargo test --locked --all-targets --features tigerbeetle,fault-injection 2>&1 | tee "$log"

step "clippy: every target and feature, warnings are errors"
# After the tests: a failing test is reported first, and the build scripts and proc-macros the
# test build made are reused (1m18s on 2 cores in CI; 6m47s from nothing).
cargo clippy --version >/dev/null 2>&1 || {
  echo "clippy is missing: it comes with rustup's default profile (rustup component add clippy)" >&2
  exit 1
}
cargo clippy --locked --all-targets --features tigerbeetle,fault-injection -- -D warnings

# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "\n%d passed, %d failed\n", passed, failed }' "$log"
