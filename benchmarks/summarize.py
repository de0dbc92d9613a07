"""Summarize bench results.json files as markdown: BD-rates, target-meeting points, wall time.

    python benchmarks/summarize.py bench-out/anchors/*/results.json
"""

from __future__ import annotations

import sys
from pathlib import Path

from codec_lab.bench import load_results


def summarize(path: Path) -> str:
    r = load_results(path)
    lines = [f"### {Path(r.clip.path).name}: {r.clip.width}x{r.clip.height}, {r.clip.frames} frames, {r.wall_seconds:.0f} s",
             "", "| codec | points | kbps range | PSNR-YUV range | BD-rate vs x265 | BD-rate vs SVT-AV1 | points meeting the target |",
             "|---|---|---|---|---|---|---|"]
    for codec in dict.fromkeys(p.codec for p in r.points):
        pts = [p for p in r.points if p.codec == codec]
        bd = r.bd_rate.get(codec, {})
        met = [f"{' '.join(f'{k}={v}' for k, v in p.settings.items())} ({p.kbps:.0f} kbps, {p.quality.psnr_yuv:.2f} dB, SSIM {p.quality.ssim:.3f})"
               for p in pts if p.meets_target]
        fmt = lambda v: "-" if v is None else f"{v:+.1f}%"  # noqa: E731
        lines.append(
            f"| {codec} | {len(pts)} | {min(p.kbps for p in pts):.0f}-{max(p.kbps for p in pts):.0f} | "
            f"{min(p.quality.psnr_yuv for p in pts):.1f}-{max(p.quality.psnr_yuv for p in pts):.1f} | "
            f"{fmt(bd.get('x265'))} | {fmt(bd.get('av1'))} | {'; '.join(met) or 'none'} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print("\n\n".join(summarize(Path(p)) for p in sys.argv[1:]))
