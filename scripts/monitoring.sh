#!/usr/bin/env bash
# Checks monitoring/ (issue 11):
#   1. promtool checks the alert rules and runs their unit tests (alerts.test.yml);
#   2. every PromQL expression of the Grafana dashboards parses (promtool check rules, over a
#      rules file made of them), and the committed JSON is what dashboards/generate.py writes;
#   3. a real node (the release binary) carries a little traffic; its /metrics passes
#      `promtool check metrics`, and every metric named by a rule or a dashboard exists in it.
# Installs Debian's prometheus package (for promtool) when missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
M2M_BIN="${M2M_BIN:-$PWD/target/release/m2m-connector}"
LOADGEN_BIN="${LOADGEN_BIN:-$PWD/target/release/m2m-loadgen}"
say() { printf '== monitoring: %s\n' "$*"; }

if ! command -v promtool >/dev/null; then
  say "installing promtool (apt: prometheus)"
  sudo_cmd=(); [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends prometheus >/dev/null
fi
python3 -c 'import yaml' 2>/dev/null || python3 -m pip install -q --disable-pip-version-check pyyaml
[[ -x "$M2M_BIN" && -x "$LOADGEN_BIN" ]] || { say "$M2M_BIN or $LOADGEN_BIN is not built"; exit 1; }

work="$(mktemp -d -t m2m-monitoring.XXXXXX)"
connector_pid=""
trap 'stop_pid "$connector_pid" 10; rm -rf "$work"' EXIT

promtool check rules monitoring/alerts.yml
(cd monitoring && promtool test rules alerts.test.yml)

python3 monitoring/dashboards/generate.py --check
python3 - "$work/dashboards.rules.yml" <<'PY'
import json, pathlib, sys, yaml
rules = []
for path in sorted(pathlib.Path("monitoring/dashboards").glob("*.json")):
    board = json.loads(path.read_text())
    for panel in board["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$instance", ".*")
            rules.append({"record": f"dashboard:{path.stem.replace('-', '_')}:{panel['id']}_{target['refId']}", "expr": expr})
yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}, open(sys.argv[1], "w"))
print(f"== monitoring: {len(rules)} dashboard expressions")
PY
promtool check rules "$work/dashboards.rules.yml" >/dev/null
say "every dashboard expression parses"

two_free_ports
start_connector "$M2M_BIN" monitoring "$work/node" true "$btp_port" "$health_port" 20 || exit 1
"$LOADGEN_BIN" --role both --url "ws://127.0.0.1:$btp_port" --packets 200 --window 4 --seconds 20 >/dev/null
curl -fsS "http://127.0.0.1:$health_port/metrics" >"$work/metrics.txt"
promtool check metrics <"$work/metrics.txt" || { say "promtool check metrics found problems in /metrics"; exit 1; }
say "/metrics passes promtool check metrics"

python3 - "$work/metrics.txt" <<'PY'
import json, pathlib, re, sys, yaml

exposed = set()
for line in open(sys.argv[1]):
    if line.startswith("# TYPE "):
        name, kind = line.split()[2:4]
        exposed.add(name)
        if kind == "histogram":
            exposed.update({name + "_bucket", name + "_sum", name + "_count"})

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool", "inf", "nan"}
# Made by Prometheus itself, not by the node.
SCRAPE_SERIES = {"up"}

def metric_names(expr):
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)          # string literals
    expr = re.sub(r"\{[^}]*\}", "", expr)                      # label matchers
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)                     # ranges
    expr = re.sub(r"\b\d+(ms|[smhdwy])\b", "", expr)            # durations (offset 1d)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        token, rest = match.group(0), expr[match.end():].lstrip()
        if rest.startswith("(") or token.lower() in KEYWORDS:
            continue
        names.add(token)
    return names

named = {}
for group in yaml.safe_load(open("monitoring/alerts.yml"))["groups"]:
    for rule in group["rules"]:
        for name in metric_names(rule["expr"]):
            named.setdefault(name, set()).add(f"alert {rule['alert']}")
for path in sorted(pathlib.Path("monitoring/dashboards").glob("*.json")):
    for panel in json.loads(path.read_text())["panels"]:
        for target in panel["targets"]:
            for name in metric_names(target["expr"]):
                named.setdefault(name, set()).add(f"{path.name}: {panel['title']}")
missing = {name: where for name, where in named.items() if name not in exposed and name not in SCRAPE_SERIES}
if missing:
    for name, where in sorted(missing.items()):
        print(f"== monitoring: {name} is not on the node's /metrics; named by {', '.join(sorted(where))}")
    sys.exit(1)
assert len(named) >= 20, f"suspiciously few metric names found: {sorted(named)}"
print(f"== monitoring: all {len(named)} metrics named by the rules and dashboards exist on a real node's /metrics")
PY
say "ok"
