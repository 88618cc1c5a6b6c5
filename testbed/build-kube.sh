#!/usr/bin/env bash
# Build the Kubernetes components and etcd of the test bed from their Go modules.
#
# The binaries land in ~/.cache/batchx-testbed/kube-<version>-<go.sum hash>/bin and are reused
# as long as the wrapper module (testbed/kube) is unchanged, so only the first run compiles.
# Prints the bin directory on stdout; progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mod="$here/kube"
version=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2}' "$mod/go.mod")
key=$(cat "$mod/go.mod" "$mod/go.sum" | sha256sum | cut -c1-12)
cache="${BATCHX_CACHE:-$HOME/.cache/batchx-testbed}"
out="$cache/kube-$version-$key/bin"
components=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)

if [ -x "$out/etcd" ] && for c in "${components[@]}"; do [ -x "$out/$c" ] || exit 1; done; then
  echo "$out"; exit 0
fi

export GOTOOLCHAIN=local CGO_ENABLED=0
export GOMODCACHE="$cache/gomod" GOCACHE="$cache/gocache" GOFLAGS="-mod=readonly -buildvcs=false"
minor=$(echo "$version" | cut -d. -f2)
vpkg=k8s.io/component-base/version
ldflags="-s -w -X $vpkg.gitVersion=$version -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor"
ldflags+=" -X $vpkg.gitTreeState=clean -X $vpkg.buildDate=1970-01-01T00:00:00Z"
ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$version"

tmp="$out.partial"
rm -rf "$tmp"; mkdir -p "$tmp"
start=$(date +%s)
cd "$mod"
echo "building Kubernetes $version into $out (cold builds take a while on 2 cores)" >&2
pkgs=(); for c in "${components[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
go build -trimpath -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}" >&2
go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3 >&2
# Publish atomically: a crash mid-build never leaves a half-filled bin directory behind.
rm -rf "$out"; mv "$tmp" "$out"
echo "built in $(( $(date +%s) - start ))s" >&2
echo "$out"
