#!/usr/bin/env bash
# Installs the contracts' pinned tools: solc-js (the compiler), anvil (the local Ethereum node the
# tests run against) and forge (unit, fuzz and invariant tests), by `npm ci` from
# package-lock.json. Idempotent: does nothing when node_modules is newer than the lock file.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "contracts: node and npm are required (Node >= 20); install them first" >&2
  exit 1
fi

stamp=node_modules/.package-lock.json   # written by npm on every install
if [[ -d node_modules && -f "$stamp" && ! package-lock.json -nt "$stamp" ]]; then
  echo "contracts: node_modules up to date"
else
  echo "contracts: npm ci (node $(node --version), npm $(npm --version))"
  npm ci --no-audit --no-fund --loglevel=error
fi
# npm can lose the executable bit of a package's binary on some file systems.
chmod +x node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil node_modules/@foundry-rs/forge-linux-amd64/bin/forge
