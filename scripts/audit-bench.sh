#!/usr/bin/env bash
# Measures `m2m-connector audit settlements` on a synthetic journal (BENCHMARKS.md, "Auditing
# settlement"): EVENTS events (default 10 million) of packets from a child to a peer the node
# pays, with every settlement decision the ledger derives (a trigger and a signed claim each
# THRESHOLD_PACKETS packets, default 1000), written by examples/synthetic_settlement_journal.rs.
# Prints the generator's and the audit's timings; the journal is deleted afterwards unless KEEP=1.
#
#   bash scripts/audit-bench.sh            # 10M events
#   EVENTS=1000000 bash scripts/audit-bench.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

EVENTS="${EVENTS:-10000000}"
THRESHOLD_PACKETS="${THRESHOLD_PACKETS:-1000}"
dir="$(mktemp -d)/journal"
cleanup() { [[ "${KEEP:-0}" == 1 ]] || rm -rf "$(dirname "$dir")"; }
trap cleanup EXIT

cargo build --release --quiet --bin m2m-connector --example synthetic_settlement_journal
# /usr/bin/time (Debian's `time`) adds max RSS; bash's builtin times otherwise.
timed() {
  local label="$1"; shift
  if [[ -x /usr/bin/time ]]; then
    /usr/bin/time -f "$label: %e s wall, %U s user, %M KiB max RSS" "$@"
  else
    local TIMEFORMAT="$label: %R s wall, %U s user"
    time "$@"
  fi
}
echo "== writing $EVENTS events to $dir"
timed generator target/release/examples/synthetic_settlement_journal "$dir" "$EVENTS" "$THRESHOLD_PACKETS"
du -sh "$dir"
echo "== audit settlements (output to /dev/null but the summary)"
for run in 1 2 3; do
  timed "run $run" target/release/m2m-connector audit settlements --dir "$dir" | tail -1
done
