#!/usr/bin/env bash
# The test bed's S3 server, MinIO, built from its Go module. MinIO is a real S3 implementation:
# it checks signatures and checksums and honours conditional writes (If-None-Match: *), which the
# content store relies on. Prints the binary's path.
exec "$(dirname "$0")/build-go-tool.sh" minio \
  "github.com/minio/minio@${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
