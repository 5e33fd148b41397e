#!/usr/bin/env bash
# Validates the Kubernetes manifests in k8s/ offline (issue 11):
#   1. `kubectl kustomize` renders every kustomization (tigerbeetle, connector base, both
#      overlays) into target/k8s-rendered/;
#   2. every rendered object validates against the Kubernetes 1.29 schemas, strictly (unknown
#      fields are errors) with kubernetes-validate (PyPI, schemas bundled); a broken object is
#      fed first to show the validator can fail;
#   3. checkov (PyPI) finds no failed check (the skips are named on the objects, each with its
#      reason);
#   4. each rendered connector ConfigMap (its environment and every pod's config file), with the
#      Secret template's keys set to well-formed test values, is accepted by
#      `m2m-connector config validate`.
# Installs kubernetes-validate and checkov (pinned) when missing. Needs kubectl (with kustomize)
# and a built m2m-connector (M2M_BIN, default target/release/m2m-connector).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

KUBERNETES_VALIDATE_VERSION="1.37.0"
CHECKOV_VERSION="3.3.30"
M2M_BIN="${M2M_BIN:-target/release/m2m-connector}"
out="target/k8s-rendered"
say() { printf '== k8s: %s\n' "$*"; }

command -v kubectl >/dev/null || { say "kubectl (with kustomize) is needed and not installed"; exit 1; }
pip_version() { python3 -m pip show "$1" 2>/dev/null | sed -n 's/^Version: //p'; }
if [[ "$(pip_version kubernetes-validate)" != "$KUBERNETES_VALIDATE_VERSION" || "$(pip_version checkov)" != "$CHECKOV_VERSION" ]]; then
  say "installing kubernetes-validate==$KUBERNETES_VALIDATE_VERSION checkov==$CHECKOV_VERSION (pip)"
  python3 -m pip install -q --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "checkov==$CHECKOV_VERSION"
fi
[[ -x "$M2M_BIN" ]] || { say "$M2M_BIN is not built (cargo build --release --features tigerbeetle)"; exit 1; }

rm -rf "$out"
mkdir -p "$out"
kustomizations=(tigerbeetle connector/base connector/overlays/production connector/overlays/staging)
for kustomization in "${kustomizations[@]}"; do
  name="${kustomization//\//-}"
  kubectl kustomize "k8s/$kustomization" >"$out/$name.yaml"
  say "rendered k8s/$kustomization: $(grep -c '^kind:' "$out/$name.yaml") objects"
done

# The validator must be able to fail: a StatefulSet with a misspelt field and a string count.
cat >"$out/.broken.yaml" <<'YAML'
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: broken}
spec:
  replicas: "two"
  serviceName: broken
  selector: {matchLabels: {app: broken}}
  template:
    metadata: {labels: {app: broken}}
    spec:
      containers: [{name: broken, image: broken, imagePullPolicy: Always, resourcez: {}}]
YAML
if python3 -m kubernetes_validate -k 1.29.0 --strict --quiet "$out/.broken.yaml" >/dev/null 2>&1; then
  say "kubernetes-validate accepted a broken StatefulSet: it is not checking"; exit 1
fi
rm "$out/.broken.yaml"
python3 -m kubernetes_validate -k 1.29.0 --strict --quiet "$out"/*.yaml
say "every object is valid against the Kubernetes 1.29 schemas (strict)"

# --quiet prints failed checks only; the summary line counts them.
checkov_log="$out/checkov.txt"
python3 -m checkov.main -d "$out" --framework kubernetes --compact --quiet >"$checkov_log" 2>&1 || true
grep -q "Failed checks: 0" "$checkov_log" || { cat "$checkov_log"; say "checkov found failed checks"; exit 1; }
say "checkov: $(grep -o 'Passed checks: [0-9]*, Failed checks: [0-9]*, Skipped checks: [0-9]*' "$checkov_log")"

for rendered in "$out"/connector-*.yaml; do
  python3 - "$rendered" "$M2M_BIN" <<'PY'
import os, subprocess, sys, tempfile, yaml

rendered, binary = sys.argv[1:]
objects = [o for o in yaml.safe_load_all(open(rendered)) if o]
def one(kind, prefix):
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].startswith(prefix)]
    assert len(found) == 1, f"{rendered}: expected one {kind} {prefix}*, found {len(found)}"
    return found[0]
environment = one("ConfigMap", "connector-env")["data"]
files = one("ConfigMap", "connector-config")["data"]
secret = one("Secret", "connector-secrets")["stringData"]
replicas = one("StatefulSet", "connector")["spec"]["replicas"]
# Well-formed stand-ins for the template's placeholders (never real values).
test_values = {
    "EVM_PRIVATE_KEY": "0x" + "11" * 32,
    "M2M_TOKEN_ADDRESS": "0x" + "22" * 20,
    "TOKEN_NETWORK_REGISTRY": "0x" + "33" * 20,
    "EXPLORER_TOKEN": "k8s-validate-explorer-token",
}
for key, value in secret.items():
    assert value.startswith("REPLACE_WITH_"), f"{rendered}: Secret {key} holds a value, not a placeholder"
secrets = {key: test_values.get(key, f"k8s-validate-{key.lower()}") for key in secret}
with tempfile.TemporaryDirectory() as directory:
    for name, text in files.items():
        open(os.path.join(directory, name), "w").write(text)
    for ordinal in range(replicas):
        pod = f"connector-{ordinal}"
        assert f"{pod}.toml" in files, f"{rendered}: pod {pod} has no {pod}.toml in connector-config"
        env = {"PATH": os.environ["PATH"], **environment, **secrets, "NODE_ID": pod, "CONFIG_FILE": f"/etc/m2m/{pod}.toml"}
        result = subprocess.run([binary, "config", "validate", os.path.join(directory, f"{pod}.toml")], env=env, capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f"{rendered}: {pod}.toml refused by m2m-connector config validate:\n{result.stdout}{result.stderr}")
        print(f"== k8s: {os.path.basename(rendered)}: {pod}.toml and its environment accepted by config validate")
PY
done
say "ok"
