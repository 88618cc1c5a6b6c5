//go:build tools

// Package kube pins the Kubernetes components the test bed builds from the k8s.io/kubernetes
// module. Nothing here is compiled: the blank imports only let `go mod tidy` record every
// dependency in go.sum, so builds are reproducible and need no network once the cache is warm.
package kube

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
