"""A Job's Events tell its story: one per state change, with the numbers, in order.

Two real jobs under ``quota.jobs: 1`` and the test operator's 5-second resync: a napper that
runs 12 s, and a hello queued behind it. Both live through several resyncs (the hello waits in
QUEUED, the napper runs), which must add nothing: a background watch records every state the
jobs' statuses went through, and each job has exactly one Event per state it entered, in that
order, each seen once (`count` 1), and `kubectl describe` shows them as its timeline.

On the shared test bed other engineers' operators (all namespaces) may write some of these
jobs' states first, as a second replica would, and post those Events their own way (Kopf's
``kopf-event-*``): so every Event of the job's uid is counted, whoever posted it, sorted by
`eventTime` (both set it, to the microsecond). The wording checks need our operator to have
written the transition: rerun once if another operator got there first.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

import pytest
from kopf.testing import KopfRunner

from batchx.clients.kube import Kube
from batchx.models import JobState
from batchx.planning.events import event_body, involved, job_order
from tests.fixtures_cluster import Cluster
from tests.fixtures_jobs import JobBed
from tests.helpers import eventually
from tests.integration.bx import GROUP, VERSION, Bx
from tests.job_lab import JSON, Lab, make_env
from tests.watching import Recorder

pytestmark = pytest.mark.cluster

STATES = frozenset(s.value for s in JobState)
NAP_SECONDS = 12  # more than two resyncs of the test operator (5 s)


@pytest.fixture(scope="module")
def story(
    jobs_operator: KopfRunner, module_bx: Bx, job_bed: JobBed
) -> tuple[Lab, dict[str, list[str]]]:
    """The two jobs, run to their end; with the states each job's status went through."""
    lab = make_env(module_bx, job_bed, quota={"cpu": "2", "jobs": 1}, credits=1000)
    with Recorder.custom(module_bx.api, GROUP, VERSION, lab.name, "jobs") as jobs:
        lab.submit("nap", "examples/napper", {"seconds": NAP_SECONDS}, timeout=120)
        lab.wait_state("nap", "STARTING", "DOWNLOADING_INPUT", "RUNNING")
        lab.submit("after", "examples/hello-static:1.0.0", {"name": "ada"})
        assert lab.wait_done("nap")["status"]["state"] == "SUCCEEDED"
        assert lab.wait_done("after")["status"]["state"] == "SUCCEEDED"
        states: dict[str, list[str]] = {}
        for seen in jobs.seen():
            state = (seen.obj.get("status") or {}).get("state")
            path = states.setdefault(seen.name, [])
            if state and (not path or path[-1] != state):
                path.append(state)
    return lab, states


def ours(bx: Bx, lab: Lab, name: str) -> list[JSON]:
    """The Events about job `name`, oldest first (posted by any BatchX operator: see above)."""
    uid = lab.job(name)["metadata"]["uid"]
    items = bx.core.list_namespaced_event(lab.name, field_selector=f"involvedObject.uid={uid}")
    events = [bx.api.sanitize_for_serialization(e) for e in items.items]
    mine = [e for e in events if e["source"].get("component") == "batchx-operator"]
    return sorted(mine, key=lambda e: e["eventTime"])


def transitions(events: list[JSON]) -> list[str]:
    """The state each transition Event announces (its message starts with it)."""
    said = (e["message"].split(":")[0] for e in events)
    return [s for s in said if s in STATES]


def settled(bx: Bx, lab: Lab, name: str, final: str) -> list[JSON]:
    """The job's Events once the one of its final state is posted."""
    return eventually(
        lambda: (found := ours(bx, lab, name)) and final in transitions(found) and found,
        timeout=30,
        what=f"the {final} Event of job {name}",
    )


