"""Decoder budget of `semantic_latent` (issue 3): under 2,000 MAC/pixel and far under 1.33 TOPS/frame at 1080p."""

from __future__ import annotations

from dataclasses import replace

import pytest

from codec_lab.codec.cost import (
    MOTION_MACS,
    mac_breakdown,
    mac_per_pixel,
    tops_per_frame,
)
from codec_lab.codec.model import CodecConfig, LayerSpec
from codec_lab.codec.presets import PREDICTIONS, PRESETS, with_prediction


@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("preset", ["fast", "medium", "full"])
def test_default_presets_stay_within_the_budget(preset, prediction):
    cfg = with_prediction(PRESETS[preset], prediction).config
    mac = mac_per_pixel(cfg, 1080, 1920, frames=30)
    assert mac < 2000
    assert tops_per_frame(mac, 1920, 1080) < 1.33 / 100


def test_synthesis_count_matches_a_hand_count():
    """1x1 layers cost in x out MACs per pixel, a 3x3 layer 9 in x out: what thop must report."""
    cfg = CodecConfig(n_levels=2, temporal_strides=(1, 1), synth=(LayerSpec(4, 1, True), LayerSpec(3, 3, False)))
    assert mac_breakdown(cfg, 64, 64)["synthesis"] == pytest.approx(2 * 4 + 9 * 4 * 3, rel=0.01)


def test_motion_adds_its_interpolation():
    previous = with_prediction(PRESETS["fast"], "previous").config
    moved = replace(previous, motion_block=8)
    diff = mac_breakdown(moved, 288, 352)["synthesis"] - mac_breakdown(previous, 288, 352)["synthesis"]
    assert diff == pytest.approx(MOTION_MACS) and MOTION_MACS == 6.0  # 4 taps on luma + 4 on two quarter-size chroma planes
    overlapped = mac_breakdown(replace(moved, motion_overlap=True), 288, 352)["synthesis"] - mac_breakdown(previous, 288, 352)["synthesis"]
    assert overlapped == pytest.approx(18.0)  # 12 taps (three vectors' bilinears) on luma and on the chroma planes
    sharp = mac_breakdown(replace(moved, motion_overlap=True, motion_sharp=True), 288, 352)["synthesis"] - mac_breakdown(previous, 288, 352)["synthesis"]
    assert sharp == pytest.approx(3 * (36 + 2))  # three vectors' 6x6 luma phases and chroma bilinears
    assert mac_breakdown(replace(moved, motion_overlap=True, motion_sharp=True), 1080, 1920)["total"] < 2000  # Cool-chic's high preset
    assert mac_breakdown(replace(moved, motion_overlap=True, motion_sharp=True, bidirectional=True), 1080, 1920)["total"] < 2000
