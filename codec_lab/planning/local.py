"""`LocalPlanner`: Optuna TPE over the runnable strategies, warm-started from the history.

The objective is the scalar `scoring.score` (bits saved while meeting the targets; how far
off when not), so plans that meet the targets are preferred. With a handful of trials TPE
explores a lot, so each batch (once there is a best result) also holds one refinement: the
best plan so far with each numeric parameter nudged by about 5% of its range. Earlier results on this clip
and the best ones on clips of the same scene class are added to the study as completed
trials before asking for `n` new ones. Same seed + same history = same plans.
"""

from __future__ import annotations

import logging
import math
import random
import warnings
from collections.abc import Sequence
from typing import Any

from codec_lab.contracts import (
    Budget,
    ExpectedOutcome,
    ExperimentPlan,
    ExperimentRecord,
    ParamSpec,
    PlanDraft,
    SceneProfile,
    SearchSpace,
    StrategySpec,
    Targets,
    VideoInfo,
)
from codec_lab.planning.protocol import PlanningReport
from codec_lab.planning.scoring import measured_on_clip, record_score, rounds_done
from codec_lab.planning.space import default_search_space
from codec_lab.planning.validate import (
    DraftRejected,
    clamp_parameters,
    finalize,
    parameters_key,
)


def _distribution(spec: ParamSpec) -> Any:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if spec.kind == "categorical":
        return CategoricalDistribution(list(spec.choices or []))
    if spec.kind == "int":
        return IntDistribution(int(spec.low), int(spec.high))  # type: ignore[arg-type]
    return FloatDistribution(float(spec.low), float(spec.high), log=spec.log)  # type: ignore[arg-type]


def _unit(spec: ParamSpec, value: Any) -> float:
    """Position of `value` in [0, 1] along the parameter (log scale where the spec says)."""
    if spec.kind == "categorical":
        choices = spec.choices or []
        return choices.index(value) / max(1, len(choices) - 1) if value in choices else 0.5
    low, high, v = float(spec.low), float(spec.high), float(value)  # type: ignore[arg-type]
    if spec.log:
        low, high, v = math.log(low), math.log(high), math.log(v)
    return 0.0 if high == low else (v - low) / (high - low)


def _describe(record: ExperimentRecord) -> str:
    params = " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.plan.parameters.items())
    head = f"{record.plan.plan_id} {record.plan.strategy} {params}"
    r = record.result
    if r is None:
        return f"{head}: unfinished"
    if r.metrics is None:
        return f"{head}: failed"
    return f"{head}: {r.metrics.kbps:.0f} kbps, {r.metrics.quality.psnr_yuv:.2f} dB"


