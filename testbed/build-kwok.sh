#!/usr/bin/env bash
# KWOK (Kubernetes WithOut Kubelet, sigs.k8s.io/kwok) built from its Go module like MinIO: one
# process that plays the kubelet for many fake nodes, so a benchmark can run thousands of pods
# that run nowhere against the test bed's real API server (benchmarks/bench_scale.py). Prints the
# binary's path.
exec "$(dirname "$0")/build-go-tool.sh" kwok "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION:-v0.8.0}"
