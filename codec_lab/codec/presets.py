"""Presets: the same decoder architecture at different encode (training) budgets, plus a tiny one for tests."""

from __future__ import annotations

from dataclasses import dataclass, replace

from codec_lab.codec.bitstream import MAX_CHANNELS, MAX_INTRA_PERIOD, MAX_LAYERS
from codec_lab.codec.model import CodecConfig, LayerSpec

DISTORTIONS = ("mse", "psnr")  # Preset.distortion's values (training._distortion)
MAX_MOTION_DEPTH = 3  # quadtree split levels (16x16 roots down to 4x4 take 2)


@dataclass(frozen=True)
class Preset:
    name: str
    config: CodecConfig
    iterations: int
    lr: float = 1e-2  # the networks' learning rate
    latent_lr_factor: float = 4.0  # the latents' learning rate is this times the networks'
    ste_fraction: float = 0.1  # last part of training uses straight-through rounding
    ste_lr_factor: float = 0.01  # small: with STE a latent can cross a rounding boundary the rate gradient does not see
    check_every: int = 10  # progress/time checks (the only host syncs in the loop)
    # prediction previous/motion: train the intra frames first, alone, at lambda x intra_lambda_factor,
    # then the rest with them frozen (encoder._train_intra_first; docs/codec.md, sessions 8-9)
    intra_first: bool = True
    intra_lambda_factor: float = 0.25
    # ... for this many times the preset's iterations: cheap (the intra frames are a few of the clip's),
    # and a lone frame gains from a longer schedule (Foreman 30 frames, lambda 6e-3: 4x, +0.73 dB at
    # the same rate; 4,800 iterations of 1 frame beside 1,200 of 30: ~12% more compute; docs/codec.md, session 9)
    intra_iteration_factor: float = 4.0
    # ... then their latents stay as that stage left them (True, sessions 8-16), or train on with the other
    # frames' (False): the joint loss sees what an I-frame is worth as every frame's reference (Foreman 30
    # frames, lambda 6e-3 and 2e-3: +0.34 and +0.33 dB at equal rate; docs/codec.md, session 17)
    intra_frozen: bool = False
    # the loss's distortion: "mse" (the clip's, Y:U:V weighed 6:1:1) or "psnr" (its gradient that of the
    # mean over frames of PSNR-YUV, what the metric reports; training._distortion)
    distortion: str = "mse"
    description: str = ""
    # the inter synthesis used with prediction="previous" (see `with_prediction`)
    inter_synth: tuple[LayerSpec, ...] = (
        LayerSpec(16, 1, True),
        LayerSpec(16, 1, True),
        LayerSpec(3, 3, False),
        LayerSpec(3, 3, False, residual=True),
    )
    motion_blocks: tuple[int, ...] = (8, 16)  # prediction="motion": the encoder picks one per clip (motion_search.choose_motion)
    # ... each also tried as the root of quadtree fields split this many times (down to 4x4; 0: uniform fields only)
    motion_depth: int = 0
    # ... and compensated overlapped across whole blocks' edges (format version 8; motion.plane_taps)
    motion_overlap: bool = False
    # ... with quarter-pixel vectors and 6-tap luma interpolation (format version 9; motion.sharp_phases)
    motion_sharp: bool = False
    intra_period: int = 8  # prediction "previous"/"motion": an intra frame every this many frames (0: frame 0 only; docs/codec.md)
    key_prediction: bool = True  # ... except that key frames after frame 0 are predicted from the key frame before
    # ... and the frames between those anchors (and the clip's last frame) are hierarchical B-frames (format version 10)
    bidirectional: bool = False

    def __post_init__(self) -> None:
        if self.distortion not in DISTORTIONS:  # training._distortion would otherwise take any other name as "psnr"
            raise ValueError(f"distortion {self.distortion!r} is not one of {DISTORTIONS}")
        if not 0 <= self.motion_depth <= MAX_MOTION_DEPTH:
            raise ValueError(f"motion_depth {self.motion_depth} is outside 0..{MAX_MOTION_DEPTH}")


