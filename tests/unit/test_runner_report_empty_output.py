"""An empty output (``{}``: an image whose output schema needs nothing) is an output.

Both report writers leave an empty output out of the termination message (`RunnerReport.to_json`
and the store-less sidecar's `uploaded_report`), and the reader took the missing key for "no
output": every such job ended INVALID_OUTPUT, "the output could not be read" (found by the
tenancy probe of tests/integration/test_tenancy.py, whose output is ``{}``).
"""

from __future__ import annotations

from batchx.planning.job_protocol import Outcome, RunnerReport, parse_report
from batchx.runner.output import invalid_report, uploaded_report


def test_an_empty_output_reads_back_as_an_empty_output() -> None:
    for text in (uploaded_report({}), RunnerReport(Outcome.UPLOADED, output={}).to_json()):
        report = parse_report(text)
        assert report is not None, text
        assert report.output == {}, text


def test_a_report_that_points_to_the_store_or_says_invalid_has_no_inline_output() -> None:
    stored = RunnerReport(Outcome.UPLOADED, result="jobs/j/.batchx/result.json", digest="sha256:0")
    for text in (stored.to_json(), invalid_report("not JSON")):
        report = parse_report(text)
        assert report is not None, text
        assert report.output is None, text
