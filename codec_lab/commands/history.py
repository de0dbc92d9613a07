"""`codec-lab history [VIDEO]`: what the experiment store holds.

Without VIDEO: one row per video (status, scene class, experiments, best result).
With VIDEO (an id or a unique prefix): one row per experiment, in round order.
`--json` prints the same as JSON (contracts' own field names) for scripts.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from codec_lab.errors import CodecLabError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("history", help="show the videos and experiments in the store",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("video", nargs="?", help="a video id (or a unique prefix of one)")
    p.add_argument("--store", help="SQLite store file (default: $CODEC_LAB_STORE or runs/lab.sqlite)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--audit", action="store_true", help="with VIDEO: list the planner audit trail too")
    p.set_defaults(func=run)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _fmt(v: Any, spec: str = "") -> str:
    return "-" if v is None else format(v, spec)


def _params(parameters: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in parameters.items())


def _resolve(store: Any, wanted: str) -> str:
    videos = [v.video_id for v in store.list_videos()]
    if wanted in videos:
        return wanted
    matches = [v for v in videos if v.startswith(wanted)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise CodecLabError(f"video {wanted!r} is ambiguous: {', '.join(sorted(matches))}; give more of the id")
    if store.list_experiments(wanted):
        return wanted
    known = ", ".join(sorted(videos)[:10]) or "none"
    raise CodecLabError(f"no video {wanted!r} in the store (known: {known}); run `codec-lab history` to list them")


def run(args: argparse.Namespace) -> int:
    from codec_lab.store import default_store_path, open_store

    path = default_store_path(args.store)
    if not path.exists():
        raise CodecLabError(f"no experiment store at {path}; run `codec-lab run VIDEO` first, "
                            "or pass --store PATH / set CODEC_LAB_STORE")
    with open_store(path, create=False) as store:
        if args.video is None:
            return _videos(store, args.json)
        return _experiments(store, _resolve(store, args.video), args.json, args.audit)


def _videos(store: Any, as_json: bool) -> int:
    rows = []
    for v in store.list_videos():
        experiments = store.list_experiments(v.video_id)
        best = max((r for r in experiments if r.score is not None), key=lambda r: r.score, default=None)
        rows.append((v, experiments, best))
    if as_json:
        out = [{"video": v.model_dump(mode="json"), "experiments": len(e), "unfinished": sum(not r.finished for r in e),
                "best": b.model_dump(mode="json") if b else None} for v, e, b in rows]
        json.dump(out, sys.stdout, indent=2)
        print()
        return 0
    if not rows:
        print(f"the store at {store.path} holds no videos yet")
        return 0
    table = [[v.video_id, v.status, v.profile.scene_class if v.profile else "-", str(len(e)),
              str(sum(not r.finished for r in e)),
              f"{b.plan.strategy} {_params(b.plan.parameters)}" if b else "-",
              _fmt(b.result.metrics.kbps, ".1f") if b else "-", _fmt(b.result.metrics.quality.psnr_yuv, ".2f") if b else "-",
              _fmt(b.score, ".2f") if b else "-", v.updated_at]
             for v, e, b in rows]
    print(_table(["VIDEO", "STATUS", "SCENE", "EXPS", "UNFIN", "BEST", "KBPS", "PSNR", "SCORE", "UPDATED"], table))
    return 0


def _experiments(store: Any, video_id: str, as_json: bool, audit: bool) -> int:
    records = store.list_experiments(video_id)
    trail = store.list_audit(video_id) if audit else []
    if as_json:
        out: dict[str, Any] = {"video_id": video_id, "experiments": [r.model_dump(mode="json") for r in records]}
        if audit:
            out["audit"] = [a.model_dump(mode="json") for a in trail]
        json.dump(out, sys.stdout, indent=2)
        print()
        return 0
    rows = []
    for r in records:
        m = r.result.metrics if r.result else None
        note = (r.result.error or "") if r.result and r.result.status == "failed" else ("" if r.finished else "unfinished")
        rows.append([str(r.plan.round), r.plan.plan_id, r.plan.strategy, _params(r.plan.parameters), r.status,
                     _fmt(m.kbps if m else None, ".1f"), _fmt(m.quality.psnr_yuv if m else None, ".2f"),
                     _fmt(m.quality.ssim if m else None, ".4f"), ("yes" if m.meets_target else "no") if m else "-",
                     _fmt(r.score, ".2f"), " ".join(note.split())[:60]])
    print(f"video {video_id}: {len(records)} experiment(s)")
    print(_table(["ROUND", "PLAN", "STRATEGY", "PARAMETERS", "STATUS", "KBPS", "PSNR", "SSIM", "TARGET", "SCORE", "NOTE"], rows))
    if audit:
        print(f"\nplanner audit trail: {len(trail)} exchange(s)")
        print(_table(["ROUND", "TRY", "PLANNER", "ACCEPTED", "DROPPED", "ERROR", "URI"],
                     [[str(a.round), str(a.attempt), a.planner, str(a.accepted), str(len(a.dropped)),
                       " ".join((a.error or "").split())[:50], a.uri or "-"] for a in trail]))
    return 0
