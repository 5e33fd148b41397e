# Shared by the measurement scripts (sourced, not run): a free port, and the connector
# configuration they all measure (node test.m2m; children alice and bob in USD at scale 6;
# alice with a credit limit no run can reach).

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
}
