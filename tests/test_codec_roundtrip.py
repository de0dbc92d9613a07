"""semantic_latent: encode -> file -> decode, exactness, determinism, rate accounting."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from codec_lab.codec import bitstream
from codec_lab.codec.decoder import decode_bytes, decode_file
from codec_lab.codec.encoder import encode_clip, encode_clip_points
from codec_lab.codec.model import synth_layer_tuples
from codec_lab.codec.presets import PRESETS, with_prediction
from codec_lab.errors import CodecLabError
from tests.conftest import synthetic_clip

torch.set_num_threads(1)
TEST = PRESETS["test"]


@pytest.fixture(scope="module", params=["intra", "previous", "motion", "motion/2"])
def encoded(request, tmp_path_factory):
    """Every test that takes it runs on each kind of file: all frames intra, frames predicted from the previous one,
    and from it moved by motion vectors, with frame 0 the only intra frame or (/2) every second frame intra."""
    clip = synthetic_clip(frames=3)
    path = tmp_path_factory.mktemp("enc") / "clip.clv"
    prediction, _, period = request.param.partition("/")
    preset = with_prediction(TEST, prediction, int(period) if period else None)
    result = encode_clip(clip, path, lmbda=1e-3, preset=preset)
    return clip, path, result


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-9))


def test_round_trip_in_process_is_exact(encoded):
    clip, path, result = encoded
    decoded = decode_file(path)
    for plane in ("y", "u", "v"):
        assert np.array_equal(getattr(decoded.clip, plane), getattr(result.reconstruction, plane)), plane
    assert decoded.clip.y.shape == clip.y.shape and decoded.clip.u.shape == clip.u.shape
    assert decoded.clip.fps == clip.fps
    assert decoded.header.strategy == "semantic_latent"


def test_reconstruction_resembles_the_input(encoded):
    clip, _path, result = encoded
    # 40 iterations of a tiny network: far from good, but clearly better than a flat grey frame
    flat = np.full_like(clip.y, 128)
    assert psnr(clip.y, result.reconstruction.y) > psnr(clip.y, flat) + 2.0


def test_bitrate_is_the_file_size_and_the_estimate_is_close(encoded):
    _clip, path, result = encoded
    size = path.stat().st_size
    assert result.file_bytes == size
    # the estimate counts the latents with ideal code lengths and every other byte exactly
    assert abs(result.estimated_bits / 8 - size) <= 8 + 0.02 * size


def test_separate_process_decode_equals_encoder_reconstruction(encoded, tmp_path):
    _clip, path, result = encoded
    out = tmp_path / "recon.y4m"
    proc = subprocess.run([sys.executable, "-m", "codec_lab.cli", "decode", str(path), "-o", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "MAC/pixel" in proc.stdout and "3 frames" in proc.stdout
    from codec_lab.video import read_clip

    recon = read_clip(out)
    for plane in ("y", "u", "v"):
        assert np.array_equal(getattr(recon, plane), getattr(result.reconstruction, plane)), plane


def test_decoder_does_not_import_training_code(encoded):
    _clip, path, _result = encoded
    code = (
        "import sys; from codec_lab.codec.decoder import decode_file; decode_file(sys.argv[1]);"
        "bad=[m for m in sys.modules if m in ('codec_lab.codec.encoder', 'codec_lab.codec.training', 'codec_lab.codec.presets', 'codec_lab.codec.motion_search')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_same_input_and_settings_give_the_same_file(encoded, tmp_path):
    clip, path, result = encoded
    preset = replace(TEST, config=result.config.with_shifts(TEST.config.synth_shift, TEST.config.arm_shift))
    again = encode_clip(clip, tmp_path / "again.clv", lmbda=1e-3, preset=preset)
    assert again.path.read_bytes() == path.read_bytes()
    other_seed = encode_clip(clip, tmp_path / "seed.clv", lmbda=1e-3, preset=preset, seed=1)
    assert other_seed.path.read_bytes() != path.read_bytes()


def test_decode_is_independent_of_thread_count(encoded):
    _clip, path, result = encoded
    data = path.read_bytes()
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        two = decode_bytes(data).clip
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(two.y, result.reconstruction.y) and np.array_equal(two.v, result.reconstruction.v)


def test_odd_size_round_trip(tmp_path):
    clip = synthetic_clip(frames=2, height=27, width=33)
    result = encode_clip(clip, tmp_path / "odd.clv", lmbda=1e-3, preset=replace(TEST, iterations=10))
    decoded = decode_file(result.path).clip
    assert decoded.y.shape == (2, 27, 33) and decoded.u.shape == (2, 14, 17)
    assert np.array_equal(decoded.y, result.reconstruction.y) and np.array_equal(decoded.u, result.reconstruction.u)


def test_output_folder_is_made_and_a_folder_as_output_fails_before_training(tmp_path, monkeypatch):
    clip = synthetic_clip(frames=1)
    result = encode_clip(clip, tmp_path / "new" / "deeper" / "a.clv", lmbda=1e-3, preset=replace(TEST, iterations=2))
    assert result.path.stat().st_size == len(result.path.read_bytes()) > 0

    from codec_lab.codec import encoder

    def no_training(*_):
        raise AssertionError("trained before the output was checked")

    monkeypatch.setattr(encoder, "train_together", no_training)
    with pytest.raises(CodecLabError, match="is a folder: give a file name"):
        encode_clip(clip, tmp_path / "new", lmbda=1e-3, preset=replace(TEST, iterations=2))
    with pytest.raises(CodecLabError, match="two RD points would write the same file"):
        encode_clip_points(clip, [(tmp_path / "b.clv", 1e-3), (tmp_path / "x" / ".." / "b.clv", 2e-3)], preset=replace(TEST, iterations=2))


def test_lambda_sets_the_rate(tmp_path):
    clip = synthetic_clip(frames=2)
    preset = replace(TEST, iterations=30)
    small = encode_clip(clip, tmp_path / "hi_lambda.clv", lmbda=3e-2, preset=preset)
    large = encode_clip(clip, tmp_path / "lo_lambda.clv", lmbda=1e-4, preset=preset)
    assert small.file_bytes < large.file_bytes


def test_header_describes_the_clip(encoded):
    clip, path, result = encoded
    header = bitstream.parse_file(path.read_bytes()).header
    assert (header.width, header.height, header.frames, header.fps) == (clip.width, clip.height, clip.num_frames, clip.fps)
    assert header.levels == TEST.config.n_levels
    assert header.inter_synth == synth_layer_tuples(result.config, inter=True)  # () for an all-intra file


def test_an_inter_frame_with_no_correction_is_the_previous_decoded_frame():
    """The decoder's inter path: prediction = the previous decoded frame, exactly; the network adds a correction."""
    from codec_lab.codec.model import (
        dequantize,
        level_shapes,
        reconstruct,
        synth_param_shapes,
    )

    cfg = with_prediction(TEST, "previous").config
    shapes = level_shapes(cfg, 3, 16, 16)
    gen = torch.Generator().manual_seed(0)
    levels = [torch.randint(-3, 4, s, generator=gen).to(torch.float64) for s in shapes]
    synth = dequantize([torch.randint(-200, 200, s, generator=gen) for s in synth_param_shapes(cfg)], 8)
    zero = dequantize([torch.zeros(s, dtype=torch.int64) for s in synth_param_shapes(cfg, inter=True)], 8)
    y, u, v = reconstruct(cfg, levels, synth, 3, 16, 16, zero)
    for t in (1, 2):
        assert np.array_equal(y[t], y[0]) and np.array_equal(u[t], u[0]) and np.array_equal(v[t], v[0])
    bias = [p.clone() for p in zero]
    bias[-1][0] = 4 / 255  # +4 on Y in the last layer's bias: each frame 4 levels brighter than the one before
    y2, _u2, _v2 = reconstruct(cfg, levels, synth, 3, 16, 16, bias)
    assert np.array_equal(y2[0], y[0])
    inside = (y[0] >= 8) & (y[0] <= 247)
    assert np.array_equal(y2[2][inside].astype(int), y[0][inside].astype(int) + 8)

