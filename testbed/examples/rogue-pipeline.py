"""rogue-pipeline: a pipeline that tries what it may not, and reports what the cluster said.

Its only step is wordcount; it runs napper (not a step), creates a Job without naming itself as
parent, and lists the environment's Secrets. Output: what became of each attempt.
"""

import json

from batchx.client import Client
from batchx.client.errors import ApiError

with Client() as bx:
    outside = bx.run("examples/napper", {"seconds": 0})
    try:
        bx.kube.create(
            "jobs",
            bx.env,
            {
                "apiVersion": "batchx.io/v1alpha1",
                "kind": "Job",
                "metadata": {"name": "orphan", "namespace": bx.env},
                "spec": {"image": "examples/wordcount", "input": {}},
            },
        )
        orphan = "created"
    except ApiError as err:
        orphan = f"refused {err.status}: {err}"
    try:
        bx.kube.core.list_namespaced_secret(bx.env)
        secrets = "listed"
    except Exception as err:  # the generated client's ApiException
        secrets = f"refused {getattr(err, 'status', '?')}"

output = {
    "step": outside.ref.name,
    "state": str(outside.state),
    "reason": outside.reason or "",
    "orphan": orphan,
    "secrets": secrets,
}
with open("/batchx/output/output.json", "w") as f:
    json.dump(output, f)
print(json.dumps(output))
