#!/usr/bin/env bash
# The Explorer UI (explorer/): installs what its tests need, checks that the committed build
# (explorer/dist, embedded in the binary) is what the sources and the lockfile produce, and runs
# its unit tests.
#
#   bash scripts/explorer.sh install    # npm ci (explorer/package-lock.json); Debian's chromium
#   bash scripts/explorer.sh check      # rebuild into a temporary folder; fail if dist differs
#   bash scripts/explorer.sh build      # rebuild explorer/dist (commit it with the sources)
#   bash scripts/explorer.sh unit       # vitest: the data hooks (merging live events, reconnecting)
#   bash scripts/explorer.sh all        # install, check, unit (what .ci/run does)
#
# The browser tests (Playwright over /usr/bin/chromium against a real node) are Rust
# integration tests: cargo test --test it explorer.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ui=explorer

install() {
  if [[ ! -d "$ui/node_modules" ]] || ! cmp -s "$ui/package-lock.json" "$ui/node_modules/.package-lock.json"; then
    echo "explorer.sh: npm ci in $ui (from its lockfile)"
    (cd "$ui" && npm ci --no-audit --no-fund --loglevel=error)
  fi
  if [[ ! -x /usr/bin/chromium ]]; then
    echo "explorer.sh: installing Debian's chromium (the browser tests drive it)"
    local sudo=""
    [[ "$(id -u)" == 0 ]] || sudo="sudo"
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
  fi
  /usr/bin/chromium --version
}

check() {
  local out
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' RETURN
  (cd "$ui" && npx tsc --noEmit && npx vite build --logLevel warn --outDir "$out/dist" --emptyOutDir)
  if ! diff -r "$out/dist" "$ui/dist"; then
    echo "explorer.sh: explorer/dist differs from a fresh build of the sources: run bash scripts/explorer.sh build and commit explorer/dist" >&2
    return 1
  fi
  echo "explorer.sh: explorer/dist matches a fresh build"
}

case "${1:-all}" in
  install) install ;;
  check) install >/dev/null; check ;;
  build) install >/dev/null; (cd "$ui" && npm run build) ;;
  unit) install >/dev/null; (cd "$ui" && npx vitest run) ;;
  all) install; check; (cd "$ui" && npx vitest run) ;;
  *) echo "usage: $0 [install|check|build|unit|all]" >&2; exit 2 ;;
esac
