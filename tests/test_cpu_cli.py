"""``x86vm run --backend emu``: the bundled guest greets and shuts down cleanly (status 0),
and a Multiboot kernel's debug-exit status comes through, as on KVM."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from guests.fixtures import guest_dir  # noqa: F401  (fixture)
from guests.oracle import recorded

SRC = Path(__file__).resolve().parents[1] / "src"


def x86vm(*args, timeout=120):
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run([sys.executable, "-m", "x86vm", *map(str, args)], env=env,
                          capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    # the serial bytes as they are (no newline translation)
    return subprocess.CompletedProcess(done.args, done.returncode,
                                       done.stdout.decode("latin-1"),
                                       done.stderr.decode("latin-1"))


def test_bundled_guest_greets_on_emu():
    done = x86vm("run", "--backend", "emu", "--timeout", "60")
    assert done.returncode == 0, done.stderr
    assert done.stdout == recorded("bundled_hello")["serial"]


def test_multiboot_kernel_on_emu(guest_dir):  # noqa: F811
    expected = recorded("tutorial")
    done = x86vm("run", "--backend", "emu", "--timeout", "60", guest_dir / "tutorial.elf")
    assert (done.returncode, done.stdout) == (expected["status"], expected["serial"]), \
        done.stderr
