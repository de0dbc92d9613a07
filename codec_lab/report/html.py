"""report.html: one self-contained page per run (inline CSS, images embedded; no server, no network)."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from pathlib import Path

from codec_lab.contracts import BenchResults, Decision, ExperimentRecord, RDPoint, SceneProfile, Targets, VideoInfo
from codec_lab.decide import meets
from codec_lab.files import write_text_atomic
from codec_lab.metrics import bits_per_pixel
from codec_lab.report.rd import bd_rate_detail, plot_rd
from codec_lab.video.frames import Clip

ANCHOR_NAMES = {"x264": "x264 medium", "x265": "x265 medium", "av1": "SVT-AV1"}
NEURAL = ("semantic_latent", "i_frame_interpolation", "hybrid_semantic")

CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85rem;width:100%}th,td{border:1px solid #ddd;padding:.3rem .45rem;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}.met{color:#127a2a;font-weight:600}.no{color:#b3261e}
.conclusion{background:#f0f6ff;border-left:4px solid #2d6cdf;padding:.8rem 1rem}img{max-width:100%}
.samples img{width:32%;margin-right:1%}.small{color:#666;font-size:.8rem}
"""


def point_from_record(record: ExperimentRecord, clip: Clip, targets: Targets) -> RDPoint | None:
    """An experiment's result as an RD point, so anchors and experiments share one curve format."""
    result = record.result
    if result is None or result.status != "succeeded" or result.metrics is None:
        return None
    m = result.metrics
    path = result.artifacts.get("bitstream", "")
    return RDPoint(
        codec=record.plan.strategy, settings=dict(record.plan.parameters), frames=clip.num_frames, width=clip.width,
        height=clip.height, fps=float(clip.fps), payload_bytes=m.payload_bytes,
        file_bytes=Path(path).stat().st_size if path and Path(path).exists() else m.payload_bytes,
        kbps=m.kbps, bpp=bits_per_pixel(m.payload_bytes, clip.num_frames, clip.width, clip.height), quality=m.quality,
        encode_seconds=result.timings.get("encode", 0.0), decode_seconds=result.timings.get("decode", 0.0),
        mac_per_pixel=m.mac_per_pixel, tops_per_frame=m.tops_per_frame, meets_target=meets(m, targets), path=path,
    )


def best_neural_bd(points: Sequence[RDPoint], anchors: BenchResults) -> dict:
    """BD-rate of the best neural configuration (points that differ only in lambda form its curve)."""
    groups: dict[str, list[RDPoint]] = {}
    for p in points:
        if p.codec in NEURAL:
            key = json.dumps({"codec": p.codec, **{k: v for k, v in p.settings.items() if k not in ("lmbda", "iterations")}}, sort_keys=True)
            groups.setdefault(key, []).append(p)
    by_anchor = {a: [p for p in anchors.points if p.codec == a] for a in ("x265", "av1")}
    candidates = []
    for key, curve in groups.items():
        details = {a: bd_rate_detail(pts, curve) for a, pts in by_anchor.items() if pts}
        candidates.append({"configuration": json.loads(key), "points": len(curve),
                           "bd_rate": {a: d[0] for a, d in details.items()},
                           "why_missing": "; ".join(f"vs {label(a)}: {d[1]}" for a, d in details.items() if d[1]) or None})

    def rank(candidate: dict) -> tuple:
        value = candidate["bd_rate"].get("x265")
        return (0, value) if value is not None else (1, -candidate["points"])  # a measured BD-rate first, lowest best

    best = min(candidates, key=rank) if candidates else None
    if best is None:
        return {"configuration": None, "points": 0, "bd_rate": {}, "why_missing": "no neural experiment succeeded"}
    return best


