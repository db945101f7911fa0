"""Reading the files a user names: only regular files, never more than a stated limit.

A character device (``/dev/zero``), a FIFO or a directory given as an image or a listing
input would be read forever or block before ``--timeout`` applies; objdump refuses them
("is not an ordinary file"), and so does x86vm. A size limit is checked from ``fstat``
before anything is read, so an image larger than guest RAM is an error, not a MemoryError.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

from x86vm.cli import CliError


def open_regular(path: str, what: str | None = None, *, status: int = 2) -> BinaryIO:
    """``path`` opened for reading if it is a regular file; else a :class:`CliError` —
    in objdump's words, or naming ``what`` the file is for ("cannot read image PATH: …").
    Opened without blocking, so a FIFO cannot hang the open itself."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        problem = "No such file" if what is None else "No such file or directory"
        raise CliError(_say(path, what, problem), status) from None
    except OSError as exc:
        raise CliError(_say(path, what, exc.strerror or str(exc)), status) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        problem = "is a directory" if stat.S_ISDIR(mode) else "is not an ordinary file"
        raise CliError(f"'{path}' {problem}" if what is None else f"{what} {path} {problem}",
                       status)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_regular(path: str, what: str, limit: int | None = None, *, status: int = 2) -> bytes:
    """The whole of regular file ``path``; ``limit`` bytes at most (checked before reading)."""
    with open_regular(path, what, status=status) as stream:
        size = os.fstat(stream.fileno()).st_size
        if limit is not None and size > limit:
            raise CliError(f"{what} {path} is {_mib(size)}, larger than {_mib(limit)} "
                           "(the guest RAM)", status)
        try:
            data = stream.read(limit + 1 if limit is not None else -1)
        except OSError as exc:
            raise CliError(f"cannot read {what} {path}: {exc.strerror or exc}", status) from None
    if limit is not None and len(data) > limit:  # the file grew while we read it
        raise CliError(f"{what} {path} is larger than {_mib(limit)} (the guest RAM)", status)
    return data


def _say(path: str, what: str | None, problem: str) -> str:
    return f"'{path}': {problem}" if what is None else f"cannot read {what} {path}: {problem}"


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB" if n >= 1 << 20 else f"{n} bytes"
