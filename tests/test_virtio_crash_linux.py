"""Crash consistency with the Linux guest on emu (issue 12, Must show 2).

The cached Linux guest (vmlinux, PVH) boots with an initramfs holding one file,
tests/support/appender.c, started as the first process (``rdinit=/appender``): it mounts
devtmpfs, then writes record k (tests/test_virtio_crash.record) to byte 512 * k of the raw
disk /dev/vda with pwrite and fsyncs — the kernel's block layer writes the page out (OUT)
and sends a virtio-blk FLUSH — and only after fsync returned prints "x86vm-rec k". The host
reads the monitor's stdout and SIGKILLs ``x86vm run`` at a random moment after the first
record; every printed record must then be in the image, byte for byte. (SIGKILL leaves the
host's page cache intact: this shows that no acknowledged write waits in the monitor's
memory; FLUSH → fdatasync ordering is tests/test_virtio_blk.py's.)

Each run is a Linux boot on the Python CPU (15-35 s to the first record here), so all runs are
slow:
``python3 -m pytest -m slow -s tests/test_virtio_crash_linux.py`` (20 runs, one at a time).
``X86VM_CRASH_RUNS`` / ``X86VM_CRASH_FIRST`` pick runs ``FIRST .. FIRST+RUNS-1`` (each run's
kill delay comes from its own index, so pieces run apart add up to the same 20 runs),
``X86VM_CRASH_JOBS`` runs that many boots side by side, ``X86VM_CRASH_LOG`` appends one JSON
line per run to a file.
"""

from __future__ import annotations

import json
import os
import random
import re
import selectors
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from support import oracles
from support.initramfs import newc_archive, static_program
from test_virtio_crash import record

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
LINUX_DIR = Path(os.environ.get("X86VM_LINUX_DIR", Path.home() / ".cache/x86vm/linux"))
SECTORS = 8192
RECORD = re.compile(rb"x86vm-rec (\d+)\r?\n")
CMDLINE = "console=ttyS0 rdinit=/appender panic=-1 quiet"
MAX_DELAY = 6.0
"""Kill delays are drawn from [0, MAX_DELAY) s after the first printed record."""


@dataclass
class Run:
    index: int
    delay: float  # seconds after the first printed record, as planned
    boot_s: float  # monitor start → first record seen
    kill_s: float  # monitor start → SIGKILL
    printed: int  # records whose number reached the host
    found: int  # intact records in the image afterwards (record 0 upwards, no gap)
    lost: list[int]  # printed but not intact: must be empty


def kill_delay(index: int) -> float:
    return random.Random(f"crash-linux-{index}").uniform(0.0, MAX_DELAY)


def one_run(index: int, initrd: Path, image: Path, boot_timeout: float = 900) -> Run:
    """Boot, SIGKILL ``kill_delay(index)`` s after the first printed record, check the image."""
    with open(image, "wb") as f:
        f.truncate(SECTORS * 512)
    delay = kill_delay(index)
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "x86vm", "run", "--backend", "emu", "-m", "64M",
         "--initrd", str(initrd), "--cmdline", CMDLINE,
         "--drive", f"file={image},cache=writeback", str(LINUX_DIR / "vmlinux")],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    out = b""
    deadline = t0 + boot_timeout
    first = None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if sel.select(timeout=0.005):
                out += os.read(proc.stdout.fileno(), 65536)
                if first is None and RECORD.search(out):
                    first = time.monotonic()
                    deadline = first + delay
        killed = proc.poll() is None
        if killed:
            os.kill(proc.pid, signal.SIGKILL)
        kill_s = time.monotonic() - t0
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
    assert killed and first is not None, out[-3000:].decode("latin-1")  # killed while appending
    assert done == list(range(len(done))), done[:20]
    data = image.read_bytes()
    found = 0
    while found < SECTORS and data[512 * found: 512 * found + 512] == record(found):
        found += 1
    lost = [k for k in done if data[512 * k: 512 * k + 512] != record(k)]
    return Run(index, round(delay, 3), round(first - t0, 1), round(kill_s, 1), len(done),
               found, lost)


def test_records_fsynced_by_linux_survive_sigkill_20_runs(tmp_path):
    oracles.require("linux-guest")
    appender = static_program(ROOT / "tests/support/appender.c", tmp_path / "appender")
    initrd = tmp_path / "initrd.cpio"
    initrd.write_bytes(newc_archive({"appender": appender}, ("appender",)))
    runs = int(os.environ.get("X86VM_CRASH_RUNS", "20"))
    first = int(os.environ.get("X86VM_CRASH_FIRST", "0"))
    jobs = int(os.environ.get("X86VM_CRASH_JOBS", "1"))
    log = os.environ.get("X86VM_CRASH_LOG")
    t0 = time.monotonic()

    def run(i: int) -> Run:
        r = one_run(i, initrd, tmp_path / f"crash{i}.img")
        print(f"\nrun {r.index}: boot {r.boot_s} s, kill at {r.kill_s} s ({r.delay} s after "
              f"the first record), {r.printed} printed, {r.found} found, lost {r.lost}",
              flush=True)
        if log:
            with open(log, "a") as f:
                f.write(json.dumps(asdict(r)) + "\n")
        return r

    with ThreadPoolExecutor(jobs) as pool:
        results = list(pool.map(run, range(first, first + runs)))
    print(f"\n{runs} runs in {time.monotonic() - t0:.0f} s: "
          f"{sum(r.printed for r in results)} records printed, "
          f"{sum(len(r.lost) for r in results)} lost")
    assert all(r.lost == [] for r in results), [asdict(r) for r in results if r.lost]
    assert all(r.found >= r.printed for r in results)
