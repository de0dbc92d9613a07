"""semantic_latent as the bench and the runner drive it: every plan parameter changes the file, or is refused."""

from __future__ import annotations

import pytest

from codec_lab.codec import bitstream
from codec_lab.codec.model import LayerSpec
from codec_lab.codec.presets import PRESETS, layers_text, parse_layers
from codec_lab.codecs import get_codec
from codec_lab.errors import CodecLabError
from codec_lab.planning.space import default_search_space
from tests.conftest import synthetic_clip


def test_latent_levels_reach_the_bitstream(tmp_path):
    codec = get_codec("semantic_latent", preset="test")
    encoded = codec.encode(synthetic_clip(frames=2, width=48, height=32), {"lmbda": 1e-3, "latent_levels": 3}, tmp_path / "l3")
    assert bitstream.parse_file(encoded.path.read_bytes()).header.levels == 3


def test_prediction_reaches_the_bitstream_and_nonsense_is_refused(tmp_path):
    codec = get_codec("semantic_latent", preset="test")
    clip = synthetic_clip(frames=2, width=48, height=32)
    headers = {p: bitstream.parse_file(codec.encode(clip, {"lmbda": 1e-3, "iterations": 5, "prediction": p}, tmp_path / p).path.read_bytes()).header
               for p in ("intra", "previous", "motion")}
    assert not headers["intra"].inter_synth and not headers["intra"].motion_block
    assert headers["previous"].inter_synth and not headers["previous"].motion_block
    assert headers["motion"].inter_synth and headers["motion"].motion_block in (8, 16)
    with pytest.raises(CodecLabError, match="unknown prediction 'optical-flow'; choose from intra, previous, motion"):
        codec.encode(clip, {"lmbda": 1e-3, "prediction": "optical-flow"}, tmp_path / "m")


def test_every_searchable_parameter_is_one_the_codec_takes(tmp_path):
    from codec_lab.codec.sweep import KNOWN_SETTINGS

    spec = default_search_space().strategy("semantic_latent")
    assert {p.name for p in spec.params} <= KNOWN_SETTINGS
    with pytest.raises(CodecLabError, match=r"does not know the setting\(s\) \['gop'\]"):
        get_codec("semantic_latent", preset="test").encode(synthetic_clip(frames=1), {"lmbda": 1e-3, "gop": 4}, tmp_path / "x")


def test_training_that_cannot_fit_in_memory_is_refused_before_it_starts(tmp_path, monkeypatch):
    from codec_lab.codec import encoder

    monkeypatch.setattr(encoder, "available_memory", lambda dev: 4 * 1024**3)
    monkeypatch.setattr(encoder, "TRAIN_BYTES_PER_PIXEL", 10**6)  # as if each pixel-frame needed 1 MB: 1.5 GB a frame
    with pytest.raises(CodecLabError, match=r"4 frames of 48x32 needs about 6\.2 GB and cpu has 4\.0 GB free: use --frames 2 or fewer"):
        encoder.encode_clip(synthetic_clip(frames=4, width=48, height=32), tmp_path / "x.clv", preset="test")
    assert not (tmp_path / "x.clv").exists()


def test_models_trained_together_count_what_they_keep(monkeypatch):
    """On CUDA each model trained together keeps a whole iteration's memory (its graph); on the CPU
    they take turns, so the second and later count only their lasting state."""
    import torch

    from codec_lab.codec import encoder

    monkeypatch.setattr(encoder, "available_memory", lambda dev: 4 * 1024**3)
    monkeypatch.setattr(encoder, "TRAIN_BYTES_PER_PIXEL", 10**6)  # 1.5 GB a 48x32 frame
    encoder.check_training_memory(2, 32, 48, torch.device("cpu"), models=4)  # 3.1 GB + 3 models' state: fits
    with pytest.raises(CodecLabError, match=r"2 frames of 48x32 \(4 models together\) needs about 11\.9 GB and cuda has"):
        encoder.check_training_memory(2, 32, 48, torch.device("cuda"), models=4)


def test_overlapped_motion_counts_three_times_the_taps(monkeypatch):
    import torch

    from codec_lab.codec import encoder

    monkeypatch.setattr(encoder, "available_memory", lambda dev: 4 * 1024**3)
    monkeypatch.setattr(encoder, "TRAIN_BYTES_PER_PIXEL", 0)
    monkeypatch.setattr(encoder, "MOTION_BYTES_PER_PIXEL", 10**6)  # 1.5 GB of taps a 48x32 frame
    encoder.check_training_memory(2, 32, 48, torch.device("cpu"), motion=True)  # 3.1 GB: fits
    with pytest.raises(CodecLabError, match=r"needs about 9\.1 GB"):
        encoder.check_training_memory(2, 32, 48, torch.device("cpu"), motion=True, overlap=True)


