"""count-all: a pipeline. wordcount on each input text in parallel, then merge-counts on them.

Input {"texts": [<file>, ...]} (bx:// references: a pipeline reads none of them itself); output
{"counts": "bx://...", "words": <int>, "children": [<job>, ...]}. The counts files of the
wordcount children go to merge-counts as they are (bx:// paths), without being downloaded.
"""

import json
import sys

from batchx.client import Client

with open("/batchx/input/input.json") as f:
    texts = json.load(f)["texts"]

with Client() as bx:  # in the pod: its own identity and environment
    counted = [bx.submit("examples/wordcount", {"text": text}) for text in texts]
    results = [bx.wait(job) for job in counted]
    failed = [r for r in results if not r.ok]
    if failed:
        print(f"count-all: {failed[0].ref.name} ended {failed[0].state}", file=sys.stderr)
        sys.exit(3)
    counts = [(r.output or {})["counts"] for r in results]  # bx:// paths, passed as they are
    merged = bx.run("examples/merge-counts", {"counts": counts})
    if not merged.ok or merged.output is None:
        print(f"count-all: merge ended {merged.state}: {merged.status.message}", file=sys.stderr)
        sys.exit(3)

output = {
    "counts": merged.output["counts"],
    "words": merged.output["words"],
    "children": [r.ref.name for r in results] + [merged.ref.name],
}
with open("/batchx/output/output.json", "w") as f:
    json.dump(output, f)
print(f"count-all: {output['words']} words in {len(texts)} texts")
