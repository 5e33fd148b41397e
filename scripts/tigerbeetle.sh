#!/usr/bin/env bash
# Builds and runs a real, local, single-replica TigerBeetle server from source, using nothing but
# package registries: Zig comes from PyPI (`ziglang`), the TigerBeetle source from crates.io (the
# `tigerbeetle-unofficial-sys` crate ships the full upstream tree). Everything lands in `.tools/`
# at the repo root (gitignored); nothing global is installed except `libclang-dev` (apt), which
# only the Rust client crate `tigerbeetle-unofficial` needs (bindgen), and only `install` does that.
#
# Usage: scripts/tigerbeetle.sh COMMAND [options]
#   install                 Install Zig, fetch the source, build the server (each step skipped when
#                           already done), ensure libclang-dev. Prints the binary path and a ZIG_PATH
#                           hint for building the Rust client.
#   start [--port P] [--data DIR] [--limit-request SIZE] [--cache-grid SIZE]
#                           Build if needed, format DIR/0_0.tigerbeetle if missing (cluster 0,
#                           replica 0 of 1, --development), start the replica on 127.0.0.1:P in the
#                           background (pid in DIR/tigerbeetle.pid, log in DIR/tigerbeetle.log) and
#                           wait until the port accepts connections. Already running: says so, exit 0.
#                           --development caps a request at 32KiB: 253 transfers per create_transfers.
#                           --limit-request 1MiB (TigerBeetle's production value; the flag is marked
#                           experimental, so --experimental is passed with it) allows 8189.
#                           --development also shrinks the grid cache (TigerBeetle's page cache) to
#                           its minimum; --cache-grid 1GiB (a stable flag; production's default is
#                           4GiB) gives it room: the benchmarks measure both.
#   stop [--data DIR]       SIGTERM the replica from the pid file, SIGKILL after 5 s; OK if not running.
#   status [--data DIR]     Exit 0 if running, 3 if not.
#   path                    Print the server binary path (exit 1 if not built).
#   zig-path                Print the Zig binary path (exit 1 if not installed).
# Defaults: P=3033, DIR=<repo>/data/tigerbeetle. A relative DIR is taken from the current directory.
# Environment: TB_START_TIMEOUT seconds to wait for the port (default 20).
set -euo pipefail

readonly TB_RELEASE="0.16.78"
readonly TB_COMMIT="c3d9b09dc88e94dde9ac915c6e94a4c650332080"
readonly TB_CRATE="tigerbeetle-unofficial-sys"
readonly TB_CRATE_VERSION="0.14.28+${TB_RELEASE}"
readonly ZIG_VERSION="0.14.1"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly repo_root
readonly tools_dir="$repo_root/.tools"
readonly zig_bin="$tools_dir/python/ziglang/zig"
readonly fetch_dir="$tools_dir/tb-fetch"
readonly src_dir="$tools_dir/tigerbeetle-src"
readonly tb_bin="$src_dir/zig-out/bin/tigerbeetle"
readonly default_data_dir="$repo_root/data/tigerbeetle"
readonly default_port=3033

log() { echo "tigerbeetle.sh: $*" >&2; }
die() {
    echo "tigerbeetle.sh: error: $*" >&2
    exit 1
}

elapsed() { echo "$((SECONDS - $1))s"; }

python_bin() {
    local py
    for py in python3 python; do
        if command -v "$py" >/dev/null 2>&1 && "$py" -m pip --version >/dev/null 2>&1; then
            echo "$py"
            return 0
        fi
    done
    die "need python3 with pip to install Zig from PyPI (apt-get install -y python3-pip)"
}

zig_ok() { [ -x "$zig_bin" ] && [ "$("$zig_bin" version 2>/dev/null)" = "$ZIG_VERSION" ]; }

# `tigerbeetle version` prints "TigerBeetle version 0.16.78+c3d9b09".
tb_ok() {
    [ -x "$tb_bin" ] &&
        [ "$("$tb_bin" version 2>/dev/null | head -n1)" = "TigerBeetle version ${TB_RELEASE}+${TB_COMMIT:0:7}" ]
}

src_ok() { [ -f "$src_dir/build.zig" ] && [ "$(cat "$src_dir/.crate-version" 2>/dev/null)" = "$TB_CRATE_VERSION" ]; }