def test_training_settings_reach_the_preset_and_nonsense_is_refused():
    codec = get_codec("semantic_latent", preset="test")
    preset = codec._preset({"lmbda": 1e-3, "prediction": "motion", "intra_first": False, "intra_iteration_factor": 3,
                            "intra_lambda_factor": 0.125, "key_prediction": False, "intra_period": 4})
    assert not preset.intra_first and preset.intra_iteration_factor == 3 and preset.intra_lambda_factor == 0.125
    assert not preset.config.key_prediction and preset.config.intra_period == 4
    assert codec._preset({"lmbda": 1e-3, "prediction": "motion"}).config.key_prediction  # the preset's default
    narrow = codec._preset({"lmbda": 1e-3, "prediction": "motion", "synth_hidden": 5}).config
    assert [layer.out for layer in narrow.synth + narrow.inter_synth if layer.relu] == [5, 5]  # the test preset: one hidden layer each
    layered = codec._preset({"lmbda": 1e-3, "prediction": "motion", "synth_layers": "8-1-relu,3-1,3-3-res"}).config
    assert layered.synth == layered.inter_synth == (LayerSpec(8, 1, True), LayerSpec(3, 1, False), LayerSpec(3, 3, False, True))
    assert not codec._preset({"lmbda": 1e-3, "synth_layers": "8-1-relu,3-3"}).config.inter_synth  # intra: no inter network to shape
    assert codec._preset({"lmbda": 1e-3, "distortion": "psnr"}).distortion == "psnr"
    assert codec._preset({"lmbda": 1e-3}).distortion == "mse"
    assert codec._preset({"lmbda": 1e-3, "prediction": "motion", "motion_blocks": "4,8"}).motion_blocks == (4, 8)
    assert codec._preset({"lmbda": 1e-3, "prediction": "motion", "motion_blocks": 4}).config.motion_block == 4
    assert codec._preset({"lmbda": 1e-3, "prediction": "motion", "motion_depth": 2}).motion_depth == 2
    assert codec._preset({"lmbda": 1e-3, "prediction": "motion"}).motion_depth == 0
    assert codec._preset({"lmbda": 1e-3, "prediction": "motion", "motion_overlap": True}).motion_overlap
    assert not codec._preset({"lmbda": 1e-3, "prediction": "motion"}).motion_overlap
    assert codec._preset({"lmbda": 1e-3, "prediction": "motion", "motion_sharp": True}).motion_sharp
    assert not codec._preset({"lmbda": 1e-3, "prediction": "motion"}).motion_sharp
    for bad, message in (({"intra_iteration_factor": 0}, "intra_iteration_factor must be in"),
                         ({"intra_lambda_factor": float("nan")}, "intra_lambda_factor must be in"),
                         ({"synth_hidden": 0}, "synth_hidden must be 1..64"),
                         ({"synth_layers": "16-1-relu,3-3-relu-res"}, "a residual layer must follow a layer of the same 3 channels"),
                         ({"synth_layers": "16-1-relu"}, "the last with 3 channels"),
                         ({"synth_layers": "16-2-relu,3-3"}, "write OUT-KERNEL"),
                         ({"synth_layers": "16-1-relu-relu,3-3"}, "write OUT-KERNEL"),
                         ({"synth_layers": "65-1-relu,3-3"}, "65 channels is outside 1..64"),
                         ({"key_prediction": "yes"}, "key_prediction must be true or false"),
                         ({"distortion": "ssim"}, "distortion 'ssim' is not one of mse, psnr"),
                         ({"motion_blocks": "4,6"}, "motion_blocks '4,6': give block sizes"),
                         ({"motion_blocks": "8,,16"}, "motion_blocks '8,,16': give block sizes"),
                         ({"motion_depth": 4}, "motion_depth must be 0..3"),
                         ({"motion_depth": "-1"}, "motion_depth must be 0..3"),
                         ({"motion_overlap": "yes"}, "motion_overlap must be true or false"),
                         ({"motion_overlap": 1}, "motion_overlap must be true or false"),
                         ({"motion_sharp": 1}, "motion_sharp must be true or false")):
        with pytest.raises(CodecLabError, match=message):
            codec._preset({"lmbda": 1e-3, "prediction": "motion", **bad})


def test_synthesis_layers_read_back_as_written():
    for preset in PRESETS.values():
        for layers in (preset.config.synth, preset.inter_synth):
            assert parse_layers(layers_text(layers)) == layers
    assert layers_text(parse_layers(" 16-1-relu, 16-3-res-relu ,3-1")) == "16-1-relu,16-3-relu-res,3-1"  # flags in any order
