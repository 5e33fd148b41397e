#!/usr/bin/env bash
# Installs the pinned JavaScript reference stack for the interop tests (npm ci from
# package-lock.json). Idempotent: does nothing when node_modules is newer than the lock file.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "interop: node and npm are required (Node >= 20); install them first" >&2
  exit 1
fi

stamp=node_modules/.package-lock.json   # written by npm on every install
if [[ -d node_modules && -f "$stamp" && ! package-lock.json -nt "$stamp" ]]; then
  echo "interop: node_modules up to date"
  exit 0
fi

echo "interop: npm ci (node $(node --version), npm $(npm --version))"
npm ci --no-audit --no-fund --loglevel=error