ensure_zig() {
    if zig_ok; then
        log "zig $ZIG_VERSION: already installed ($zig_bin)"
        return 0
    fi
    local t0=$SECONDS py
    py="$(python_bin)"
    log "installing zig $ZIG_VERSION from PyPI (ziglang) into $tools_dir/python"
    rm -rf "$tools_dir/python"
    mkdir -p "$tools_dir"
    # --target skips pip's externally-managed-environment check: nothing outside .tools/ is touched.
    "$py" -m pip install --disable-pip-version-check --no-warn-script-location --quiet \
        --root-user-action=ignore --target "$tools_dir/python" "ziglang==$ZIG_VERSION" ||
        die "pip install ziglang==$ZIG_VERSION failed (is PyPI reachable?)"
    zig_ok || die "zig at $zig_bin is missing or does not report version $ZIG_VERSION"
    log "zig $ZIG_VERSION installed in $(elapsed "$t0")"
}

# Prints the registry directory of the crate (cargo fetches it into ~/.cargo/registry/src).
crate_dir() {
    local py
    py="$(python_bin)"
    cargo metadata --format-version 1 --manifest-path "$fetch_dir/Cargo.toml" 2>/dev/null |
        "$py" -c '
import json, os, sys
name, version = sys.argv[1], sys.argv[2]
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == name and p["version"] == version:
        print(os.path.dirname(p["manifest_path"]))
' "$TB_CRATE" "$TB_CRATE_VERSION"
}

ensure_source() {
    if src_ok; then
        log "tigerbeetle $TB_RELEASE source: already in $src_dir"
        return 0
    fi
    command -v cargo >/dev/null 2>&1 || die "cargo not found: the TigerBeetle source comes from crates.io via cargo"
    local t0=$SECONDS crate
    log "fetching $TB_CRATE $TB_CRATE_VERSION from crates.io (it ships the TigerBeetle source)"
    mkdir -p "$fetch_dir/src"
    cat >"$fetch_dir/Cargo.toml" <<EOF
# Throwaway project (generated by scripts/tigerbeetle.sh): only used to fetch the crate source.
[package]
name = "tb-fetch"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
$TB_CRATE = "=$TB_CRATE_VERSION"

[workspace]
EOF
    echo 'fn main() {}' >"$fetch_dir/src/main.rs"
    cargo fetch --quiet --manifest-path "$fetch_dir/Cargo.toml" ||
        die "cargo fetch of $TB_CRATE $TB_CRATE_VERSION failed (is crates.io reachable?)"
    crate="$(crate_dir)"
    if [ -z "$crate" ] || [ ! -f "$crate/tigerbeetle/build.zig" ]; then
        die "could not locate the fetched crate's tigerbeetle/ folder (cargo metadata gave '${crate}')"
    fi
    # Copy: the cargo registry copy must stay pristine (cargo checks it; the build writes caches).
    rm -rf "$src_dir" "$src_dir.tmp"
    cp -R "$crate/tigerbeetle" "$src_dir.tmp"
    chmod -R u+w "$src_dir.tmp"
    rm -rf "$src_dir.tmp/zig-out" "$src_dir.tmp/.zig-cache" "$src_dir.tmp/zig-cache"
    echo "$TB_CRATE_VERSION" >"$src_dir.tmp/.crate-version"
    mv "$src_dir.tmp" "$src_dir"
    log "source copied to $src_dir in $(elapsed "$t0")"
}

