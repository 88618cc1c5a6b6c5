#!/usr/bin/env bash
# Debian packages the test bed runs on. Kubernetes, etcd, MinIO, helm and the registry are not
# packaged: they are built from their Go modules by testbed/build-*.sh. buildah builds
# images/Dockerfile without a Docker engine; skopeo pushes the test bed's own small images.
set -euo pipefail
pkgs=(containerd runc containernetworking-plugins iptables iproute2 openssl busybox-static gcc libc6-dev make debootstrap buildah skopeo)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
