#!/usr/bin/env bash
# Build the test bed's S3 server (MinIO) from its Go module, cached under ~/.cache by version.
# MinIO is a real S3 implementation: it checks signatures and checksums and honours conditional
# writes (If-None-Match: *), which the content store relies on. Prints the binary's path.
set -euo pipefail
version="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
cache="${BATCHX_CACHE:-$HOME/.cache/batchx-testbed}"
out="$cache/minio-$version/minio"
if [ -x "$out" ]; then echo "$out"; exit 0; fi
export GOTOOLCHAIN=local CGO_ENABLED=0
export GOMODCACHE="$cache/gomod" GOCACHE="$cache/gocache" GOFLAGS="-buildvcs=false"
start=$(date +%s)
echo "building MinIO $version (cold builds take a few minutes)" >&2
GOBIN="$out.partial.d" go install -trimpath -ldflags "-s -w" "github.com/minio/minio@$version" >&2
mv "$out.partial.d/minio" "$out"; rm -rf "$out.partial.d"
echo "built in $(( $(date +%s) - start ))s" >&2
echo "$out"
