"""Errors a user can act on: the CLI prints them in one line, never a traceback."""


class CodecLabError(Exception):
    """Base class: the message says what was wrong and what to do."""


class VideoInputError(CodecLabError):
    """The input is not a video we can read (missing, empty, corrupt, unsupported)."""


class BitstreamError(CodecLabError):
    """A bitstream file is damaged, truncated, hostile or of an unknown version."""
