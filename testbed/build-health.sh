#!/usr/bin/env bash
# Build the test bed's health checker (testbed/health: kstatus from sigs.k8s.io/cli-utils and
# Argo CD's Lua runtime, gopher-lua) from its module, cached under ~/.cache by the hash of its
# sources so an unchanged program is never rebuilt. Prints the binary's path.
set -euo pipefail
mod="$(cd "$(dirname "$0")" && pwd)/health"
key=$(cat "$mod/go.mod" "$mod/go.sum" "$mod/main.go" | sha256sum | cut -c1-12)
cache="${BATCHX_CACHE:-$HOME/.cache/batchx-testbed}"
out="$cache/health-$key/health"
if [ -x "$out" ]; then echo "$out"; exit 0; fi
export GOTOOLCHAIN=local CGO_ENABLED=0
export GOMODCACHE="$cache/gomod" GOCACHE="$cache/gocache" GOFLAGS="-mod=readonly -buildvcs=false"
start=$(date +%s)
echo "building the health checker (kstatus, gopher-lua) into $out" >&2
mkdir -p "$(dirname "$out")"
(cd "$mod" && go build -trimpath -ldflags "-s -w" -o "$out.partial" .) >&2
mv "$out.partial" "$out"
echo "built in $(( $(date +%s) - start ))s" >&2
echo "$out"
