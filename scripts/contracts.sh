#!/usr/bin/env bash
# The payment-channel contracts (contracts/): installs the pinned tools, checks that the committed
# ABI and bytecode (contracts/out/) are what the sources compile to, runs forge's unit, fuzz and
# invariant tests, and runs slither, failing on any finding of medium or high impact.
#
#   scripts/contracts.sh            all of the above
#   scripts/contracts.sh install    the tools only (npm ci in contracts/, slither from PyPI)
#   scripts/contracts.sh anvil-path print the pinned anvil binary's path
#   scripts/contracts.sh build      recompile and rewrite contracts/out/ (after changing src/)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../contracts"

SLITHER_VERSION=0.11.6
ANVIL="$PWD/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
FORGE="$PWD/node_modules/@foundry-rs/forge-linux-amd64/bin/forge"
export FOUNDRY_SOLC="$PWD/tools/solc-shim.js"

install() {
  bash install.sh >&2
  if [[ "$(slither --version 2>/dev/null || true)" != "$SLITHER_VERSION" ]]; then
    echo "contracts: pip install slither-analyzer==$SLITHER_VERSION" >&2
    python3 -m pip install --quiet --disable-pip-version-check "slither-analyzer==$SLITHER_VERSION" >&2
  fi
}

run_slither() {
  # slither compiles a standard-JSON input itself; it runs in a scratch copy because it takes
  # foundry.toml as a reason to call forge, and forge would compile the tests too.
  local scratch
  scratch="$(mktemp -d)"
  trap 'rm -rf "$scratch"' RETURN
  cp -r src "$scratch/"
  node tools/build.js --write-input "$scratch/input.json"
  (cd "$scratch" && slither input.json --compile-force-framework solc-json --solc "$FOUNDRY_SOLC" --fail-medium)
}

case "${1:-all}" in
  install) install ;;
  anvil-path) echo "$ANVIL" ;;
  build) bash install.sh >&2 && node tools/build.js ;;
  all)
    install
    echo "== contracts: committed artifacts match the sources"
    node tools/build.js --check
    echo "== contracts: forge test (unit, fuzz, invariant)"
    "$FORGE" test
    echo "== contracts: slither (fails on medium or high)"
    run_slither
    ;;
  *) echo "usage: scripts/contracts.sh [all|install|anvil-path|build]" >&2; exit 2 ;;
esac
