#!/usr/bin/env bash
# Validates every manifest in deploy/k8s/ against the Kubernetes JSON schemas (strict: a
# misspelt or unknown field fails), with the pinned kubernetes-validate of
# scripts/validate-k8s.requirements.txt in the venv .tools/venv-k8s (made on first run;
# needs PyPI once, then nothing). The manifests target Kubernetes 1.33, where
# backoffLimitPerIndex and the pod failure policy are GA; K8S_VERSION=1.31.0 checks
# another version. The API server's own checks of podFailurePolicy that a schema cannot
# express are in tests/deploy_failure_policy.rs.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv="$here/.tools/venv-k8s"
reqs="$here/scripts/validate-k8s.requirements.txt"
version="${K8S_VERSION:-1.33.0}"
# shellcheck source=scripts/pinned-venv.sh
source "$here/scripts/pinned-venv.sh"
pinned_venv validate-k8s "$venv" "$reqs"
shopt -s nullglob
manifests=("$here"/deploy/k8s/*.yaml "$here"/deploy/k8s/*.yml)
if [ ${#manifests[@]} -eq 0 ]; then
  echo "validate-k8s: no manifests in deploy/k8s/" >&2
  exit 1
fi
"$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "${manifests[@]}"
echo "validate-k8s: ${#manifests[@]} manifest(s) in deploy/k8s/ valid for Kubernetes $version (strict)"
