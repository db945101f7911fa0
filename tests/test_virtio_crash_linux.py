"""Crash consistency with the Linux guest on emu (issue 12, Must show 2).

The cached Linux guest boots (vmlinux, PVH, with an appended initramfs archive) and runs
tests/support/appender.c: record k (tests/test_virtio_crash.record) goes to byte 512 * k of
the raw disk /dev/vda with pwrite, then fsync — the kernel's block layer writes the page and
sends a virtio-blk FLUSH — and only after fsync returned does the guest print
"x86vm-rec k". The host reads the monitor's stdout and SIGKILLs ``x86vm run`` at a random
moment once the first record is printed; every printed record must then be in the image,
byte for byte. (SIGKILL leaves the host's page cache intact: this shows no acknowledged write
waits in the monitor's memory; FLUSH → fdatasync ordering is tests/test_virtio_blk.py's.)

Each run is a full Linux boot on the Python CPU (~30-60 s here), so all runs are slow:
``python3 -m pytest -m slow tests/test_virtio_crash_linux.py`` (20 runs, two at a time;
``X86VM_CRASH_RUNS``, ``X86VM_CRASH_JOBS`` change that).
"""

from __future__ import annotations

import os
import random
import re
import selectors
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from support import oracles
from support.initramfs import guest_initramfs, static_program
from test_virtio_crash import record

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
LINUX_DIR = Path(os.environ.get("X86VM_LINUX_DIR", Path.home() / ".cache/x86vm/linux"))
SECTORS = 8192
RECORD = re.compile(rb"x86vm-rec (\d+)\r?\n")
SCRIPT = """#!/bin/sh
mount -t devtmpfs devtmpfs /dev 2>/dev/null
/bin/appender /dev/vda 8000
reboot -f
"""


def one_run(initrd: Path, image: Path, delay: float, boot_timeout: float
            ) -> tuple[list[int], float]:
    """Boot, kill ``delay`` s after the first printed record; (records printed, seconds)."""
    with open(image, "wb") as f:
        f.truncate(SECTORS * 512)
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "x86vm", "run", "--backend", "emu", "-m", "128M",
         "--initrd", str(initrd), "--cmdline", "console=ttyS0 rdinit=/x86vm-init panic=-1 quiet",
         "--drive", f"file={image},cache=writeback", str(LINUX_DIR / "vmlinux")],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    out = b""
    deadline = t0 + boot_timeout
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    killed = False
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if sel.select(timeout=0.01):
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not out.count(b"x86vm-rec ") and b"x86vm-rec " in out + chunk:
                    deadline = time.monotonic() + delay
                out += chunk
        killed = proc.poll() is None
        if killed:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        # what was already in the pipe was printed before the kill, so it counts too
        while chunk := os.read(proc.stdout.fileno(), 65536):
            out += chunk
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    done = [int(m[1]) for m in RECORD.finditer(out)]
    assert killed and done, out[-3000:].decode("latin-1")  # killed while appending
    assert done == list(range(len(done))), done[:20]
    data = image.read_bytes()
    for k in done:
        assert data[512 * k: 512 * k + 512] == record(k), f"record {k} lost"
    return done, time.monotonic() - t0


def test_records_fsynced_by_linux_survive_sigkill_20_runs(tmp_path):
    oracles.require("linux-guest")
    appender = static_program(ROOT / "tests/support/appender.c", tmp_path / "appender")
    initrd = tmp_path / "initrd.cpio"
    initrd.write_bytes(guest_initramfs(LINUX_DIR / "initramfs.cpio", SCRIPT,
                                       {"bin/appender": appender}))
    runs = int(os.environ.get("X86VM_CRASH_RUNS", "20"))
    jobs = int(os.environ.get("X86VM_CRASH_JOBS", "2"))  # boots side by side (2 cores)
    rng = random.Random(12)
    delays = [rng.uniform(0.0, 3.0) for _ in range(runs)]
    t0 = time.monotonic()
    with ThreadPoolExecutor(jobs) as pool:
        results = list(pool.map(lambda i: one_run(initrd, tmp_path / f"crash{i}.img",
                                                  delays[i], 600), range(runs)))
    print(f"\n{runs} runs in {time.monotonic() - t0:.0f} s; (records confirmed, wall "
          f"seconds) per run: {[(len(d), round(s)) for d, s in results]}")
