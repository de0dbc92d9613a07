"""The Lambda-side modules import without torch (and without optuna, until LocalPlanner is used); planning works without optuna."""

import subprocess
import sys
import textwrap

BLOCKER = textwrap.dedent("""
    import sys
    BLOCKED = {blocked!r}
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{{name}} is blocked in this test")
            return None
    sys.meta_path.insert(0, Block())
""")


def run(blocked, code):
    script = BLOCKER.format(blocked=set(blocked)) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)


def test_blocker_really_blocks():
    proc = run({"torch"}, "import torch")
    assert proc.returncode != 0 and "torch is blocked" in proc.stderr


def test_contracts_planning_store_import_without_torch_or_optuna():
    proc = run({"torch", "optuna", "numpy"}, """
        import codec_lab.contracts, codec_lab.planning, codec_lab.store
        import codec_lab.planning.bedrock, codec_lab.store.dynamo, codec_lab.commands.history
        from codec_lab.planning import BedrockPlanner, make_planner
        assert "torch" not in sys.modules and "optuna" not in sys.modules
        print("ok")
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_local_planner_runs_without_torch():
    proc = run({"torch"}, """
        from codec_lab.contracts import Budget, Targets
        from codec_lab.planning import LocalPlanner
        from codec_lab.planning.samples import sample_profile, sample_video
        plans = LocalPlanner(seed=0).propose(sample_video(), sample_profile(), [], Targets(), Budget(), 2)
        print(len(plans))
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "2"


def test_where_optuna_is_missing_the_local_planner_still_plans():
    # the Plan Lambda's bundle: no optuna, no numpy, no torch
    proc = run({"torch", "optuna", "numpy"}, """
        from codec_lab.contracts import Budget, Targets
        from codec_lab.planning import PlannerSettings, make_planner
        from codec_lab.planning.samples import sample_profile, sample_video
        planner = make_planner(PlannerSettings(kind="local"))
        plans = planner.propose(sample_video(), sample_profile(), [], Targets(), Budget(), 3)
        print(planner.name, len(plans))
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "local:random-search 3"
