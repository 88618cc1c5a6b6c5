#!/usr/bin/env bash
# The test bed's OCI registry: the CNCF distribution registry (what Docker Hub, GitLab and Harbor
# run), built from its Go module like MinIO. Pods pull the product's images from it through a
# containerd mirror, as on any real cluster. Prints the binary's path.
exec "$(dirname "$0")/build-go-tool.sh" registry \
  "github.com/distribution/distribution/v3/cmd/registry@${REGISTRY_VERSION:-v3.1.2}"
