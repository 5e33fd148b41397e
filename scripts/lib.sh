# Shared by the measurement scripts (sourced, not run): free ports, the connector configuration
# they all measure (node test.m2m; children alice and bob in USD at scale 6; alice with a credit
# limit no run can reach), starting that connector until it is ready, and stopping a process.

# A TCP port on 127.0.0.1 that was free a moment ago.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# two_children_config NODE_ID BTP_PORT HEALTH_PORT JOURNAL_DIR DURABLE: prints the TOML.
two_children_config() {
  cat <<EOF
[node]
id = "$1"
ilp_address = "test.m2m"
asset_code = "USD"
asset_scale = 6
bind_host = "127.0.0.1"
btp_port = $2
health_port = $3

[journal]
dir = "$4"
durable = $5

[[peers]]
id = "alice"
relation = "child"
asset_code = "USD"
asset_scale = 6
incoming_token = "alice-token"
credit_limit = 1000000000000000

[[peers]]
id = "bob"
relation = "child"
asset_code = "USD"
asset_scale = 6
incoming_token = "bob-token"
credit_limit = 0
EOF
  # EXTRA_CHILDREN="carol dave": more children like bob (token <id>-token).
  local child
  for child in ${EXTRA_CHILDREN:-}; do
    printf '\n[[peers]]\nid = "%s"\nrelation = "child"\nasset_code = "USD"\nasset_scale = 6\nincoming_token = "%s-token"\ncredit_limit = 0\n' "$child" "$child"
  done
}

# Sets btp_port and health_port to two distinct ports that were free a moment ago.
two_free_ports() {
  btp_port="$(free_port)"
  health_port="$(free_port)"
  while [[ "$health_port" == "$btp_port" ]]; do health_port="$(free_port)"; done
}

# stop_pid PID SECONDS: SIGTERM, SIGKILL if still running SECONDS later, then reap it. Nothing
# for an empty PID or a process already gone.
stop_pid() {
  local pid="$1" wait_tenths=$(($2 * 10))
  [[ -n "$pid" ]] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq "$wait_tenths"); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# start_connector BIN NODE_ID DIR DURABLE BTP_PORT HEALTH_PORT READY_SECONDS: writes
# DIR/config.toml (two_children_config, journal in DIR/journal), starts `BIN run` in DIR with its
# output in DIR/connector.log, and waits until /health/ready answers. Sets connector_pid. If the
# node exits or is not ready in time: prints its log and returns 1.
start_connector() {
  local bin="$1" node_id="$2" dir="$3" durable="$4" btp="$5" health="$6" ready_seconds="$7"
  mkdir -p "$dir"
  two_children_config "$node_id" "$btp" "$health" "$dir/journal" "$durable" >"$dir/config.toml"
  # The environment overrides the file: pin what matters so an inherited variable can't change it.
  # The Explorer is off unless the caller asks (EXPLORER_ENABLED=true, with EXPLORER_PORT).
  (cd "$dir" && exec env BTP_PORT="$btp" HEALTH_PORT="$health" JOURNAL_DIR="$dir/journal" \
    EXPLORER_ENABLED="${EXPLORER_ENABLED:-false}" EXPLORER_PORT="${EXPLORER_PORT:-0}" \
    LOG_LEVEL=warn "$bin" run --config "$dir/config.toml") >"$dir/connector.log" 2>&1 &
  connector_pid=$!
  for _ in $(seq $((ready_seconds * 10))); do
    if curl -fsS --max-time 1 "http://127.0.0.1:$health/health/ready" >/dev/null 2>&1; then
      return 0
    fi
    kill -0 "$connector_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "m2m-connector ($node_id) did not become ready; its log:" >&2
  cat "$dir/connector.log" >&2
  return 1
}
