#!/bin/sh
# exit-with CODE: writes a valid output, then exits with CODE (the warning and error examples).
set -eu
code=${1:-0}
printf '{"note": "exited with %s on purpose"}\n' "$code" > /batchx/output/output.json
echo "exit-with: exiting with $code" >&2
exit "$code"
