#!/bin/sh
# wordcount: turns an input text file into an output file of word counts (busybox userland).
# Input:  {"text": <file>}       Output: {"counts": <file>, "lines": <int>, "words": <int>}
# Exit 2 (listed in errorCodes) when the input file is missing.
set -eu
input=/batchx/input/input.json
out=/batchx/output
# input.json is written by the platform as one line of JSON; a sed pattern is enough here.
text=$(sed -n 's/.*"text"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$input")
if [ -z "$text" ] || [ ! -f "$text" ]; then
    echo "wordcount: input file '$text' is missing" >&2
    exit 2
fi
lines=$(wc -l < "$text")
words=$(wc -w < "$text")
tr -cs 'A-Za-z0-9' '\n' < "$text" | grep -v '^$' | sort | uniq -c | sort -rn > "$out/counts.txt"
printf '{"counts": "%s/counts.txt", "lines": %d, "words": %d}\n' "$out" "$lines" "$words" \
    > "$out/output.json"
echo "wordcount: $lines lines, $words words"