DEFAULT_CONFIG = CodecConfig()

# prediction="motion" in the real presets: quadtree fields (16x16 or 8x8 roots down to 4x4) compensated
# overlapped, the uniform candidates refined for it: -13.8% BD-rate against uniform, plain fields on
# Foreman's 30 frames at 1,200 iterations (+0.4-0.9 dB from lambda 2e-3 up, -0.17 dB at 6e-3; docs/codec.md, session 12);
# with quarter-pixel vectors and 6-tap luma interpolation a further -19.3% (+0.15-1.2 dB at equal rate; session 13);
# with hierarchical B-frames between the key frames a further -18.9% (+0.75-1.3 dB at equal rate; session 14).
# The test preset keeps uniform, plain, half-pixel fields and P-frames (the tests name what they exercise).
MEASURED_MOTION = {"motion_depth": 2, "motion_overlap": True, "motion_sharp": True, "bidirectional": True}

PRESETS: dict[str, Preset] = {
    "test": Preset(
        "test",
        CodecConfig(
            n_levels=4,
            temporal_strides=(1, 1, 1, 1),
            synth=(LayerSpec(8, 1, True), LayerSpec(3, 3, False)),
            arm_hidden=8,
            arm_layers=1,
        ),
        iterations=60,
        lr=5e-2,
        latent_lr_factor=1.0,  # tuned with the tiny network's high rate
        check_every=5,
        description="tiny network, 60 iterations: for tests only",
        inter_synth=(LayerSpec(8, 1, True), LayerSpec(3, 3, False)),
    ),
    "fast": Preset("fast", DEFAULT_CONFIG, iterations=1200, description="CPU-affordable: 1200 iterations", **MEASURED_MOTION),
    "medium": Preset("medium", DEFAULT_CONFIG, iterations=4000, description="4000 iterations (GPU minutes, CPU tens of minutes)",
                     **MEASURED_MOTION),
    "full": Preset("full", DEFAULT_CONFIG, iterations=12000, lr=1e-2, check_every=50, description="12000 iterations: for the GPU",
                   **MEASURED_MOTION),
}

DEFAULT_PRESET = "fast"
DEFAULT_LMBDA = 1e-3
PREDICTIONS = ("intra", "previous", "motion")
# motion (period 8) is ahead of intra wherever both were measured (docs/codec.md), but its motion
# search runs on the CPU outside --max-seconds (~1.8 s a CIF frame, so ~40 s a 1080p frame): as the
# default it would blow `codec-lab run`'s time budget on large clips. Switch once the search is
# counted in the budget (or made cheap at large sizes).
DEFAULT_PREDICTION = "intra"


def with_prediction(preset: Preset, prediction: str, intra_period: int | None = None, key_prediction: bool | None = None,
                    bidirectional: bool | None = None) -> Preset:
    """`intra`: every frame from its own latents. `previous`: frames after the first correct the previous
    decoded frame. `motion`: they correct the previous decoded frame moved by coded block motion vectors.
    With `previous` or `motion`, a key frame comes every `intra_period` frames (None: the preset's;
    0: frame 0 only), intra, or with `key_prediction` (None: the preset's) predicted from the key
    frame before (frame 0 stays intra); with key prediction and `bidirectional` (None: the
    preset's, with `motion` only, where it was measured) the frames between key frames are
    B-frames (bitstream.frame_references)."""
    from codec_lab.errors import CodecLabError

    if prediction not in PREDICTIONS:
        raise CodecLabError(f"unknown prediction {prediction!r}; choose from {', '.join(PREDICTIONS)}")
    period = preset.intra_period if intra_period is None else intra_period
    if not 0 <= period <= MAX_INTRA_PERIOD:
        raise CodecLabError(f"intra period {period} is outside 0..{MAX_INTRA_PERIOD} (0: only frame 0 is intra)")
    inter = preset.inter_synth if prediction != "intra" else ()
    if key_prediction and not (inter and period):
        raise CodecLabError("key prediction needs prediction previous or motion and an intra period above 0")
    # the preset's own choice applies where it can (not to intra, nor to a single chain)
    keyed = key_prediction if key_prediction is not None else preset.key_prediction and bool(inter) and period > 0
    if bidirectional and not keyed:
        raise CodecLabError("B-frames need key prediction (prediction previous or motion, an intra period above 0)")
    bi = bidirectional if bidirectional is not None else preset.bidirectional and bool(keyed) and prediction == "motion"
    block = preset.motion_blocks[0] if prediction == "motion" else 0  # the encoder picks among motion_blocks
    return replace(preset, config=replace(preset.config, inter_synth=inter, motion_block=block, intra_period=period if inter else 0,
                                          key_prediction=bool(keyed), bidirectional=bool(bi)), bidirectional=bool(bi))


