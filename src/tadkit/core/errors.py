"""Errors a user can act on.

Every error raised for bad input is a :class:`TadkitError`. Its message is one
line that names the file (and the video, where there is one) and says what to
do. The command line prints that line on stderr and exits with code 2.
"""
from __future__ import annotations

import os


class TadkitError(Exception):
    """A user error: bad input, bad configuration, missing file.

    Parameters
    ----------
    message : what is wrong.
    path : the file or directory concerned, if any.
    video : the video concerned, if any.
    fix : what the user should do about it.
    """

    def __init__(self, message: str, *, path: str | os.PathLike | None = None,
                 video: str | None = None, fix: str | None = None):
        self.message = message
        self.path = None if path is None else os.fspath(path)
        self.video = video
        self.fix = fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        parts = []
        if self.path:
            parts.append(f"{self.path}:")
        if self.video:
            parts.append(f"video {self.video!r}:")
        parts.append(self.message.rstrip("."))
        text = " ".join(parts)
        if self.fix:
            text += f" ({self.fix.rstrip('.')})"
        return " ".join(text.split())  # one line, whatever the parts held


class DataError(TadkitError):
    """Annotations, features or predictions that cannot be used as given."""


class ConfigError(TadkitError):
    """A configuration key or value that is wrong."""


class CheckpointError(TadkitError):
    """A checkpoint that cannot be read or does not fit the model."""
