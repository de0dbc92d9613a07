"""The search space: the seed's four strategies and their bounded hyper-parameters.

`semantic_latent` follows the Cool-chic convention: loss = MSE + lmbda * bits per pixel,
so a LARGER `lmbda` gives a LOWER rate. Only runnable strategies are ever proposed.
"""

from __future__ import annotations

from codec_lab.contracts import ParamSpec, SearchSpace, StrategySpec

_LMBDA = dict(kind="float", low=1e-4, high=1e-1, log=True, default=1e-3)
_ITERATIONS = dict(kind="int", low=100, high=20000, default=2000)


def default_search_space() -> SearchSpace:
    return SearchSpace(
        strategies=[
            StrategySpec(
                name="semantic_latent",
                runnable=True,
                gpu=True,
                # Fitted to one H200 (benchmarks/gpu_rd.sh, session 5; within 35%): 0.045 s a step for
                # 8 QCIF frames (the launch floor: the pixel-only model said 0.0004), 0.033 s for one
                # 1080p frame, 0.080 for four. A g4dn's T4 is slower per pixel (not measured yet),
                # so for it these are lower bounds.
                gpu_seconds_per_iteration=0.03,
                gpu_seconds_per_iteration_megapixel=0.006,
                description="overfitted per-video latent grids + tiny synthesis net + autoregressive entropy model (Cool-chic family)",
                params=[
                    ParamSpec(name="preset", kind="categorical", choices=["fast", "medium", "full"], default="medium",
                              description="training schedule / network size"),
                    ParamSpec(name="lmbda", description="rate weight: loss = MSE + lmbda * bpp; larger = fewer bits", **_LMBDA),
                    ParamSpec(name="iterations", description="training steps", **_ITERATIONS),
                    ParamSpec(name="latent_levels", kind="int", low=1, high=8, default=7, optional=True,
                              description="number of latent resolutions"),
                    # The codec's `prediction` (intra | previous | motion) is left out on purpose:
                    # which is best is still being measured per clip kind (docs/codec.md); plans would
                    # spend the budget finding that out again on every clip.
                ],
            ),
            StrategySpec(
                name="i_frame_interpolation",
                runnable=False,
                gpu=True,
                gpu_seconds_per_iteration_megapixel=0.002,
                description="key frames by the latent codec, motion-compensated interpolation between them plus a coded residual",
                params=[
                    ParamSpec(name="key_interval", kind="int", low=2, high=32, default=8, description="frames between key frames"),
                    ParamSpec(name="lmbda", description="rate weight of the key frames; larger = fewer bits", **_LMBDA),
                    ParamSpec(name="iterations", description="training steps", **_ITERATIONS),
                ],
            ),
            StrategySpec(
                name="hybrid_semantic",
                runnable=False,
                gpu=True,
                gpu_seconds_per_iteration_megapixel=0.001,
                description="SVT-AV1 base layer + overfitted neural enhancement filter whose weights travel in the bitstream",
                params=[
                    ParamSpec(name="base_crf", kind="int", low=20, high=63, default=40, description="SVT-AV1 CRF of the base layer"),
                    ParamSpec(name="base_preset", kind="int", low=0, high=12, default=8, description="SVT-AV1 preset of the base layer"),
                    ParamSpec(name="filter_lmbda", description="rate weight of the filter weights; larger = fewer bits", **_LMBDA),
                    ParamSpec(name="iterations", description="training steps", **_ITERATIONS),
                ],
            ),
            StrategySpec(
                name="av1",
                runnable=True,
                gpu=False,
                description="SVT-AV1 alone (CPU)",
                params=[
                    ParamSpec(name="crf", kind="int", low=20, high=63, default=35, description="constant rate factor; larger = fewer bits"),
                    ParamSpec(name="preset", kind="int", low=0, high=12, default=6, description="speed preset; smaller = slower, better"),
                ],
            ),
        ]
    )