class LocalPlanner:
    """Optuna TPE (scalarised objective), deterministic for a given `seed` and history."""

    name = "local:optuna-tpe"
    method = "TPE"

    def __init__(
        self,
        space: SearchSpace | None = None,
        *,
        seed: int = 0,
        n_startup_trials: int = 4,
        similar_limit: int = 20,
        max_asks_per_plan: int = 25,
    ) -> None:
        self.space = space or default_search_space()
        self.seed = seed
        self.n_startup_trials = n_startup_trials
        self.similar_limit = similar_limit
        self.max_asks_per_plan = max_asks_per_plan
        self.last_report: PlanningReport | None = None

    # -- warm start -------------------------------------------------------------------
    def _warm_records(self, profile: SceneProfile, history: Sequence[ExperimentRecord]) -> list[ExperimentRecord]:
        finished = [r for r in history if r.result is not None]
        mine = sorted((r for r in finished if r.video_id == profile.video_id), key=lambda r: (r.plan.round, r.plan.plan_id))
        similar = [
            r for r in finished
            if r.video_id != profile.video_id and r.scene_class == profile.scene_class and r.status == "succeeded"
        ]
        similar.sort(key=lambda r: (-(r.score or 0.0), r.video_id, r.plan.plan_id))
        return mine + similar[: self.similar_limit]

    def _trial_params(self, strategy: StrategySpec, parameters: dict[str, Any]) -> tuple[dict, dict] | None:
        try:
            clean = clamp_parameters(strategy, parameters, [])
        except DraftRejected:
            return None
        params: dict[str, Any] = {"strategy": strategy.name}
        dists: dict[str, Any] = {"strategy": self._strategy_distribution()}
        for spec in strategy.params:
            if spec.name in clean:
                params[f"{strategy.name}.{spec.name}"] = clean[spec.name]
                dists[f"{strategy.name}.{spec.name}"] = _distribution(spec)
        return params, dists

    def _strategy_distribution(self) -> Any:
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution([s.name for s in self.space.runnable()])

    # -- proposing --------------------------------------------------------------------
    def propose(
        self,
        video: VideoInfo,
        profile: SceneProfile,
        history: Sequence[ExperimentRecord],
        targets: Targets,
        budget: Budget,
        n: int,
    ) -> list[ExperimentPlan]:
        round_ = rounds_done(history, profile.video_id) + 1
        runnable = self.space.runnable()
        if not runnable or n <= 0 or budget.rounds <= 0 or budget.experiments <= 0:
            self.last_report = PlanningReport(planner=self.name, round=round_, fallback_reason=None)
            return []
        warm = self._warm_records(profile, history)
        known = self._known_settings(warm, history, profile, targets)
        # Every runnable strategy gets tried on a clip at least once, however good the others
        # look elsewhere: TPE alone would never leave a strategy that other clips favour.
        tried_here = {r.plan.strategy for r in history if r.video_id == profile.video_id}
        untried = [s for s in runnable if s.name not in tried_here]
        wanted = min(n, budget.experiments)
        drafts: list[PlanDraft] = []
        rng = random.Random(self.seed * 1000 + round_)
        refined = self._refine(warm, profile, targets, known, rng)
        if refined is not None and len(warm) >= self.n_startup_trials and wanted > len(untried):
            drafts.append(refined)  # exploitation only where exploring untried strategies leaves room
        drafts += self._explore(warm, profile, targets, known, untried, wanted - len(drafts), round_, len(history), rng)
        done = finalize(drafts, space=self.space, profile=profile, history=history, budget=budget,
                        n=n, round_=round_, planner=self.name)
        self.last_report = PlanningReport(planner=self.name, round=round_, proposed=len(done.plans),
                                          dropped=done.dropped, adjusted=done.adjusted)
        return done.plans

    def _known_settings(self, warm: list[ExperimentRecord], history: Sequence[ExperimentRecord],
                        profile: SceneProfile, targets: Targets) -> dict[str, float]:
        """Settings already measured on this clip (with their score) or still running (nan): never proposed again."""
        known: dict[str, float] = {}
        for record in warm:
            strategy = self.space.strategy(record.plan.strategy)
            value = record_score(record, targets)
            if strategy is None or not strategy.runnable or value is None or not measured_on_clip(record.video_id, profile.video_id):
                continue
            try:
                known[parameters_key(strategy.name, clamp_parameters(strategy, dict(record.plan.parameters), []))] = value
            except DraftRejected:
                continue
        for record in history:  # unfinished ones on this clip
            if record.video_id == profile.video_id and record.result is None:
                known.setdefault(parameters_key(record.plan.strategy, dict(record.plan.parameters)), float("nan"))
        return known

    def _explore(self, warm: list[ExperimentRecord], profile: SceneProfile, targets: Targets, known: dict[str, float],
                 untried: list[StrategySpec], count: int, round_: int, n_history: int, rng: random.Random) -> list[PlanDraft]:
        """`count` new settings from TPE, warm-started with every scored result; untried strategies first."""
        import optuna
        from optuna.trial import create_trial

        runnable = self.space.runnable()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ExperimentalWarning for multivariate/group
            sampler = optuna.samplers.TPESampler(
                seed=self.seed * 1000 + round_,
                n_startup_trials=self.n_startup_trials,
                n_ei_candidates=64,
                gamma=lambda k: max(1, math.ceil(0.25 * k)),  # top quarter is "good": few trials here
                multivariate=True,
                group=True,
                constant_liar=True,
            )
            study = optuna.create_study(direction="maximize", sampler=sampler)
            for record in warm:
                strategy = self.space.strategy(record.plan.strategy)
                value = record_score(record, targets)
                if strategy is None or not strategy.runnable or value is None:
                    continue
                tp = self._trial_params(strategy, dict(record.plan.parameters))
                if tp is not None:
                    study.add_trial(create_trial(params=tp[0], distributions=tp[1], value=value))
            for strategy in untried:
                study.enqueue_trial({"strategy": strategy.name})

            drafts: list[PlanDraft] = []
            asks = 0
            while len(drafts) < count and asks < count * self.max_asks_per_plan:
                asks += 1
                trial = study.ask()
                name = trial.suggest_categorical("strategy", [s.name for s in runnable])
                strategy = self.space.strategy(name)
                assert strategy is not None
                params: dict[str, Any] = {}
                for spec in strategy.params:
                    key = f"{name}.{spec.name}"
                    if spec.kind == "categorical":
                        params[spec.name] = trial.suggest_categorical(key, list(spec.choices or []))
                    elif spec.kind == "int":
                        params[spec.name] = trial.suggest_int(key, int(spec.low), int(spec.high))  # type: ignore[arg-type]
                    else:
                        params[spec.name] = trial.suggest_float(key, float(spec.low), float(spec.high), log=spec.log)  # type: ignore[arg-type]
                    if isinstance(params[spec.name], float):
                        params[spec.name] = float(f"{params[spec.name]:.4g}")
                pk = parameters_key(name, params)
                if pk in known:  # already tried on this clip (or asked already): tell what we know, ask again
                    value = known[pk]
                    study.tell(trial, value if math.isfinite(value) else None,
                               state=None if math.isfinite(value) else optuna.trial.TrialState.FAIL)
                    continue
                known[pk] = float("nan")
                drafts.append(self._draft(strategy, params, profile, warm, targets, n_history, asks))
        return drafts

    def _refine(self, warm: list[ExperimentRecord], profile: SceneProfile, targets: Targets,
                known: dict[str, float], rng: random.Random) -> PlanDraft | None:
        """The best plan so far with its numeric parameters nudged (an exploitation step)."""
        scored = [(record_score(r, targets), r) for r in warm if r.status == "succeeded"]
        scored = [(v, r) for v, r in scored if v is not None and self.space.strategy(r.plan.strategy) is not None
                  and self.space.strategy(r.plan.strategy).runnable]  # type: ignore[union-attr]
        if not scored:
            return None
        value, best = max(scored, key=lambda t: (t[0], t[1].video_id == profile.video_id))
        strategy = self.space.strategy(best.plan.strategy)
        assert strategy is not None
        try:
            base = clamp_parameters(strategy, dict(best.plan.parameters), [])
        except DraftRejected:
            return None
        for _ in range(20):
            params = dict(base)
            for spec in strategy.params:
                if spec.kind == "categorical" or spec.name not in params:
                    continue
                lo, hi = float(spec.low), float(spec.high)  # type: ignore[arg-type]
                direction = rng.choice((-1, 0, 1))
                if spec.log:
                    moved = math.exp(math.log(float(params[spec.name])) + direction * 0.05 * math.log(hi / lo) * rng.uniform(0.5, 1.5))
                else:
                    moved = float(params[spec.name]) + direction * max(1.0 if spec.kind == "int" else 0.0, 0.05 * (hi - lo) * rng.uniform(0.5, 1.5))
                moved = min(max(moved, lo), hi)
                params[spec.name] = int(round(moved)) if spec.kind == "int" else float(f"{moved:.4g}")
            key = parameters_key(strategy.name, params)
            if key not in known:
                known[key] = float("nan")
                expected = ExpectedOutcome()
                if best.result and best.result.metrics:
                    m = best.result.metrics
                    expected = ExpectedOutcome(kbps=round(m.kbps, 1), psnr_yuv=round(m.quality.psnr_yuv, 2), meets_target=m.meets_target)
                where = "this clip" if best.video_id == profile.video_id else f"a similar '{profile.scene_class}' clip"
                return PlanDraft(strategy=strategy.name, parameters=params, expected=expected,
                                 rationale=f"refine the best so far on {where}: {_describe(best)} (score {value:.2f})"[:400])
        return None

    def _draft(self, strategy: StrategySpec, params: dict[str, Any], profile: SceneProfile,
               warm: list[ExperimentRecord], targets: Targets, n_history: int, ask: int) -> PlanDraft:
        mine = [r for r in warm if r.video_id == profile.video_id]
        scored = [(record_score(r, targets), r) for r in warm if r.plan.strategy == strategy.name and r.result]
        if not scored or len(warm) < self.n_startup_trials:
            rationale = (f"{self.method} warm-up sample {ask} ({len(mine)} result(s) on this clip, "
                         f"{len(warm) - len(mine)} on similar '{profile.scene_class}' clips): explore {strategy.name}")
            return PlanDraft(strategy=strategy.name, parameters=params, rationale=rationale)

        def distance(r: ExperimentRecord) -> float:
            return sum((_unit(s, params[s.name]) - _unit(s, r.plan.parameters.get(s.name, s.default))) ** 2
                       for s in strategy.params if s.name in params)

        nearest = min((r for _, r in scored), key=lambda r: (distance(r), r.video_id != profile.video_id))
        best_value, best = max(scored, key=lambda t: (t[0] if t[0] is not None else -1e9))
        expected = ExpectedOutcome()
        if nearest.result and nearest.result.metrics:
            m = nearest.result.metrics
            expected = ExpectedOutcome(kbps=round(m.kbps, 1), psnr_yuv=round(m.quality.psnr_yuv, 2), meets_target=m.meets_target)
        rationale = (f"{self.method} on {len(warm)} result(s) (score = bits saved while meeting targets); best so far "
                     f"{_describe(best)} (score {best_value:.2f}); nearest tried {_describe(nearest)}")
        return PlanDraft(strategy=strategy.name, parameters=params, rationale=rationale[:400], expected=expected)