ensure_server() {
    if tb_ok; then
        log "tigerbeetle $TB_RELEASE: already built ($tb_bin)"
        return 0
    fi
    ensure_zig
    ensure_source
    local t0=$SECONDS
    log "building tigerbeetle $TB_RELEASE (ReleaseSafe; a few minutes on 2 cores)"
    rm -rf "$src_dir/zig-out"
    # Caches stay inside .tools/. build.zig has no build.zig.zon dependencies; the only steps that
    # download (past releases for -Dmultiversion, llvm-objcopy) are not part of the default install
    # step, and -Dgit-commit keeps it from running `git rev-parse` (which would read OUR repo).
    (
        cd "$src_dir"
        export ZIG_GLOBAL_CACHE_DIR="$tools_dir/zig-cache"
        export ZIG_LOCAL_CACHE_DIR="$src_dir/.zig-cache"
        unset CI
        "$zig_bin" build -Drelease \
            "-Dconfig-release=$TB_RELEASE" "-Dconfig-release-client-min=$TB_RELEASE" \
            "-Dgit-commit=$TB_COMMIT"
    ) || die "zig build of tigerbeetle failed (see output above)"
    tb_ok || die "built $tb_bin but '$tb_bin version' does not report $TB_RELEASE+${TB_COMMIT:0:7}"
    log "tigerbeetle built in $(elapsed "$t0")"
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

ensure_libclang() {
    if dpkg-query -W -f='${Status}' libclang-dev 2>/dev/null | grep -q 'install ok installed'; then
        log "libclang-dev: already installed"
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 ||
        die "libclang-dev is missing and apt-get is unavailable: install libclang (for bindgen) by hand"
    local t0=$SECONDS
    log "installing libclang-dev (bindgen in the tigerbeetle-unofficial client crate needs it)"
    export DEBIAN_FRONTEND=noninteractive
    # apt's chatter goes to stderr: stdout is kept for the ZIG_PATH hint and the binary path.
    if ! as_root apt-get install -y -q libclang-dev >&2; then
        log "apt-get install failed; running apt-get update and retrying"
        as_root apt-get update -q >&2 || die "apt-get update failed"
        as_root apt-get install -y -q libclang-dev >&2 || die "apt-get install -y libclang-dev failed"
    fi
    log "libclang-dev installed in $(elapsed "$t0")"
}

cmd_install() {
    [ $# -eq 0 ] || die "install takes no options (got: $*)"
    mkdir -p "$tools_dir"
    ensure_server
    ensure_libclang
    echo "To build the Rust client crate tigerbeetle-unofficial without it downloading Zig:"
    echo "  export ZIG_PATH=$zig_bin"
    echo "$tb_bin"
}

# --- running a replica ---------------------------------------------------------------------------

data_dir="" port="" limit_request="" cache_grid=""

parse_run_opts() {
    local allow_port=$1
    shift
    data_dir="$default_data_dir" port="$default_port" limit_request="" cache_grid=""
    while [ $# -gt 0 ]; do
        case "$1" in
        --data) [ $# -ge 2 ] || die "--data needs a directory"; data_dir="$2"; shift 2 ;;
        --data=*) data_dir="${1#--data=}"; shift ;;
        --port | --limit-request)
            [ "$allow_port" = yes ] || die "unknown option for this command: $1"
            [ $# -ge 2 ] || die "$1 needs a value"
            if [ "$1" = --port ]; then port="$2"; else limit_request="$2"; fi
            shift 2
            ;;
        --cache-grid)
            [ "$allow_port" = yes ] || die "unknown option for this command: $1"
            [ $# -ge 2 ] || die "$1 needs a value"
            cache_grid="$2"
            shift 2
            ;;
        --cache-grid=*)
            [ "$allow_port" = yes ] || die "unknown option for this command: ${1%%=*}"
            cache_grid="${1#--cache-grid=}"
            shift
            ;;
        --port=* | --limit-request=*)
            [ "$allow_port" = yes ] || die "unknown option for this command: ${1%%=*}"
            if [ "${1%%=*}" = --port ]; then port="${1#--port=}"; else limit_request="${1#--limit-request=}"; fi
            shift
            ;;
        *) die "unknown option: $1" ;;
        esac
    done
    [ -n "$data_dir" ] || die "--data must not be empty"
    case "$port" in
    '' | *[!0-9]*) die "--port must be a number (got '$port')" ;;
    esac
    if [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then die "--port out of range: $port"; fi
    case "$data_dir" in
    /*) ;;
    *) data_dir="$PWD/$data_dir" ;;
    esac
}

pid_file() { echo "$data_dir/tigerbeetle.pid"; }
log_file() { echo "$data_dir/tigerbeetle.log"; }
data_file() { echo "$data_dir/0_0.tigerbeetle"; }

# Prints the pid from the pid file if that process is alive and is a tigerbeetle (not a reused pid).
running_pid() {
    local pf pid
    pf="$(pid_file)"
    [ -f "$pf" ] || return 1
    pid="$(tr -dc '0-9' <"$pf")"
    [ -n "$pid" ] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'tigerbeetle' || return 1
    echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

show_log_tail() {
    local lf
    lf="$(log_file)"
    if [ -f "$lf" ]; then
        echo "--- last 30 lines of $lf ---" >&2
        tail -n 30 "$lf" >&2
        echo "---" >&2
    fi
}

cmd_start() {
    parse_run_opts yes "$@"
    local pid timeout="${TB_START_TIMEOUT:-20}"
    if pid="$(running_pid)"; then
        log "already running (pid $pid, data $data_dir); stop it first to change options"
        return 0
    fi
    rm -f "$(pid_file)"
    if port_open "$port"; then
        die "127.0.0.1:$port already accepts connections (another server?); pick another --port"
    fi
    ensure_server
    mkdir -p "$data_dir"
    if [ ! -f "$(data_file)" ]; then
        log "formatting $(data_file) (cluster 0, replica 0, replica-count 1, --development)"
        rm -f "$(data_file).tmp"
        "$tb_bin" format --cluster=0 --replica=0 --replica-count=1 --development \
            "$(data_file).tmp" >>"$(log_file)" 2>&1 9>&- || {
            rm -f "$(data_file).tmp"
            show_log_tail
            die "tigerbeetle format failed"
        }
        mv "$(data_file).tmp" "$(data_file)"
    fi
    local extra=() starter=()
    [ -z "$limit_request" ] || extra=(--experimental "--limit-request=$limit_request")
    [ -z "$cache_grid" ] || extra+=("--cache-grid=$cache_grid")
    log "starting on 127.0.0.1:$port (request limit ${limit_request:-32KiB, the --development default}; grid cache ${cache_grid:-the --development minimum}), log $(log_file)"
    command -v setsid >/dev/null 2>&1 && starter=(setsid)
    # Non-interactive bash: the background child is not a group leader, so setsid execs in place
    # and $! is the tigerbeetle pid itself. fd 9 (the .tools lock) must not leak into the server.
    "${starter[@]}" "$tb_bin" start "--addresses=127.0.0.1:$port" --development "${extra[@]}" \
        "$(data_file)" </dev/null >>"$(log_file)" 2>&1 9>&- &
    pid=$!
    echo "$pid" >"$(pid_file)"
    local deadline=$((SECONDS + timeout))
    until port_open "$port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$(pid_file)"
            show_log_tail
            die "tigerbeetle exited during startup"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            kill -KILL "$pid" 2>/dev/null || true
            rm -f "$(pid_file)"
            show_log_tail
            die "127.0.0.1:$port did not accept connections within ${timeout}s (server killed)"
        fi
        sleep 0.2
    done
    log "running (pid $pid) on 127.0.0.1:$port"
}

cmd_stop() {
    parse_run_opts no "$@"
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$(pid_file)"
        log "not running (data $data_dir)"
        return 0
    fi
    log "stopping pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid ignored SIGTERM for 5s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        ! kill -0 "$pid" 2>/dev/null || die "pid $pid still alive after SIGKILL"
    fi
    rm -f "$(pid_file)"
    log "stopped"
}

cmd_status() {
    parse_run_opts no "$@"
    local pid
    if tb_ok; then echo "binary: $tb_bin ($TB_RELEASE)"; else echo "binary: not built (run: $0 install)"; fi
    if pid="$(running_pid)"; then
        echo "running: pid $pid, data $data_dir"
        echo "command: $(tr '\0' ' ' <"/proc/$pid/cmdline")"
        return 0
    fi
    echo "not running (data $data_dir)"
    return 3
}

cmd_path() {
    [ $# -eq 0 ] || die "path takes no options"
    tb_ok || die "tigerbeetle $TB_RELEASE is not built yet (run: $0 install)"
    echo "$tb_bin"
}

cmd_zig_path() {
    [ $# -eq 0 ] || die "zig-path takes no options"
    zig_ok || die "zig $ZIG_VERSION is not installed yet (run: $0 install)"
    echo "$zig_bin"
}

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2; }

# One install at a time: concurrent runs would share .tools/.
with_lock() {
    mkdir -p "$tools_dir"
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$tools_dir/.lock"
        flock 9
    fi
    "$@"
}

[ $# -ge 1 ] || {
    usage
    exit 2
}
command="$1"
shift
case "$command" in
install) with_lock cmd_install "$@" ;;
start) with_lock cmd_start "$@" ;;
stop) cmd_stop "$@" ;;
status) cmd_status "$@" ;;
path) cmd_path "$@" ;;
zig-path) cmd_zig_path "$@" ;;
-h | --help | help) usage ;;
*)
    usage
    die "unknown command: $command"
    ;;
esac
