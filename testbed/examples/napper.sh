#!/bin/sh
# napper: sleeps for the input's "seconds", then reports it (busybox userland).
# Input:  {"seconds": <int>}     Output: {"slept": <int>}
# A job that runs for a known time and then succeeds: what outlives its Image's deletion.
set -eu
seconds=$(sed -n 's/.*"seconds"[[:space:]]*:[[:space:]]*\([0-9]*\).*/\1/p' /batchx/input/input.json)
echo "napper: sleeping ${seconds:-0} s"
sleep "${seconds:-0}"
printf '{"slept": %d}\n' "${seconds:-0}" > /batchx/output/output.json
echo "napper: done"
