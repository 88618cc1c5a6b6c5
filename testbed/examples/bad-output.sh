#!/bin/sh
# bad-output: exits 0 but writes an output that violates its output schema ("count" must be an
# integer), so the job ends INVALID_OUTPUT.
set -eu
printf '{"count": "many"}\n' > /batchx/output/output.json
echo "bad-output: wrote a count that is not a number"