def test_cli_encode_then_decode(tmp_path):
    from codec_lab.cli import main
    from codec_lab.video import write_y4m

    src = tmp_path / "src.y4m"
    write_y4m(synthetic_clip(frames=2), src)
    out = tmp_path / "c.clv"
    assert main(["encode", str(src), "-o", str(out), "--preset", "test", "--iterations", "10", "--lmbda", "0.001", "--quiet"]) == 0
    assert main(["decode", str(out), "-o", str(tmp_path / "r.y4m")]) == 0
    bad = tmp_path / "bad.clv"
    bad.write_bytes(out.read_bytes()[:-10])
    assert main(["decode", str(bad), "-o", str(tmp_path / "bad.y4m")]) == 2  # damaged .clv: a one-line user error


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (benchmarks/gpu_rd.sh runs it on the GPU machine)")
@pytest.mark.parametrize("prediction", ["intra", "previous", "motion"])
def test_cuda_encoded_file_decodes_on_cpu_exactly(tmp_path, prediction):
    clip = synthetic_clip(frames=3)
    result = encode_clip(clip, tmp_path / "cuda.clv", lmbda=1e-3, preset=with_prediction(TEST, prediction), device="cuda")
    proc = subprocess.run([sys.executable, "-m", "codec_lab.cli", "decode", str(result.path), "-o", str(tmp_path / "r.y4m")],
                          capture_output=True, text=True, env={**__import__("os").environ, "CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 0, proc.stderr
    from codec_lab.video import read_clip

    assert np.array_equal(read_clip(tmp_path / "r.y4m").y, result.reconstruction.y)
    assert result.cuda_graphs == "on"  # the default on CUDA: trained from replayed graphs
    again = encode_clip(clip, tmp_path / "again.clv", lmbda=1e-3, preset=with_prediction(TEST, prediction), device="cuda")
    assert again.path.read_bytes() == result.path.read_bytes()  # training.reproducible_kernels, and graph replays too
    eager = encode_clip(clip, tmp_path / "eager.clv", lmbda=1e-3, preset=with_prediction(TEST, prediction), device="cuda", cuda_graphs=False)
    assert eager.cuda_graphs == "off"
    # the same training but for float order (capturable Adam's float32 bias correction): close, not equal
    assert result.log[-1].loss == pytest.approx(eager.log[-1].loss, rel=0.2)


def test_reproducible_kernels_are_scoped():
    from codec_lab.codec.training import reproducible_kernels

    before = torch.are_deterministic_algorithms_enabled()
    with reproducible_kernels(torch.device("cuda")):  # sets flags only: needs no GPU
        assert torch.are_deterministic_algorithms_enabled()
    assert torch.are_deterministic_algorithms_enabled() == before
    with reproducible_kernels(torch.device("cpu")):
        assert torch.are_deterministic_algorithms_enabled() == before


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (benchmarks/gpu_rd.sh runs it on the GPU machine)")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_points_trained_together_are_the_files_trained_alone(tmp_path, monkeypatch, device):
    """encode_clip_points trains several lambdas at once (on a GPU on streams of their own, taking
    turns) and searches the motion once: each file must still be the one encode_clip writes alone."""
    from codec_lab.codec import motion_search
    from codec_lab.codec.encoder import encode_clip_points

    searches = []
    search = motion_search.estimate_motion
    monkeypatch.setattr(motion_search, "estimate_motion", lambda *a, **k: searches.append(a[1]) or search(*a, **k))
    clip = synthetic_clip(frames=3)
    preset = with_prediction(replace(TEST, motion_blocks=(8, 16)), "motion")
    together = encode_clip_points(clip, [(tmp_path / "a.clv", 1e-3), (tmp_path / "b.clv", 3e-2)], preset=preset, device=device)
    assert sorted(searches) == [8, 16]  # one search per block size, shared by both points
    assert together[0].path.read_bytes() != together[1].path.read_bytes()
    for result in together:
        alone = encode_clip(clip, tmp_path / "alone.clv", lmbda=result.lmbda, preset=preset, device=device)
        assert alone.path.read_bytes() == result.path.read_bytes()
        assert result.iterations == alone.iterations == TEST.iterations
        assert result.cuda_graphs == ("on" if device == "cuda" else "off")


def test_max_seconds_counts_the_motion_search(tmp_path, monkeypatch):
    """--max-seconds caps the motion search and the training together: what the search took is
    not left to training (but a quarter of the cap always is)."""
    import time

    from codec_lab.codec import encoder, motion_search
    from codec_lab.codec.encoder import training_budget

    assert training_budget(None, 5.0) is None
    assert training_budget(10.0, 3.0) == 7.0
    assert training_budget(10.0, 9.5) == 2.5
    search = motion_search.estimate_motion
    monkeypatch.setattr(motion_search, "estimate_motion", lambda *a, **k: time.sleep(0.3) or search(*a, **k))
    budgets = []
    real = encoder.Training

    def recording(*args, **kwargs):
        budgets.append(kwargs["max_seconds"])
        return real(*args, **kwargs)

    monkeypatch.setattr(encoder, "Training", recording)
    # without intra first: its first stage's Training would come first with only its share of the budget
    # (since session 9 built through encoder.Training; that share is test_intra_first_...'s)
    encode_clip(synthetic_clip(frames=3), tmp_path / "m.clv", lmbda=1e-3, max_seconds=2.0,
                preset=replace(with_prediction(replace(TEST, motion_blocks=(8, 16)), "motion"), intra_first=False))
    assert 0.5 <= budgets[0] <= 2.0 - 0.6  # two searches of 0.3 s came out of the 2 s


def test_four_pixel_motion_blocks_round_trip(tmp_path):
    """4x4 vectors (the smallest the format holds; `motion_blocks` setting "4,8,16"): four times the
    vectors of 8x8, each block's chroma 2x2; the file decodes to the encoder's reconstruction."""
    preset = with_prediction(replace(TEST, motion_blocks=(4,)), "motion")
    result = encode_clip(synthetic_clip(frames=3), tmp_path / "b4.clv", lmbda=1e-3, preset=preset)
    decoded = decode_file(result.path)
    assert decoded.header.motion_block == 4
    assert all(np.array_equal(getattr(decoded.clip, p), getattr(result.reconstruction, p)) for p in "yuv")