def conclusion(anchors: BenchResults, experiments: Sequence[RDPoint], targets: Targets, decision: Decision) -> str:
    everything = list(anchors.points) + list(experiments)
    meeting = sorted((p for p in everything if p.meets_target), key=lambda p: p.kbps)
    if meeting:
        win = meeting[0]
        text = (f"Use <b>{html.escape(label(win.codec))}</b> ({html.escape(settings_text(win.settings))}): "
                f"{win.kbps:.0f} kbps at {win.quality.psnr_yuv:.2f} dB PSNR-YUV and SSIM {win.quality.ssim:.3f} meets every target "
                f"with the fewest bits of the {len(everything)} encodes measured.")
        others = [p for p in meeting[1:] if p.codec != win.codec]
        if others:
            text += f" The next best codec, {html.escape(label(others[0].codec))}, needs {others[0].kbps / win.kbps:.2f}x the bits."
    else:
        def shortfall(p: RDPoint) -> float:
            return max(0.0, targets.min_psnr_yuv - p.quality.psnr_yuv) + max(0.0, p.kbps / targets.max_kbps - 1) * 10
        close = min(everything, key=shortfall) if everything else None
        text = "No encode met every target."
        if close is not None:
            text += (f" Closest: <b>{html.escape(label(close.codec))}</b> ({html.escape(settings_text(close.settings))}) at "
                     f"{close.kbps:.0f} kbps and {close.quality.psnr_yuv:.2f} dB. Relax a target or allow a higher bitrate.")
    neural = [p for p in experiments if p.codec in NEURAL]
    if neural:
        best = max(neural, key=lambda p: p.quality.psnr_yuv - 10 * max(0.0, p.kbps / targets.max_kbps - 1))
        text += (f" The best neural experiment ({html.escape(best.codec)}, {html.escape(settings_text(best.settings))}) reached "
                 f"{best.quality.psnr_yuv:.2f} dB at {best.kbps:.0f} kbps with a decoder of "
                 f"{best.mac_per_pixel or 0:.0f} MAC/pixel.")
    return text + f" The run stopped because: {html.escape(decision.reason)}."


def label(codec: str) -> str:
    return ANCHOR_NAMES.get(codec, codec)


def settings_text(settings: dict) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in settings.items())


def image_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def fmt(value, spec: str, none: str = "-") -> str:
    return none if value is None else format(value, spec)


def experiments_table(records: Sequence[ExperimentRecord], targets: Targets) -> str:
    rows = []
    for r in records:
        m = r.result.metrics if r.result and r.result.metrics else None
        t = r.result.timings if r.result else {}
        status = r.status if m is None else ('<span class="met">met</span>' if meets(m, targets) else '<span class="no">no</span>')
        error = f'<br><span class="small">{html.escape(r.result.error or "")}</span>' if r.result and r.result.error else ""
        rows.append(
            "<tr>" + "".join([
                f'<td class="l">{html.escape(r.plan.plan_id)}</td><td class="l">{html.escape(r.plan.strategy)}</td>',
                f'<td class="l">{html.escape(settings_text(dict(r.plan.parameters)))}</td>',
                f'<td class="l">{html.escape(r.plan.rationale)}{error}</td>',
                f"<td>{fmt(m and m.kbps, '.1f')}</td><td>{fmt(m and m.quality.psnr_yuv, '.2f')}</td><td>{fmt(m and m.quality.ssim, '.4f')}</td>",
                f"<td>{fmt(m and m.mac_per_pixel, '.0f')}</td><td>{fmt(m and m.tops_per_frame, '.4f')}</td>",
                f"<td>{fmt(t.get('encode'), '.1f')}</td><td>{fmt(t.get('decode'), '.2f')}</td><td>{status}</td>",
            ]) + "</tr>"
        )
    head = ("<tr><th class=l>experiment</th><th class=l>strategy</th><th class=l>parameters</th><th class=l>rationale</th><th>kbps</th>"
            "<th>PSNR-YUV</th><th>SSIM</th><th>MAC/pixel</th><th>TOPS/frame</th><th>encode s</th><th>decode s</th><th>target</th></tr>")
    return f"<table>{head}{''.join(rows) or '<tr><td colspan=12 class=l>no experiments</td></tr>'}</table>"


def anchors_table(points: Sequence[RDPoint]) -> str:
    rows = "".join(
        f'<tr><td class="l">{html.escape(label(p.codec))}</td><td class="l">{html.escape(settings_text(p.settings))}</td>'
        f"<td>{p.kbps:.1f}</td><td>{p.quality.psnr_yuv:.2f}</td><td>{p.quality.ssim:.4f}</td><td>{p.encode_seconds:.2f}</td>"
        f"<td>{p.decode_seconds:.3f}</td><td>{'<span class=met>met</span>' if p.meets_target else '<span class=no>no</span>'}</td></tr>"
        for p in points
    )
    return ("<table><tr><th class=l>anchor</th><th class=l>settings</th><th>kbps</th><th>PSNR-YUV</th><th>SSIM</th>"
            f"<th>encode s</th><th>decode s</th><th>target</th></tr>{rows}</table>")