def with_synth_hidden(preset: Preset, width: int) -> Preset:
    """Both synthesis networks with `width` channels in their hidden (ReLU) layers: fewer weights to
    code (they are a quarter of a small clip's file at low rates) and fewer MAC/pixel."""
    from codec_lab.errors import CodecLabError

    if not 1 <= width <= 64:
        raise CodecLabError(f"synth_hidden must be 1..64 channels, not {width}")

    def narrowed(layers: tuple[LayerSpec, ...]) -> tuple[LayerSpec, ...]:
        return tuple(replace(layer, out=width) if layer.relu else layer for layer in layers)

    return replace(preset, config=replace(preset.config, synth=narrowed(preset.config.synth),
                                          inter_synth=narrowed(preset.config.inter_synth)),
                   inter_synth=narrowed(preset.inter_synth))


def parse_layers(text: str) -> tuple[LayerSpec, ...]:
    """Synthesis layers in Cool-chic's notation, "16-1-relu,16-1-relu,3-1,3-3-res,3-3-res": per layer
    its output channels, its kernel (1 or 3), then `relu` and/or `res` (a residual layer adds its
    input, so it keeps the channel count). The last layer gives the 3 channels of a frame."""
    from codec_lab.errors import CodecLabError

    layers: list[LayerSpec] = []
    for item in text.split(","):
        parts = item.strip().split("-")
        flags = set(parts[2:])
        if len(parts) < 2 or not (parts[0].isdigit() and parts[1] in ("1", "3")) or not flags <= {"relu", "res"} or len(flags) < len(parts) - 2:
            raise CodecLabError(f"synthesis layer {item.strip()!r} in {text!r}: write OUT-KERNEL[-relu][-res], e.g. 16-1-relu or 3-3-res")
        out = int(parts[0])
        if not 1 <= out <= MAX_CHANNELS:
            raise CodecLabError(f"synthesis layer {item.strip()!r}: {out} channels is outside 1..{MAX_CHANNELS}")
        if "res" in flags and (not layers or layers[-1].out != out):
            raise CodecLabError(f"synthesis layer {item.strip()!r}: a residual layer must follow a layer of the same {out} channels")
        layers.append(LayerSpec(out, int(parts[1]), "relu" in flags, "res" in flags))
    if not 1 <= len(layers) <= MAX_LAYERS or layers[-1].out != 3:
        raise CodecLabError(f"synthesis layers {text!r}: give 1..{MAX_LAYERS} layers, the last with 3 channels (Y, U, V)")
    return tuple(layers)


def layers_text(layers: tuple[LayerSpec, ...]) -> str:
    """`parse_layers`' notation for these layers."""
    return ",".join("-".join([str(s.out), str(s.kernel)] + ["relu"] * s.relu + ["res"] * s.residual) for s in layers)


def with_synth_layers(preset: Preset, layers: tuple[LayerSpec, ...]) -> Preset:
    """Both synthesis networks (the intra one, and the inter one where the clip is predicted) with these layers."""
    return replace(preset, config=replace(preset.config, synth=layers, inter_synth=layers if preset.config.inter_synth else ()),
                   inter_synth=layers)


def get_preset(name: str) -> Preset:
    from codec_lab.errors import CodecLabError

    if name not in PRESETS:
        raise CodecLabError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[name]
