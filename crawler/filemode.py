"""The mode of the files and directories Glas creates: owner-only unless the operator says.

The inbox holds residents' personal data (152-ФЗ), and so do exports; lock files say which
process collects what. Glas creates all of them ``0600`` (directories ``0700``) whatever the
umask, or with the mode of ``GLAS_FILE_MODE`` (octal, e.g. ``0640`` for a group of readers;
directories get the matching search bits, ``0750``). A file that already exists keeps its
mode: Glas never changes the mode of an operator's file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

ENV = "GLAS_FILE_MODE"
DEFAULT = 0o600


class FileModeError(ValueError):
    """``GLAS_FILE_MODE`` is not a usable mode (one line, names the variable)."""


def file_mode(environ: Mapping[str, str] | None = None) -> int:
    """The mode of new files: ``GLAS_FILE_MODE`` (octal), else ``0600``."""
    text = (os.environ if environ is None else environ).get(ENV, "").strip()
    if not text:
        return DEFAULT
    if not re.fullmatch(r"0?[0-7]{3}", text):
        raise FileModeError(f"{ENV}={text}: expected an octal file mode such as 0600 or 0640")
    mode = int(text, 8)
    if mode & 0o600 != 0o600 or mode & ~0o666:
        raise FileModeError(
            f"{ENV}={text}: the owner must read and write (06xx) and no one may execute "
            "(at most 0666)"
        )
    return mode


def dir_mode(environ: Mapping[str, str] | None = None) -> int:
    """The mode of new directories: the file mode plus search (x) wherever it lets read."""
    mode = file_mode(environ)
    return mode | (mode & 0o444) >> 2


def create_file(path: Path, flags: int = os.O_WRONLY, mode: int | None = None) -> int:
    """Create ``path`` (it must not exist) with ``mode`` (default :func:`file_mode`), exact
    whatever the umask; return the open descriptor."""
    mode = file_mode() if mode is None else mode
    fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_file(path: Path, flags: int) -> int:
    """Open ``path``, creating it with :func:`file_mode` when missing (an existing file keeps
    its mode)."""
    try:
        return create_file(path, flags)
    except FileExistsError:
        return os.open(path, flags)


def make_dir(path: Path) -> None:
    """Create the directory ``path`` (and missing parents) when missing, with
    :func:`dir_mode`; an existing one keeps its mode."""
    if path.is_dir():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = dir_mode()
    try:
        path.mkdir(mode)
    except FileExistsError:
        return
    os.chmod(path, mode)
