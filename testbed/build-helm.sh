#!/usr/bin/env bash
# Build helm from its Go module (cached under ~/.cache by version) so the chart can be rendered
# and checked against the test bed's API server. Prints the binary's path.
set -euo pipefail
version="${HELM_VERSION:-v3.22.0}"
cache="${BATCHX_CACHE:-$HOME/.cache/batchx-testbed}"
out="$cache/helm-$version/helm"
if [ -x "$out" ]; then echo "$out"; exit 0; fi
export GOTOOLCHAIN=local CGO_ENABLED=0
export GOMODCACHE="$cache/gomod" GOCACHE="$cache/gocache" GOFLAGS="-buildvcs=false"
start=$(date +%s)
echo "building helm $version" >&2
GOBIN="$out.partial.d" go install -trimpath -ldflags "-s -w" "helm.sh/helm/v3/cmd/helm@$version" >&2
mv "$out.partial.d/helm" "$out"; rm -rf "$out.partial.d"
echo "built in $(( $(date +%s) - start ))s" >&2
echo "$out"
