"""Training throughput when several models train together in one process (training.train_together).

    python benchmarks/gpu_together.py [--device cuda] [--sizes 176x144x30,352x288x30] [--counts 1,4,16] [--eager]

For each clip size and model count K: K models (preset full, motion, 8x8 blocks compensated as the
preset does, overlapped and sharp, random frames)
take turns an iteration at a time, each on its own CUDA stream replaying its CUDA graph; after
their warm-up and capture, ROUNDS rounds are timed. Prints one JSON line per (size, K): seconds
per round, iterations per second in all, and per model. If the GPU runs the models' kernels side by
side, the total grows with K; if it runs them one after the other, it stays flat. --eager: without
CUDA graphs (with --counts 1: the speed of one training alone, eager against graphs).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np
import torch

from codec_lab.codec import training
from codec_lab.codec.model import level_shapes
from codec_lab.codec.motion import grid
from codec_lab.codec.presets import PRESETS, with_prediction

ROUNDS = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--sizes", default="176x144x30,352x288x30")
    parser.add_argument("--counts", default="1,4,16")
    parser.add_argument("--eager", action="store_true", help="no CUDA graphs")
    args = parser.parse_args()
    dev = torch.device(args.device)
    preset = with_prediction(PRESETS["full"], "motion")
    cfg = replace(preset.config, motion_overlap=preset.motion_overlap, motion_sharp=preset.motion_sharp)  # as the encoder sets them
    training.INTRA_WARMUP = 0.0  # time the steady state (all frames), not the intra frames' warm-up
    for size in args.sizes.split(","):
        w, h, t = (int(v) for v in size.split("x"))
        for k in (int(c) for c in args.counts.split(",")):
            torch.manual_seed(0)
            y, uv = torch.rand(t, h, w, device=dev), torch.rand(t, 2, h // 2, w // 2, device=dev)
            runs = []
            for i in range(k):
                ones = np.ones(grid(h, w, cfg.motion_block) + (2,), np.int64)
                fields = {f: (ones,) * len(cfg.references(f, t)) for f in cfg.inter_frames(t)}  # a field per reference
                model = training.LatentModel(cfg, level_shapes(cfg, t, h, w), fields, noise_seed=i, frames=t).to(dev)
                runs.append(training.Training(model, y, uv, 1e-3, preset, cuda_graphs=dev.type == "cuda" and not args.eager))
            with training.reproducible_kernels(dev):
                for _ in range(5):  # 3 eager iterations, the capture, a replay
                    for run in runs:
                        run.advance()
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                for _ in range(ROUNDS):
                    for run in runs:
                        run.advance()
                if dev.type == "cuda":
                    torch.cuda.synchronize()
            sec = (time.perf_counter() - start) / ROUNDS
            peak = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else 0.0
            graphs = sorted({run.result().cuda_graphs for run in runs})
            print(json.dumps({"size": f"{w}x{h}", "frames": t, "models": k, "s_per_round": round(sec, 4),
                              "iterations_per_s": round(k / sec, 1), "s_per_iteration_per_model": round(sec, 4),
                              "s_per_iteration_per_frame": round(sec / k / t, 5), "peak_gib": round(peak, 2),
                              "cuda_graphs": graphs}), flush=True)
            del runs
            if dev.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()


if __name__ == "__main__":
    main()
