"""`codec-lab inspect` / codec.stats: a file's bytes accounted for, frame by frame."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from codec_lab.cli import main
from codec_lab.codec.encoder import encode_clip
from codec_lab.codec.presets import PRESETS, with_prediction
from codec_lab.codec.stats import file_stats
from codec_lab.errors import BitstreamError
from codec_lab.metrics import psnr
from codec_lab.video import write_clip
from tests.conftest import synthetic_clip

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    """Three frames with motion and an intra frame every second frame: I, P, I, trained jointly (trained
    first, the I-frames come out cheaper than the P-frame that follows them on this tiny preset)."""
    clip = synthetic_clip(frames=3)
    path = tmp_path_factory.mktemp("stats") / "clip.clv"
    preset = replace(with_prediction(PRESETS["test"], "motion", 2, key_prediction=False), intra_first=False)
    result = encode_clip(clip, path, lmbda=1e-3, preset=preset)
    return clip, path, result


def test_sections_add_up_to_the_file(encoded):
    _clip, path, _result = encoded
    stats = file_stats(path)
    assert stats.file_bytes == path.stat().st_size
    # what is left besides the header and the three sections is exactly the framing
    assert stats.framing_bytes == 4 + 1 + 2 + 3 * 4 + 4  # magic, version, header length, three section lengths, CRC
    assert stats.motion_section > 0
    # each network's exp-Golomb bits, in bytes, fill the weights section up to its last byte's padding
    assert stats.weights_section - 1 < sum(stats.weight_bytes.values()) <= stats.weights_section
    assert set(stats.weight_bytes) == {"synthesis", "inter synthesis", "ARM"}


def test_frames_latents_sum_to_the_latent_section(encoded):
    _clip, path, _result = encoded
    stats = file_stats(path)
    assert [f.kind for f in stats.frames] == ["I", "P", "I"]
    total = sum(f.latent_bytes for f in stats.frames)
    # ideal code lengths against what the range coder wrote (32-bit words)
    assert abs(total - stats.latent_section) <= 8 + 0.01 * stats.latent_section
    assert all(f.latent_bytes > 0 for f in stats.frames)
    assert stats.frames[0].latent_bytes > stats.frames[1].latent_bytes  # an intra frame pays for its whole picture
    # the motion section: each predicted frame's two scale ids and vectors; intra frames have none
    assert [f.motion_bytes > 0 for f in stats.frames] == [False, True, False]
    assert abs(sum(f.motion_bytes for f in stats.frames) - stats.motion_section) <= 8


def test_frame_psnr_is_measured_on_the_decoded_frames(encoded):
    clip, path, result = encoded
    stats = file_stats(path, clip)
    for t, frame in enumerate(stats.frames):
        assert frame.psnr_y == pytest.approx(psnr(clip.y[t], result.reconstruction.y[t]))
        assert np.isfinite(frame.psnr_yuv)
    assert file_stats(path).frames[0].psnr_y is None


def test_cli_inspect_prints_the_breakdown(encoded, tmp_path, capsys):
    clip, path, _result = encoded
    source = tmp_path / "src.y4m"
    write_clip(clip, source)
    assert main(["inspect", str(path), "--source", str(source)]) == 0
    out = capsys.readouterr().out
    assert "motion vectors" in out and "latents" in out and "PSNR-Y" in out
    assert len([line for line in out.splitlines() if line.strip().split(" ")[0].isdigit()]) == 3  # a row per frame


def test_inspect_a_damaged_file_says_so(encoded, tmp_path, capsys):
    _clip, path, _result = encoded
    damaged = tmp_path / "damaged.clv"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(BitstreamError, match="CRC"):
        file_stats(damaged)
    assert main(["inspect", str(damaged)]) == 2
    assert "CRC" in capsys.readouterr().err
