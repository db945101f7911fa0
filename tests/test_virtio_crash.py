"""Crash consistency through the real command: ``x86vm run --drive`` (KVM and emu), killed with
SIGKILL at random moments (0-2 s after the first record) while a bare-metal guest appends
numbered records.

The guest writes record k to sector k (OUT), sends FLUSH, and only when the FLUSH came back
OK prints k on the serial console. Every number the harness read from the monitor's stdout
must be in the image afterwards, byte for byte. (A SIGKILL leaves the host's page cache
intact, so this shows that no completed write waits in the monitor's own memory and that
FLUSH completes only after the write reached the file; that FLUSH reaches the disk before it
completes — ``fdatasync`` first — is tests/test_virtio_blk.py's ordering test.)
Default: 3 kills; ``-m slow``: 25.
"""

from __future__ import annotations

import os
import random
import selectors
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.backends import BACKENDS
from support.virtio_guest import blk_driver_setup, flat_gdt, unreal_mode
from test_kvm_support import assemble

SRC = Path(__file__).resolve().parents[1] / "src"
WINDOW = 0xD000_0000
DESC, AVAIL, USED, HEADER, DATA, STATUS = 0x1000, 0x2000, 0x3000, 0x4000, 0x5000, 0x6000
SECTORS = 4096
MAGIC = 0x21434552  # "REC!"


def record(k: int) -> bytes:
    """Sector k's contents as the guest writes it: magic, k, then k * 0x9e3779b9 + i."""
    words = [MAGIC, k] + [(k * 0x9E3779B9 + i) & 0xFFFFFFFF for i in range(2, 128)]
    return struct.pack("<128I", *words)


GUEST = f"""
    cli
    xor %ax, %ax
    mov %ax, %ss
    mov $0x7000, %sp
{unreal_mode('ds', 'fs')}
2:  mov ${WINDOW:#x}, %ebx
{blk_driver_setup(DESC, AVAIL, USED)}
    # descriptors: 0 header -> 1 data -> 2 status (OUT); FLUSH uses 0 -> 2
    movl ${HEADER:#x}, {DESC:#x}
    movl $16, {DESC + 8:#x}
    movl ${DATA:#x}, {DESC + 16:#x}
    movl $512, {DESC + 24:#x}
    movw $1, {DESC + 28:#x}
    movw $2, {DESC + 30:#x}
    movl ${STATUS:#x}, {DESC + 32:#x}
    movl $1, {DESC + 40:#x}
    movw $2, {DESC + 44:#x}
    xor %ebp, %ebp                   # k
record:
    movl ${MAGIC:#x}, {DATA:#x}
    movl %ebp, {DATA + 4:#x}
    mov %ebp, %eax
    imul $0x9e3779b9, %eax
    mov $2, %ecx
3:  lea (%eax,%ecx), %edx
    movl %edx, {DATA:#x}(,%ecx,4)
    inc %ecx
    cmp $128, %ecx
    jb 3b
    movl $1, {HEADER:#x}             # VIRTIO_BLK_T_OUT
    movl %ebp, {HEADER + 8:#x}       # sector k
    movw $1, {DESC + 12:#x}
    movw $1, {DESC + 14:#x}          # header -> data
    call submit
    movl $4, {HEADER:#x}             # VIRTIO_BLK_T_FLUSH
    movl $0, {HEADER + 8:#x}
    movw $2, {DESC + 14:#x}          # header -> status
    call submit
    mov %ebp, %eax                   # the FLUSH is done: print k in hex
    mov $8, %cx
4:  rol $4, %eax
    mov %al, %dl
    and $15, %dl
    add $0x30, %dl
    cmp $0x3a, %dl
    jb 5f
    add $7, %dl
5:  push %eax
    mov %dl, %al
    mov $0x3f8, %dx
    out %al, %dx
    pop %eax
    dec %cx
    jnz 4b
    mov $0x0a, %al
    mov $0x3f8, %dx
    out %al, %dx
    inc %ebp
    cmp ${SECTORS}, %ebp
    jb record
    mov $0x2a, %al
    out %al, $0xf4

fail:
    mov $0x7f, %al
    out %al, $0xf4

submit:                              # head 0 in the next avail slot; kick; it is done on return
    movb $0xff, {STATUS:#x}
    movzwl availidx, %eax
    mov %eax, %edi
    and $7, %edi
    movw $0, {AVAIL + 4:#x}(,%edi,2)
    inc %eax
    movw %ax, availidx
    movw %ax, {AVAIL + 2:#x}
    movl $0, %fs:0x050(%ebx)         # QueueNotify: processed inside this MMIO exit
    cmpw {USED + 2:#x}, %ax
    jne fail
    cmpb $0, {STATUS:#x}
    jne fail
    ret

{flat_gdt()}
availidx: .word 0
"""


def one_run(tmp_path: Path, guest: Path, rng: random.Random, index: int,
            backend: str) -> tuple[int, int]:
    """Run until a random moment, SIGKILL, check; returns (records printed, highest)."""
    image = tmp_path / f"crash{index}.img"
    with open(image, "wb") as f:
        f.truncate(SECTORS * 512)
    proc = subprocess.Popen(
        [sys.executable, "-m", "x86vm", "run", str(guest), "--loader", "flat",
         "--drive", f"file={image}", "--backend", backend],
        env={**os.environ, "PYTHONPATH": str(SRC)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    printed = b""
    # the kill comes at a random moment once the guest is appending (a loaded machine may
    # take a while to start the monitor)
    delay = rng.uniform(0.0, 2.0)
    deadline = time.monotonic() + 120
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if sel.select(timeout=0.01):
                chunk = os.read(proc.stdout.fileno(), 65536)
                if chunk and not printed:
                    deadline = time.monotonic() + delay
                printed += chunk
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        # what was already in the pipe was printed before the kill, so it counts too
        while chunk := os.read(proc.stdout.fileno(), 65536):
            printed += chunk
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        stderr = proc.stderr.read()
        proc.stderr.close()
    lines = printed.split(b"\n")
    done = [int(line, 16) for line in lines[:-1]]  # the last piece may be cut off
    assert done == list(range(len(done))), (done[:20], stderr[-2000:])
    data = image.read_bytes()
    for k in done:
        assert data[512 * k : 512 * k + 512] == record(k), f"record {k} lost (run {index})"
    return len(done), (done[-1] if done else -1)


def crash_runs(tmp_path: Path, runs: int, seed: int, backend: str) -> list[tuple[int, int]]:
    guest = tmp_path / "append.bin"
    guest.write_bytes(assemble(GUEST, 0x7C00))
    rng = random.Random(seed)
    results = [one_run(tmp_path, guest, rng, i, backend) for i in range(runs)]
    assert sum(n for n, _ in results) > 0  # the guest got somewhere before being killed
    return results


@pytest.mark.parametrize("backend", BACKENDS)  # the guest polls: needs no interrupt controller
def test_records_printed_before_sigkill_are_in_the_image(tmp_path, backend):
    crash_runs(tmp_path, 3, seed=1, backend=backend)


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_records_printed_before_sigkill_are_in_the_image_25_runs(tmp_path, backend):
    results = crash_runs(tmp_path, 25, seed=12, backend=backend)
    print("\nrecords confirmed per run:", [n for n, _ in results])
