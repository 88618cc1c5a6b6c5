#!/usr/bin/env bash
# Build one Go program of the test bed from its module, cached under ~/.cache by version:
#   build-go-tool.sh NAME PACKAGE@VERSION
# Prints the binary's path. Used for MinIO (the S3 server) and helm (to check the chart).
set -euo pipefail
name=$1 spec=$2
version=${spec##*@}
cache="${BATCHX_CACHE:-$HOME/.cache/batchx-testbed}"
out="$cache/$name-$version/$name"
if [ -x "$out" ]; then echo "$out"; exit 0; fi
export GOTOOLCHAIN=local CGO_ENABLED=0
export GOMODCACHE="$cache/gomod" GOCACHE="$cache/gocache" GOFLAGS="-buildvcs=false"
start=$(date +%s)
echo "building $name $version (cold builds take a few minutes)" >&2
GOBIN="$out.partial.d" go install -trimpath -ldflags "-s -w" "$spec" >&2
mv "$out.partial.d/$name" "$out"; rm -rf "$out.partial.d"
echo "built in $(( $(date +%s) - start ))s" >&2
echo "$out"
