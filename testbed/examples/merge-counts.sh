#!/bin/sh
# merge-counts: adds up word counts files (as wordcount writes them: "<count> <word>" lines).
# Input:  {"counts": [<file>, ...]}   Output: {"counts": <file>, "words": <int>}
set -eu
input=/batchx/input/input.json
out=/batchx/output
# The platform writes each staged file's absolute path into input.json.
files=$(grep -o '"/batchx/input/files/[^"]*"' "$input" | tr -d '"')
if [ -z "$files" ]; then
    echo "merge-counts: no counts files in the input" >&2
    exit 2
fi
# shellcheck disable=SC2086 # one path per word, as the platform names them
cat $files | awk '{ c[$2] += $1 } END { for (w in c) print c[w], w }' | sort -k1,1rn -k2 \
    > "$out/counts.txt"
words=$(awk '{ s += $1 } END { print s + 0 }' "$out/counts.txt")
printf '{"counts": "%s/counts.txt", "words": %d}\n' "$out" "$words" > "$out/output.json"
echo "merge-counts: $words words"