def write_report(run_dir: Path, info: VideoInfo, profile: SceneProfile, clip: Clip, anchors: BenchResults,
                 records: Sequence[ExperimentRecord], targets: Targets, decision: Decision) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    experiments = [p for p in (point_from_record(r, clip, targets) for r in records) if p is not None]
    anchor_codecs = {p.codec for p in anchors.points}
    plotted = [p.model_copy(update={"codec": f"{p.codec} (experiments)"}) if p.codec in anchor_codecs else p for p in experiments]
    rd_png = plot_rd(list(anchors.points) + plotted, run_dir / "rd.png", targets,
                     f"{Path(info.path).name}: {clip.width}x{clip.height}, {clip.num_frames} frames")
    neural_bd = best_neural_bd(experiments, anchors)
    summary = {"video_id": profile.video_id, "decision": decision.model_dump(), "neural_bd_rate": neural_bd,
               "anchor_bd_rate": anchors.bd_rate, "experiments": [r.model_dump() for r in records]}
    write_text_atomic(run_dir / "summary.json", json.dumps(summary, indent=2, default=str))
    bd = neural_bd["bd_rate"]
    bd_text = "No neural experiment succeeded: no neural BD-rate." if neural_bd["configuration"] is None else (
               f"Best neural configuration {html.escape(json.dumps(neural_bd['configuration']))} "
               f"({neural_bd['points']} points): BD-rate {fmt(bd.get('x265'), '+.1f', 'n/a')}% vs x265 medium, "
               f"{fmt(bd.get('av1'), '+.1f', 'n/a')}% vs SVT-AV1." + (f" {html.escape(neural_bd['why_missing'])}." if neural_bd.get("why_missing") else ""))
    anchor_bd = "; ".join(
        f"{label(codec)}: " + ", ".join(f"{fmt(v, '+.1f', 'n/a')}% vs {label(a)}" for a, v in row.items())
        for codec, row in anchors.bd_rate.items() if row
    )
    samples = [
        image_tag(Path(r.result.artifacts["sample"]), r.plan.plan_id)
        for r in records if r.result and "sample" in r.result.artifacts and Path(r.result.artifacts["sample"]).exists()
    ][:6]
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in list(info.notes) + list(clip.notes) + list(profile.notes))
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>codec-lab: {html.escape(profile.video_id)}</title>
<style>{CSS}</style></head><body>
<h1>codec-lab report: {html.escape(Path(info.path).name)}</h1>
<p class="small">video id {html.escape(profile.video_id)} · {clip.width}x{clip.height} · {clip.num_frames} frames at {float(clip.fps):.3f} fps ·
scene class <b>{html.escape(profile.scene_class)}</b> (SI {profile.si_mean:.1f}, TI {profile.ti_mean:.1f}, motion {profile.motion_mean:.2f} px/frame,
cuts {profile.scene_cuts or 'none'}) · targets: &le; {targets.max_kbps:g} kbps, &ge; {targets.min_psnr_yuv:g} dB PSNR-YUV,
SSIM &ge; {targets.min_ssim:g}, decoder &le; {targets.max_tops_per_frame:g} TOPS/frame</p>
<h2>Conclusion</h2><p class="conclusion">{conclusion(anchors, experiments, targets, decision)}</p>
<h2>Rate-distortion</h2>{image_tag(rd_png, "RD plot")}
<p>{bd_text}</p><p class="small">Anchors' BD-rates (Akima, kbps vs PSNR-YUV): {html.escape(anchor_bd) or 'n/a'}.
Bitrates come from the bytes of the coded files; PSNR-YUV = (6Y+U+V)/8 per frame, averaged.</p>
<h2>Experiments</h2>{experiments_table(records, targets)}
<h2>Decoded samples (middle frame)</h2><div class="samples">{''.join(samples) or '<p>none</p>'}</div>
<h2>Anchors</h2>{anchors_table(anchors.points)}
<h2>Input notes</h2><ul>{notes or '<li>none</li>'}</ul>
</body></html>"""
    report = run_dir / "report.html"
    write_text_atomic(report, page)
    return report