def test_one_event_per_state_change_in_order_under_resync(
    story: tuple[Lab, dict[str, list[str]]], module_bx: Bx
) -> None:
    lab, states = story
    for name in ("nap", "after"):
        events = settled(module_bx, lab, name, "SUCCEEDED")
        assert transitions(events) == states[name], (name, [e["message"] for e in events])
        assert [e.get("count") or 1 for e in events] == [1] * len(events), events
        assert sum(e["reason"] == "PodCreated" for e in events) == 1
        assert all(e["source"]["component"] == "batchx-operator" for e in events)
    # The hello waited behind the napper, through more than one resync, and was told so once.
    assert states["after"][:3] == ["SUBMITTED", "QUEUED", "STARTING"], states


def test_the_events_carry_the_numbers(
    story: tuple[Lab, dict[str, list[str]]], module_bx: Bx
) -> None:
    lab, _ = story
    events = settled(module_bx, lab, "after", "SUCCEEDED")
    by_state = {e["message"].split(":")[0]: e for e in events if e["reason"] != "PodCreated"}
    status = lab.job("after")["status"]
    queued = by_state["QUEUED"]
    assert queued["type"] == "Normal"
    assert "quota.jobs is 1 and 1 jobs are running" in queued["message"], queued
    admitted = by_state["STARTING"]
    reserved = status["credits"]["reserved"]
    assert number(r"([\d.]+) credits reserved", admitted) == pytest.approx(reserved), admitted
    assert f"image {status['image']['coordinates']}" in admitted["message"], admitted
    assert re.search(r"\d+ vCPUs, \d+ MB, \d+ GPUs, timeout \d+ s", admitted["message"]), admitted
    done = by_state["SUCCEEDED"]
    charged = status["credits"]["charged"]
    assert number(r"charged ([\d.]+) credits", done) == pytest.approx(charged), done
    assert number(r"\(([\d.]+) reserved, released\)", done) == pytest.approx(reserved), done
    assert "exit code 0" in done["message"], done
    assert re.search(r"ran \d+ s", done["message"]), done


def number(pattern: str, event: JSON) -> float:
    found = re.search(pattern, event["message"])
    assert found, (pattern, event["message"])
    return float(found.group(1))


def test_kubectl_describe_reads_like_a_timeline(
    story: tuple[Lab, dict[str, list[str]]], module_bx: Bx, cluster: Cluster
) -> None:
    lab, states = story
    settled(module_bx, lab, "nap", "SUCCEEDED")
    described = cluster.kubectl("describe", "bxjob", "nap", "-n", lab.name)
    assert described.returncode == 0, described.stderr
    timeline = described.stdout.split("Events:", 1)[1]
    shown = [s for s in re.findall(r"\b([A-Z_]{6,}):", timeline) if s in states["nap"]]
    assert shown == states["nap"], timeline


def test_the_same_news_posted_again_counts_up_on_one_event(
    story: tuple[Lab, dict[str, list[str]]], module_bx: Bx, kubeconfig: str
) -> None:
    """A retry, a restart between write and post, or a second operator posts news again: the
    API server then holds one Event with count 2, not two lines."""
    lab, _ = story
    uid = lab.job("nap")["metadata"]["uid"]
    ref = involved("Job", "nap", uid, lab.name)
    first = datetime.now(UTC)

    async def post_twice() -> None:
        kube = await Kube.connect(kubeconfig=kubeconfig)
        try:
            for at in (first, first + timedelta(seconds=3)):
                body = event_body(
                    ref,
                    "Normal",
                    "Probe",
                    "RUNNING: posted twice",
                    now=at,
                    component="batchx-operator",
                    instance="test",
                    order=job_order(JobState.RUNNING),
                )
                await kube.record_event(body)
        finally:
            await kube.close()

    asyncio.run(post_twice())
    probes = [e for e in ours(module_bx, lab, "nap") if e["reason"] == "Probe"]
    assert len(probes) == 1, probes
    assert probes[0]["count"] == 2
    assert probes[0]["firstTimestamp"] < probes[0]["lastTimestamp"]
