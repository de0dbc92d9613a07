"""Three rounds of the LocalPlanner on one real clip, with SVT-AV1 as the only runnable strategy.

Each round: the planner reads the store's history, proposes N plans (av1 crf/preset), every
plan is encoded with SVT-AV1 through `codec_lab.baselines`, decoded, measured with
`codec_lab.metrics`, and its result goes back into a fresh SqliteStore. Prints the plans
and scores per round, then the exact Bedrock prompt (rendered, not sent) for round 3.

    python benchmarks/planner_rounds.py [--clip PATH] [--frames 30] [--rounds 3] [--n 4] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from codec_lab.baselines import svt_av1
from codec_lab.contracts import Budget, ExperimentMetrics, ExperimentResult, Targets, VideoRecord
from codec_lab.metrics import bitrate_kbps, evaluate
from codec_lab.planning import BedrockPlanner, LocalPlanner, budget_left
from codec_lab.planning.space import default_search_space
from codec_lab.store import SqliteStore
from codec_lab.video.analysis import analyze_scene
from codec_lab.video.reader import probe, read_clip

CLIP = "/work/shared/testdata/y4m/S03_foreman_qcif_30f.y4m"


def run_plan(plan, clip, work: Path, targets: Targets) -> ExperimentResult:
    crf, preset = int(plan.parameters["crf"]), int(plan.parameters["preset"])
    codec = svt_av1(preset)
    start = time.perf_counter()
    try:
        encoded = codec.encode(clip, {"crf": crf, "preset": str(preset)}, work / plan.plan_id)
        decoded = codec.decode(encoded.path).head(clip.num_frames)
        quality = evaluate(clip, decoded, with_ms_ssim=False)
    except Exception as exc:  # recorded, never lost
        return ExperimentResult(plan_id=plan.plan_id, video_id=plan.video_id, status="failed", error=str(exc))
    kbps = bitrate_kbps(encoded.payload_bytes, clip.num_frames, float(clip.fps))
    metrics = ExperimentMetrics(quality=quality, kbps=kbps, payload_bytes=encoded.payload_bytes,
                                meets_target=targets.met_by(kbps, quality.psnr_yuv, quality.ssim))
    return ExperimentResult(plan_id=plan.plan_id, video_id=plan.video_id, status="succeeded", metrics=metrics,
                            artifacts={"bitstream": encoded.path.resolve().as_uri()},
                            timings={"encode": encoded.encode_seconds, "total": time.perf_counter() - start})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default=CLIP)
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n", type=int, default=4, help="plans per round")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prompt-round", type=int, default=3, help="render the Bedrock prompt of this round")
    ap.add_argument("--json", type=Path, help="also write the per-round results here")
    args = ap.parse_args(argv)

    targets = Targets()
    total = Budget(experiments=args.rounds * args.n, gpu_seconds=0, rounds=args.rounds)
    space = default_search_space().only(["av1"])
    info = probe(args.clip)
    clip = read_clip(args.clip, frames=args.frames)
    video_id = Path(args.clip).stem.lower()
    profile = analyze_scene(clip, video_id)
    info = info.model_copy(update={"frames": clip.num_frames, "duration_s": clip.num_frames / float(clip.fps)})
    planner = LocalPlanner(space, seed=args.seed)
    bedrock = BedrockPlanner(client=object(), space=space, fallback=False)  # renders only, never called
    print(f"clip {args.clip}: {clip.width}x{clip.height}, {clip.num_frames} frames @ {float(clip.fps):g} fps, "
          f"scene class {profile.scene_class} (SI {profile.si_mean:.1f}, TI {profile.ti_mean:.1f}, motion {profile.motion_mean:.2f} px)")
    print(f"targets: <= {targets.max_kbps:g} kbps, >= {targets.min_psnr_yuv:g} dB PSNR-YUV, >= {targets.min_ssim:g} SSIM; "
          f"score = log2(max_kbps/kbps) + 0.1*min(PSNR headroom, 10) when met, < -1 when not\n")

    summary, prompt = [], None
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "lab.sqlite", targets=targets)
        store.put_video(VideoRecord(video_id=video_id, source_uri=Path(args.clip).resolve().as_uri(), info=info,
                                    profile=profile, targets=targets, budget=total, status="running"))
        best_so_far = None
        for round_ in range(1, args.rounds + 1):
            history = store.history_for(video_id)
            left = budget_left(total, history, video_id)
            if round_ == args.prompt_round:
                request = bedrock.build_request(info, profile, history, targets, left, args.n)
                prompt = (request["system"][0]["text"], request["messages"][0]["content"][0]["text"])
            t0 = time.perf_counter()
            plans = planner.propose(info, profile, history, targets, left, args.n)
            plan_s = time.perf_counter() - t0
            store.put_plans(plans)
            print(f"== round {round_}: {len(plans)} plan(s) in {plan_s:.2f}s (budget left: {left.experiments} experiments)")
            print(f"   {'plan':<16} {'crf':>3} {'preset':>6} {'kbps':>8} {'PSNR-YUV':>8} {'SSIM':>6} {'met':>4} {'score':>6}  rationale")
            scores = []
            for plan in plans:
                result = run_plan(plan, clip, Path(tmp), targets)
                store.put_result(result)
                record = store.get_experiment(video_id, plan.plan_id)
                m = result.metrics
                if m is None:
                    print(f"   {plan.plan_id:<16} failed: {result.error}")
                    continue
                scores.append(record.score)
                if best_so_far is None or record.score > best_so_far[0]:
                    best_so_far = (record.score, plan.plan_id, plan.parameters, m.kbps, m.quality.psnr_yuv)
                print(f"   {plan.plan_id:<16} {plan.parameters['crf']:>3} {plan.parameters['preset']:>6} {m.kbps:>8.1f} "
                      f"{m.quality.psnr_yuv:>8.2f} {m.quality.ssim:>6.4f} {'yes' if m.meets_target else 'no':>4} "
                      f"{record.score:>6.2f}  {plan.rationale[:90]}")
            met = sum(1 for s in scores if s > -1)
            row = {"round": round_, "best": max(scores), "mean": sum(scores) / len(scores), "met": met, "plans": len(plans),
                   "best_so_far": best_so_far[0]}
            summary.append(row)
            print(f"   round {round_}: best {row['best']:.2f}, mean {row['mean']:.2f}, {met}/{len(plans)} meet the targets; "
                  f"best so far {best_so_far[1]} crf={best_so_far[2]['crf']} preset={best_so_far[2]['preset']} "
                  f"({best_so_far[3]:.1f} kbps, {best_so_far[4]:.2f} dB, score {best_so_far[0]:.2f})\n")
        store.close()

    print("== summary")
    for row in summary:
        print(f"   round {row['round']}: best {row['best']:6.2f}  mean {row['mean']:6.2f}  met {row['met']}/{row['plans']}  "
              f"best so far {row['best_so_far']:.2f}")
    if prompt is not None:
        print(f"\n== the Bedrock prompt for round {args.prompt_round} (rendered, not sent)\n--- system ---\n{prompt[0]}\n--- user ---\n{prompt[1]}")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "prompt": prompt}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
