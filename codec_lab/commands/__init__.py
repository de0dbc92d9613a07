"""One module per `codec-lab` sub-command, each with `register(subparsers)`.

A command module adds its parser and sets `func` to a callable taking the
parsed args and returning the exit status. `codec_lab.cli` imports the list
below lazily, so `codec-lab probe` never pays for importing torch.
"""

COMMANDS = [  # in the order `codec-lab --help` lists them: the main job first
    "run",
    "bench",
    "encode",
    "decode",
    "inspect",
    "eval",
    "probe",
    "history",
]
