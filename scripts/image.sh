#!/usr/bin/env bash
# The container image, built and run here without a registry (issue 11; Dockerfile says more):
#   1. installs buildah, podman and debootstrap (apt, idempotent);
#   2. makes the Debian bookworm base with debootstrap --variant=minbase and imports it under
#      the name the Dockerfile's FROM uses (docker.io/library/debian:bookworm-slim), once;
#   3. builds the binary on the host (release, --features tigerbeetle) into dist/;
#   4. builds the Dockerfile's runtime stage with buildah bud --isolation chroot;
#   5. runs the image as user 1000 with buildah run --isolation chroot: /health/ready answers,
#      the image's HEALTHCHECK command passes, a packet is forwarded (m2m-loadgen on the host),
#      SIGTERM stops it cleanly through tini, and nothing was written outside /data.
#
#   bash scripts/image.sh            # all of it
#   bash scripts/image.sh build      # 1-4 only
# Environment: IMAGE (default localhost/m2m-connector:dev).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

IMAGE="${IMAGE:-localhost/m2m-connector:dev}"
BASE_IMAGE="docker.io/library/debian:bookworm-slim"
say() { printf '== image: %s\n' "$*"; }

install() {
  local missing=()
  for tool in buildah podman debootstrap; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  if ((${#missing[@]})); then
    say "installing ${missing[*]} (apt)"
    sudo_cmd=(); [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q buildah podman debootstrap >/dev/null
  fi
}

base() {
  if buildah inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
    say "base $BASE_IMAGE present"
    return
  fi
  local root
  root="$(mktemp -d -t m2m-bookworm.XXXXXX)"
  say "debootstrap --variant=minbase bookworm (a few minutes)"
  debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$root.log" 2>&1 || {
    tail -30 "$root.log"; exit 1; }
  # What the official slim image also drops: apt caches and docs.
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/*
  tar -C "$root" -c . | podman import - "$BASE_IMAGE" >/dev/null
  rm -rf "$root" "$root.log"
  say "imported $BASE_IMAGE"
}

binary() {
  bash scripts/tigerbeetle.sh install >/dev/null
  ZIG_PATH="$(bash scripts/tigerbeetle.sh zig-path)"
  export ZIG_PATH
  say "cargo build --release --locked --features tigerbeetle --bin m2m-connector --bin m2m-loadgen"
  cargo build --release --locked --features tigerbeetle --bin m2m-connector --bin m2m-loadgen
  mkdir -p dist
  objcopy --strip-debug target/release/m2m-connector dist/m2m-connector
}

build() {
  say "buildah bud --isolation chroot --target runtime -t $IMAGE"
  buildah bud --isolation chroot --pull=never --layers=false --target runtime -t "$IMAGE" . >/tmp/m2m-image-build.log 2>&1 || {
    tail -40 /tmp/m2m-image-build.log; exit 1; }
  buildah inspect --type image "$IMAGE" | python3 -c '
import json, sys
config = json.load(sys.stdin)["OCIv1"]["config"]
print("== image: user", config.get("User"), "entrypoint", config.get("Entrypoint"), "cmd", config.get("Cmd"))'
}

run_check() {
  local work container mount pid
  work="$(mktemp -d -t m2m-image-run.XXXXXX)"
  container="$(buildah from --pull=never "$IMAGE")"
  cleanup_run() {
    [[ -n "${pid:-}" ]] && kill -9 "$pid" 2>/dev/null || true
    buildah umount "$container" >/dev/null 2>&1 || true
    buildah rm "$container" >/dev/null 2>&1 || true
    rm -rf "$work"
  }
  trap cleanup_run RETURN
  two_free_ports
  local explorer_port
  explorer_port="$(free_port)"
  mkdir -p "$work/config" "$work/data"
  two_children_config image-check "$btp_port" "$health_port" /data/journal true >"$work/config/config.toml"
  chown -R 1000:1000 "$work/data"
  mount="$(buildah mount "$container")"
  say "buildah run --isolation chroot --user 1000 (BTP :$btp_port, health :$health_port)"
  buildah run --isolation chroot --user 1000:1000 \
    --volume "$work/config:/etc/m2m:ro" --volume "$work/data:/data" \
    --env EXPLORER_PORT="$explorer_port" --env TINI_SUBREAPER=1 \
    "$container" -- /usr/bin/tini -- /usr/local/bin/m2m-connector run >"$work/node.log" 2>&1 &
  pid=$!
  local ready=""
  for _ in $(seq 150); do
    if curl -fsS "http://127.0.0.1:$health_port/health/ready" >/dev/null 2>&1; then ready=1; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  [[ -n "$ready" ]] || { say "the node in the image did not become ready"; cat "$work/node.log"; exit 1; }
  say "/health/ready: $(curl -fsS "http://127.0.0.1:$health_port/health/ready")"
  buildah run --isolation chroot --user 1000:1000 --env HEALTH_PORT="$health_port" "$container" -- /usr/local/bin/m2m-connector health \
    || { say "the HEALTHCHECK command failed"; exit 1; }
  say "HEALTHCHECK command: ok"
  local line
  line="$(target/release/m2m-loadgen --role both --url "ws://127.0.0.1:$btp_port" --packets 20 --window 2 --seconds 20)"
  echo "$line"
  python3 - "$line" <<'PY' || { cat "$work/node.log"; exit 1; }
import json, sys
result = json.loads(sys.argv[1])
assert result["fulfilled"] == 20 and result["sent"] == 20, f"expected 20 packets fulfilled through the image: {result}"
print("== image: 20 packets forwarded and fulfilled through the node in the image")
PY
  local counted
  counted="$(curl -fsS "http://127.0.0.1:$health_port/metrics" | awk '/^ilp_packets_processed_total\{/ && /type="prepare"/ && /status="fulfilled"/ {print $2}')"
  [[ "${counted:-0}" -ge 20 ]] || { say "/metrics counts ${counted:-no} fulfilled Prepares, not the 20 sent"; exit 1; }
  say "/metrics: $counted Prepares fulfilled (the 20 and the load generator's probe)"
  # SIGTERM to tini (PID 1 in a pod; here a child of buildah run, which has no PID namespace
  # with chroot isolation), as the kubelet sends it: tini passes it to the node.
  local tini
  tini="$(pgrep -f -n '^/usr/bin/tini -- /usr/local/bin/m2m-connector run')" || { say "no tini process"; exit 1; }
  kill -TERM "$tini"
  local status=0
  wait "$pid" || status=$?
  pid=""
  [[ "$status" -eq 0 ]] || { say "SIGTERM: exit status $status"; cat "$work/node.log"; exit 1; }
  grep -q "stopping" "$work/node.log" || { say "the node did not log its stop"; cat "$work/node.log"; exit 1; }
  say "SIGTERM through tini: clean stop (exit 0)"
  [[ -n "$(ls -A "$work/data/journal")" ]] || { say "no journal in /data"; exit 1; }
  # Written outside /data (the volume): nothing, so a read-only root filesystem works. What the
  # run changed in the image's filesystem is exactly the overlay's upper directory.
  local upper written
  upper="$(findmnt -n -o OPTIONS --mountpoint "$mount" | tr ',' '\n' | sed -n 's/^upperdir=//p')"
  [[ -d "$upper" ]] || { say "cannot find the container's overlay upper directory"; exit 1; }
  written="$(cd "$upper" && find . -mindepth 1 ! -type d -print | grep -v -E '^\./(etc/(hosts|resolv\.conf|hostname)|run/.*)$' || true)"
  [[ -z "$written" ]] || { say "files written outside /data:"; echo "$written"; exit 1; }
  say "nothing written outside /data"
}

install
base
binary
build
[[ "${1:-all}" == build ]] && exit 0
run_check
say "ok"
