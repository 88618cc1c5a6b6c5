#!/usr/bin/env bash
# helm, built from its Go module, so the chart is rendered and checked against the test bed's API
# server. Prints the binary's path.
exec "$(dirname "$0")/build-go-tool.sh" helm "helm.sh/helm/v3/cmd/helm@${HELM_VERSION:-v3.22.0}"
