"""The pipeline's steps, named and ordered as both the local runner and the AWS
state machine run them (a test compares the synthesized state machine with this).
No torch here.

- Analyze: probe and validate the video, scene profile, classical anchor sweep
- Plan: the planner proposes this round's experiment plans
- RunExperiments: each plan is encoded, decoded by a separate process, evaluated
- Record: each result (success or failure) goes into the store as it finishes
- Decide: stop when the targets are met, the budget is spent or the rounds run out; else Plan again
- Report: report.html and rd.png, summary into the store
"""

ANALYZE = "Analyze"
PLAN = "Plan"
RUN_EXPERIMENTS = "RunExperiments"
RECORD = "Record"
DECIDE = "Decide"
REPORT = "Report"

PIPELINE_STEPS: tuple[str, ...] = (ANALYZE, PLAN, RUN_EXPERIMENTS, RECORD, DECIDE, REPORT)
