"""The host CPU as the oracle for x86vm's floating point: build tests/cpu_fp/harness.c with gcc
and talk to it over a pipe, one case per line (the format is in harness.c)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "harness.c"


def available() -> str | None:
    """None when the oracle can run here, else why not."""
    if os.uname().machine not in ("x86_64", "AMD64"):
        return "the host is not x86-64"
    if shutil.which("gcc") is None:
        return "gcc is not installed"
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if " avx " not in flags or " sse4_1 " not in flags:
        return "the host CPU lacks AVX or SSE4.1"
    return None


def build() -> Path:
    """Compile the harness once per source version; return the executable's path."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    out = Path(tempfile.gettempdir()) / f"x86vm-fp-harness-{digest}"
    if not out.exists():
        tmp = out.with_suffix(f".{os.getpid()}")
        subprocess.run(["gcc", "-O1", "-mavx", "-o", str(tmp), str(SOURCE)], check=True)
        tmp.replace(out)
    return out


class Oracle:
    """A running harness; :meth:`run` sends a batch of case lines and returns the answers."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([str(build())], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1 << 16)

    def run(self, lines: list[str]) -> list[str]:
        # write and read in chunks so neither pipe fills up
        out: list[str] = []
        assert self.proc.stdin and self.proc.stdout
        for i in range(0, len(lines), 2000):
            chunk = lines[i:i + 2000]
            self.proc.stdin.write("".join(line + "\n" for line in chunk) + "flush\n")
            self.proc.stdin.flush()
            for _ in chunk:
                out.append(self.proc.stdout.readline().strip())
        return out

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait()

    def __enter__(self) -> Oracle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