class RandomSearchPlanner(LocalPlanner):
    """The same bookkeeping as `LocalPlanner` with seeded random search instead of TPE: no dependencies.

    For where optuna is not installed (the Plan Lambda's bundle is pure Python): untried strategies
    first, then the refinement of the best result, then uniform samples (log-uniform where the
    parameter is on a log scale) that were not measured on this clip.
    """

    name = "local:random-search"
    method = "random search"

    def _explore(self, warm: list[ExperimentRecord], profile: SceneProfile, targets: Targets, known: dict[str, float],
                 untried: list[StrategySpec], count: int, round_: int, n_history: int, rng: random.Random) -> list[PlanDraft]:
        runnable = self.space.runnable()
        queue = list(untried)
        drafts: list[PlanDraft] = []
        for ask in range(1, count * self.max_asks_per_plan + 1):
            if len(drafts) >= count:
                break
            strategy = queue.pop(0) if queue else rng.choice(runnable)
            params = {spec.name: _sample(spec, rng) for spec in strategy.params}
            pk = parameters_key(strategy.name, params)
            if pk in known:
                continue
            known[pk] = float("nan")
            drafts.append(self._draft(strategy, params, profile, warm, targets, n_history, ask))
        return drafts


def _sample(spec: ParamSpec, rng: random.Random) -> Any:
    if spec.kind == "categorical":
        return rng.choice(list(spec.choices or []))
    low, high = float(spec.low), float(spec.high)  # type: ignore[arg-type]
    if spec.kind == "int":
        return rng.randint(int(low), int(high))
    value = math.exp(rng.uniform(math.log(low), math.log(high))) if spec.log else rng.uniform(low, high)
    return float(f"{value:.4g}")


def local_planner(space: SearchSpace | None = None, *, seed: int = 0) -> LocalPlanner:
    """`LocalPlanner` (TPE) where optuna is installed, else `RandomSearchPlanner` (said in the log)."""
    import importlib.util

    try:
        installed = importlib.util.find_spec("optuna") is not None
    except (ImportError, ValueError):  # blocked, or a None entry in sys.modules
        installed = False
    if installed:
        return LocalPlanner(space, seed=seed)
    logging.getLogger(__name__).warning("optuna is not installed: the local planner is seeded random search, not TPE")
    return RandomSearchPlanner(space, seed=seed)
