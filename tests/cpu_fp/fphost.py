"""The host CPU as the oracle for x86vm's floating point: build tests/cpu_fp/harness.c with gcc
and talk to it over a pipe, one case per line (the format is in harness.c)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
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
        # a writer thread feeds the harness while this thread reads, so no pipe fills up
        assert self.proc.stdin and self.proc.stdout
        stdin = self.proc.stdin

        def feed() -> None:
            for i in range(0, len(lines), 2000):
                stdin.write("".join(line + "\n" for line in lines[i:i + 2000]))
            stdin.write("flush\n")
            stdin.flush()

        writer = threading.Thread(target=feed)
        writer.start()
        out = [self.proc.stdout.readline().strip() for _ in lines]
        writer.join()
        return out

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait()

    def __enter__(self) -> Oracle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
