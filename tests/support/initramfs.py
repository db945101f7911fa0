"""Extra initramfs archives for the Linux guest: a test or benchmark appends one holding its
own init script (started with ``rdinit=``) and programs to the cached busybox archive.

The kernel unpacks concatenated archives in order (Documentation/driver-api/early-userspace/
buffer-format.rst), so the cached initramfs stays untouched. Written here in the "newc"
format ("070701": thirteen 8-digit hex fields, the NUL-terminated name and the data, each
padded to 4 bytes, ending with TRAILER!!!) so no cpio binary is needed.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

S_IFDIR, S_IFREG = 0o040000, 0o100000


def _entry(ino: int, name: str, mode: int, data: bytes) -> bytes:
    encoded = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, 2 if mode & S_IFDIR else 1, 0, len(data), 0, 0, 0, 0,
              len(encoded), 0)
    head = b"070701" + b"".join(b"%08X" % f for f in fields) + encoded
    head += b"\0" * (-len(head) % 4)
    return head + data + b"\0" * (-len(data) % 4)


def newc_archive(files: dict[str, bytes], executable: tuple[str, ...] = ()) -> bytes:
    """A newc archive with ``files`` (path → bytes; parent directories added); the paths in
    ``executable`` get mode 0755, the others 0644."""
    dirs = sorted({str(Path(p).parents[i]) for p in files
                   for i in range(len(Path(p).parents) - 1)})
    out, ino = [], 0x7000
    for d in dirs:
        ino += 1
        out.append(_entry(ino, d, S_IFDIR | 0o755, b""))
    for path, data in files.items():
        ino += 1
        out.append(_entry(ino, path, S_IFREG | (0o755 if path in executable else 0o644), data))
    out.append(_entry(0, "TRAILER!!!", 0, b""))
    return b"".join(out)


def static_program(source: Path, out: Path) -> bytes:
    """Compile a C file into a static x86-64 executable (gcc, glibc's libc.a) and return it."""
    subprocess.run(["gcc", "-static", "-O2", "-o", str(out), str(source)], check=True)
    return out.read_bytes()


def guest_initramfs(base: Path, init_script: str, programs: dict[str, bytes] | None = None
                    ) -> bytes:
    """``base`` (the cached uncompressed busybox archive) followed by an archive holding
    ``/x86vm-init`` (``init_script``; boot with ``rdinit=/x86vm-init``) and ``programs``."""
    programs = dict(programs or {})
    files = {"x86vm-init": init_script.encode(), **programs}
    return base.read_bytes() + newc_archive(files, ("x86vm-init", *programs))
