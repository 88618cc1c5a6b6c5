"""The runner: the project's own containers next to a job's (stage-in, stage-out).

Design in `batchx.planning.job_pod`; the plan and report in `batchx.planning.job_protocol`; the
steps in `batchx.runner.stage`; the command line in `batchx.runner.__main__`
(``python -m batchx.runner stage-in|stage-out PLAN``).
"""
