"""The bare-metal benchmark guest of bench/virtio_blk.py (``--guest bare``), small: the same
firmware must run all four phases to ``BENCH done`` under ``x86vm run --bios`` on each
backend and under QEMU's microvm (the oracle that the firmware drives virtio-mmio as a real
device expects), and its writes must reach the image."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import oracles
from support.backends import BACKENDS

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import virtio_blk as bench  # noqa: E402

PHASE_LINES = [f"BENCH {p} {e}" for p in bench.PHASES for e in ("start", "end")]


@pytest.fixture(scope="module")
def firmware(tmp_path_factory) -> Path:
    oracles.require("binutils")
    return bench.build_firmware(tmp_path_factory.mktemp("fw"), SEQ_MIB, RAND_OPS, IMAGE_MIB)


IMAGE_MIB, SEQ_MIB, RAND_OPS = 16, 1, 64
MARKER = b"x86vm-bench-marker"
MARKED_BLOCK = 15 * 16  # the first 4 KiB block of the last 64 KiB request of seq-read


def marked_image(path: Path) -> Path:
    with open(path, "wb") as f:
        f.truncate(IMAGE_MIB << 20)
        f.seek(MARKED_BLOCK * 4096)
        f.write(MARKER)
    return path


def xorshift32(x: int):
    while True:
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        yield x


def expected_marked_blocks() -> set[int]:
    """What the firmware's requests do to the image, modelled block by block (4 KiB): which
    blocks start with the marker at the end. seq-read leaves the last 64 KiB read (marker
    first) in the data buffer, seq-write writes it to every 64 KiB step; the random reads
    each load one block into the buffer, the random writes store the last of them."""
    marked = {MARKED_BLOCK}
    steps = (SEQ_MIB << 20) // (64 << 10)
    buffer_marked = (steps - 1) * 16 in marked
    for k in range(steps):
        (marked.add if buffer_marked else marked.discard)(16 * k)
        for b in range(16 * k + 1, 16 * k + 16):
            marked.discard(b)
    rand = xorshift32(0x2545F491)
    blocks = (IMAGE_MIB << 20) // 4096
    for _ in range(RAND_OPS):
        buffer_marked = next(rand) & (blocks - 1) in marked
    for _ in range(RAND_OPS):
        (marked.add if buffer_marked else marked.discard)(next(rand) & (blocks - 1))
    return marked


def check(out: str, image: Path) -> None:
    lines = [line.strip() for line in out.splitlines() if line.startswith("BENCH")]
    assert [" ".join(line.split()[:3]) for line in lines] == PHASE_LINES + ["BENCH done"], out
    data = image.read_bytes()
    marked = {b for b in range(len(data) // 4096) if data[b * 4096:].startswith(MARKER)}
    assert marked == expected_marked_blocks()


@pytest.mark.parametrize("backend", BACKENDS)
def test_bare_bench_guest_runs_on_x86vm(firmware, tmp_path, backend):
    if backend == "kvm":
        oracles.require("kvm")
    image = marked_image(tmp_path / "x.img")
    done = subprocess.run(bench.x86vm_bare_cmd(backend, firmware, image) + ["--timeout", "120"],
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
                          capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert done.returncode == 1, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    check(done.stdout, image)


def test_bare_bench_guest_runs_on_qemu(firmware, tmp_path):
    oracles.require("qemu")
    image = marked_image(tmp_path / "q.img")
    done = subprocess.run(bench.qemu_bare_cmd("tcg", firmware, image), capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 1, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    check(done.stdout, image)
