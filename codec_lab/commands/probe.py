"""`codec-lab probe CLIP`: what was read, before anything is encoded."""

from __future__ import annotations

import argparse

from codec_lab.commands._common import add_input_options, input_kwargs


def register(subparsers) -> None:
    parser = subparsers.add_parser("probe", help="print what a video holds", description=__doc__)
    parser.add_argument("clip", help="a video file")
    add_input_options(parser, frames=False)
    parser.add_argument("--json", action="store_true", help="print the VideoInfo as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from codec_lab.video import probe

    info = probe(args.clip, **input_kwargs(args))
    if args.json:
        print(info.model_dump_json(indent=2))
        return 0
    table = Table(title=info.path, show_header=False)
    rows = {
        "container": info.container,
        "codec": info.codec,
        "size": f"{info.width}x{info.height}",
        "frames": str(info.frames),
        "fps": f"{info.fps:.3f} ({info.fps_source})",
        "pixel format": info.pix_fmt,
        "bit depth": str(info.bit_depth),
        "rotation": f"{info.rotation} degrees",
        "duration": f"{info.duration_s:.3f} s",
        "file size": f"{info.size_bytes} bytes",
        "variable frame rate": "yes" if info.variable_frame_rate else "no",
    }
    for key, value in rows.items():
        table.add_row(key, value)
    for note in info.notes:
        table.add_row("note", note)
    Console().print(table)
    return 0
