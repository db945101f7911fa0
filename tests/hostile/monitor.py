"""Running ``x86vm`` as a child process under a memory limit, with its peak RSS measured."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
ADDRESS_SPACE_LIMIT = 768 << 20
"""RLIMIT_AS of the monitor: Python, its threads' stacks and the guest's RAM (``--memory``)
fit; a monitor whose memory grows with what the guest does does not."""
GUEST_MEMORY = "16M"


@dataclass
class Outcome:
    status: int
    stdout: bytes
    stderr: str
    seconds: float
    peak_rss_kib: int


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))


def x86vm(args: list[str], *, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
          deadline: float = 60.0) -> Outcome:
    """Run ``python -m x86vm ARGS`` under the memory limit (no RSS figure: see x86vm_rss)."""
    env = dict(os.environ, PYTHONPATH=str(SRC))
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "x86vm", *args], stdin=stdin,
                            stdout=stdout, stderr=subprocess.PIPE, env=env,
                            preexec_fn=_limit_memory)
    try:
        out, err = proc.communicate(timeout=deadline)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"x86vm {' '.join(args)}: still running after {deadline} s") from None
    seconds = time.monotonic() - start
    return Outcome(proc.returncode, out or b"", err.decode(errors="replace"), seconds, 0)


def x86vm_rss(args: list[str], *, deadline: float = 60.0, stdin: str = os.devnull) -> Outcome:
    """Like :func:`x86vm` with output to /dev/null and input from ``stdin``, and the child's
    own peak RSS (KiB) from ``os.wait4`` (ru_maxrss of that child alone)."""
    env = dict(os.environ, PYTHONPATH=str(SRC))
    start = time.monotonic()
    with open(os.devnull, "wb") as null, open(stdin, "rb") as nothing:
        proc = subprocess.Popen([sys.executable, "-m", "x86vm", *args], stdin=nothing,
                                stdout=null, stderr=subprocess.PIPE, env=env,
                                preexec_fn=_limit_memory)
        err = b""
        while True:
            pid, wait_status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                raise AssertionError(f"x86vm {' '.join(args)}: still running after {deadline} s")
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(wait_status)
        err = proc.stderr.read()
        proc.stderr.close()
    return Outcome(proc.returncode, b"", err.decode(errors="replace"),
                   time.monotonic() - start, usage.ru_maxrss)
