"""`semantic_latent` behind the bench's `SweepCodec` protocol (see `codec_lab.codecs`).

Encoding trains in this process; decoding runs `codec-lab decode` in a separate
process (so the RD point measures the standalone decoder), writing a .y4m that is
read back. The whole .clv file is payload: header, weights and latents.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from codec_lab.codecs import Encoded, Settings
from codec_lab.errors import CodecLabError
from codec_lab.video.frames import Clip

KNOWN_SETTINGS = {"lmbda", "preset", "iterations", "latent_levels", "max_seconds", "prediction", "intra_period", "arm_context",
                  "key_prediction", "intra_first", "intra_iteration_factor",
                  "intra_lambda_factor", "synth_layers", "synth_hidden", "distortion",
                  "motion_blocks", "motion_depth", "motion_overlap", "motion_sharp", "bidirectional",
                  "intra_frozen"}
LMBDA_POINTS = (2e-4, 6e-4, 2e-3, 6e-3)  # highest quality first
LMBDA_LIMITS = (1e-6, 1e-1)
LMBDA_STEP = 3.0


class SemanticLatentCodec:
    name = "semantic_latent"

    def __init__(self, preset: str = "fast", device: str = "auto", max_seconds: float | None = None, iterations: int | None = None, lmbdas=None, threads: int = 1,
                 prediction: str | None = None) -> None:
        self.threads = threads
        self.prediction = prediction
        self.preset = preset
        self.device = device
        self.max_seconds = max_seconds
        self.iterations = iterations
        self.lmbdas = tuple(lmbdas) if lmbdas else LMBDA_POINTS

    def _device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def sweep(self, clip: Clip) -> list[Settings]:
        extra = {"prediction": self.prediction} if self.prediction else {}
        return [{"lmbda": lm, "preset": self.preset, **extra} for lm in self.lmbdas]

    def beyond(self, settings: Settings, direction: str) -> Settings | None:
        if "lmbda" not in settings:
            return None
        lm = float(settings["lmbda"])
        lm = lm / LMBDA_STEP if direction == "higher" else lm * LMBDA_STEP
        if not LMBDA_LIMITS[0] <= lm <= LMBDA_LIMITS[1]:
            return None
        return {**settings, "lmbda": lm}

    def encode(self, clip: Clip, settings: Settings, out_stem: Path) -> Encoded:
        return self.encode_points(clip, [settings], [out_stem])[0]

    def encode_points(self, clip: Clip, settings: list[Settings], out_stems: list[Path]) -> list[Encoded]:
        """Several points that differ only in lmbda, trained together (encoder.encode_clip_points:
        on a GPU their kernels overlap). `last_results` holds the encoder's results."""
        import torch

        from codec_lab.codec.bitstream import SUFFIX
        from codec_lab.codec.encoder import encode_clip_points

        torch.set_num_threads(self.threads)
        for s in settings:
            if "lmbda" not in s:
                raise CodecLabError("semantic_latent settings need 'lmbda' (it has no crf or target bitrate)")
        rest = [{k: v for k, v in s.items() if k != "lmbda"} for s in settings]
        if any(r != rest[0] for r in rest):
            raise CodecLabError(f"points trained together may differ only in lmbda, got {settings}")
        preset = self._preset(settings[0])
        max_seconds = settings[0].get("max_seconds", self.max_seconds)
        paths = [Path(f"{stem}{SUFFIX}") for stem in out_stems]
        results = encode_clip_points(clip, [(path, float(s["lmbda"])) for path, s in zip(paths, settings)], preset=preset,
                                     device=self._device(), max_seconds=float(max_seconds) if max_seconds else None)
        self.last_results = results
        self.last_result = results[-1]
        return [Encoded(r.path, r.file_bytes, r.file_bytes, r.encode_seconds, mac_per_pixel=r.mac_per_pixel, estimated_bits=r.estimated_bits)
                for r in results]

    def _preset(self, settings: Settings):
        """The encoder preset that `settings` (all but lmbda) name."""
        from dataclasses import replace

        from codec_lab.codec.presets import (
            DEFAULT_PREDICTION,
            get_preset,
            parse_layers,
            with_prediction,
            with_synth_hidden,
            with_synth_layers,
        )

        unknown = set(settings) - KNOWN_SETTINGS
        if unknown:  # a setting the codec would silently ignore would make the planner learn from nothing
            raise CodecLabError(f"semantic_latent does not know the setting(s) {sorted(unknown)}; it takes {sorted(KNOWN_SETTINGS)}")
        preset = get_preset(str(settings.get("preset", self.preset)))
        iterations = settings.get("iterations", self.iterations)
        if iterations:
            preset = replace(preset, iterations=int(iterations))
        if "latent_levels" in settings:
            levels = int(settings["latent_levels"])
            preset = replace(preset, config=replace(preset.config, n_levels=levels, temporal_strides=(1,) * levels))
        if "arm_context" in settings:  # "raster" (the default) or "phases" (what files before version 5 used): for A/B runs
            from codec_lab.codec.bitstream import ARM_CONTEXTS

            if settings["arm_context"] not in ARM_CONTEXTS:
                raise CodecLabError(f"arm_context {settings['arm_context']!r} is not one of {', '.join(ARM_CONTEXTS)}")
            preset = replace(preset, config=replace(preset.config, arm_context=str(settings["arm_context"])))
        if "synth_layers" in settings:  # both synthesis networks' layers, "16-1-relu,16-1-relu,3-1,3-3-res,3-3-res"
            preset = with_synth_layers(preset, parse_layers(str(settings["synth_layers"])))
        if "synth_hidden" in settings:
            preset = with_synth_hidden(preset, int(settings["synth_hidden"]))
        for name in ("intra_iteration_factor", "intra_lambda_factor"):  # the intra-first stage's schedule and lambda
            if name in settings:
                factor = float(settings[name])
                if not 0 < factor <= 100:
                    raise CodecLabError(f"{name} must be in (0, 100], not {settings[name]!r}")
                preset = replace(preset, **{name: factor})
        if "distortion" in settings:  # what the loss calls distortion: "mse" or "psnr" (training._distortion)
            from codec_lab.codec.presets import DISTORTIONS

            if settings["distortion"] not in DISTORTIONS:
                raise CodecLabError(f"distortion {settings['distortion']!r} is not one of {', '.join(DISTORTIONS)}")
            preset = replace(preset, distortion=str(settings["distortion"]))
        if "motion_blocks" in settings:  # prediction motion: the block sizes the encoder chooses among, "4,8,16"
            from codec_lab.codec.bitstream import MOTION_BLOCKS

            raw = str(settings["motion_blocks"])
            parts = raw.split(",")
            if not all(part.strip().isdigit() and int(part) in MOTION_BLOCKS for part in parts):
                raise CodecLabError(f"motion_blocks {raw!r}: give block sizes separated by commas, each one of {', '.join(map(str, MOTION_BLOCKS))}")
            preset = replace(preset, motion_blocks=tuple(int(part) for part in parts))
        if "motion_depth" in settings:  # prediction motion: quadtree fields split this many times (0: uniform)
            from codec_lab.codec.presets import MAX_MOTION_DEPTH

            depth = settings["motion_depth"]
            if not (str(depth).isdigit() and 0 <= int(depth) <= MAX_MOTION_DEPTH):
                raise CodecLabError(f"motion_depth must be 0..{MAX_MOTION_DEPTH}, not {depth!r}")
            preset = replace(preset, motion_depth=int(depth))
        # true / false: the intra frames trained first (encoder._train_intra_first), their latents then kept as
        # that left them; prediction motion: overlapped compensation, quarter-pel 6-tap
        for name in ("intra_first", "intra_frozen", "motion_overlap", "motion_sharp"):
            if name in settings:
                if not isinstance(settings[name], bool):
                    raise CodecLabError(f"{name} must be true or false, not {settings[name]!r}")
                preset = replace(preset, **{name: settings[name]})
        period, keyed, bi = settings.get("intra_period"), settings.get("key_prediction"), settings.get("bidirectional")
        for name, value in (("key_prediction", keyed), ("bidirectional", bi)):  # bidirectional: B-frames between the key frames
            if value not in (None, True, False):
                raise CodecLabError(f"{name} must be true or false, not {value!r}")
        return with_prediction(preset, str(settings.get("prediction", self.prediction or DEFAULT_PREDICTION)),
                               int(period) if period is not None else None, keyed, bi)

    def decode(self, path: Path) -> Clip:
        from codec_lab.video import read_clip

        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "recon.y4m"
            proc = subprocess.run(
                [sys.executable, "-m", "codec_lab.commands.decode", str(path), "-o", str(out)],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                raise CodecLabError(f"decoding {path} failed: {proc.stderr.strip() or proc.stdout.strip()}")
            return read_clip(out)
