"""The hostile driver as a guest: random rings, descriptors, indirect tables, requests and
register writes made by guest code (xorshift32) and delivered through real exits.

Every kick is an MMIO exit to the monitor, so this checks the whole exit path against a
misbehaving driver on each backend that runs here: the run must end by the guest's own
debug-exit (no monitor error, no hang), no device access may leave guest RAM (the machine's
``GuestMemory.view`` is watched), and the error counters show which checks fired.
Default: 3,000 operations per backend; ``-m slow``: 150,000 (``X86VM_FUZZ_OPS``), of which
more than 100,000 on descriptors and rings — the guest counts each kind of operation it
makes; ``X86VM_FUZZ_REPORT`` appends the counters of a long run to a JSON-lines file.
"""

from __future__ import annotations

import json
import os
import struct
import time
from dataclasses import dataclass

import pytest

from support import oracles
from support.virtio_guest import flat_gdt, unreal_mode, xorshift32
from test_kvm_support import ExitDevice, assemble
from x86vm.devices.virtio import DriveSpec, attach_virtio
from x86vm.devices.virtio.blk import BLK_CHECKS
from x86vm.devices.virtio.mmio import TRANSPORT_CHECKS
from x86vm.devices.virtio.queue import QUEUE_CHECKS
from x86vm.machine.backend import RunResult
from x86vm.machine.boot.state import real_mode
from x86vm.machine.vm import Machine

WINDOW = 0xD000_0000
RAM = 2 << 20
SCRATCH = 0x10_0000  # [1 MiB, 2 MiB): where the guest lets buffers point; code/rings stay below
DESC, AVAIL, USED = 0x1000, 0x2000, 0x3000
COUNTS = 0x4000  # the guest's operation counters, one u32 per kind (OPERATIONS' order)
OPERATIONS = ("desc", "avail", "kick", "chain", "indirect", "reinit", "regwrite", "regread")
"""What each operation does (the guest's labels ``op_<name>``)."""
RING_OPERATIONS = ("desc", "avail", "kick", "chain", "indirect")
"""The descriptor and ring operations (the rest are register accesses and resets)."""

GUEST = f"""
    cli
    xor %ax, %ax
    mov %ax, %ss
    mov $0x7000, %sp
{unreal_mode('ds', 'es', 'fs')}
2:  mov ${WINDOW:#x}, %ebx
    test %esi, %esi                 # a seed from the monitor (ESI), else the built-in one
    jz 3f
    movl %esi, seed
3:  call init
loop:
    call rand
    mov %eax, %ecx
    and $15, %ecx
    cmp $4, %cl
    jb op_desc
    cmp $6, %cl
    jb op_avail
    cmp $9, %cl
    jb op_kick
    cmp $11, %cl
    jb op_chain
    cmp $12, %cl
    jb op_indirect
    cmp $13, %cl
    jb op_reinit
    cmp $14, %cl
    jb op_regwrite
    jmp op_regread
next:
    dec %ebp
    jnz loop
    mov $0x2a, %al
    out %al, $0xf4

# -- operations ---------------------------------------------------------------------------

op_desc:                            # a random descriptor at a random index 0..15
    incl {COUNTS + 0:#x}
    call rand
    mov %eax, %edi
    and $15, %edi
    shl $4, %edi
    add ${DESC:#x}, %edi
    call pick_addr
    movl %eax, (%edi)
    movl %edx, 4(%edi)
    call pick_len
    movl %eax, 8(%edi)
    call rand
    mov %eax, %ecx
    and $7, %ecx                     # NEXT / WRITE / INDIRECT
    movw %cx, 12(%edi)
    shr $8, %eax
    and $15, %eax
    movw %ax, 14(%edi)
    jmp next

op_avail:                           # a random head in the next slot, idx += 1 (or garbage)
    incl {COUNTS + 4:#x}
    call rand
    movzwl availidx, %edi
    and $7, %edi
    shl $1, %edi
    mov %eax, %ecx
    shr $8, %ecx
    and $15, %ecx
    movw %cx, {AVAIL + 4:#x}(%edi)
    test $0x1f0000, %eax
    jnz 3f
    shr $24, %eax
    addw %ax, availidx              # now and then a jump
3:  incw availidx
    movw availidx, %ax
    movw %ax, {AVAIL + 2:#x}
    jmp next

op_kick:
    incl {COUNTS + 8:#x}
    testl $0x40, %fs:0x070(%ebx)    # DEVICE_NEEDS_RESET: a driver would start over
    jz 1f
    test $0x100, %eax
    jz 1f
    call init
1:  xor %ecx, %ecx
    test $0x7000, %eax               # one kick in 8 names a random queue 0..3 (only 0 exists)
    jnz 2f
    shr $16, %eax
    and $3, %eax
    mov %eax, %ecx
2:  movl %ecx, %fs:0x050(%ebx)      # QueueNotify: an MMIO exit
    jmp next

op_chain:                           # a plausible request at descriptors 0-2, rarely one defect
    incl {COUNTS + 12:#x}
    call rand
    mov %eax, %edi
    and $0xffff0, %edi
    add ${SCRATCH:#x}, %edi          # header
    mov %eax, %ecx
    shr $20, %ecx
    and $7, %ecx
    movzbl types(%ecx), %ecx
    movl %ecx, (%edi)
    movl $0, 4(%edi)
    call rand
    and $0xff, %eax                  # sector 0..255 of a 128-sector image
    movl %eax, 8(%edi)
    movl $0, 12(%edi)
    movl %edi, {DESC:#x}
    movl $0, {DESC + 4:#x}
    movl $16, {DESC + 8:#x}
    movw $1, {DESC + 12:#x}
    movw $1, {DESC + 14:#x}
    lea 0x20(%edi), %eax             # data
    movl %eax, {DESC + 16:#x}
    movl $0, {DESC + 20:#x}
    call rand
    mov %eax, %ecx
    and $0x600, %eax                 # 0, 512, 1024 or 1536 bytes
    movl %eax, {DESC + 24:#x}
    and $2, %ecx                     # device-writable or not
    or $1, %ecx
    movw %cx, {DESC + 28:#x}
    movw $2, {DESC + 30:#x}
    lea 0x1000(%edi), %eax           # status
    movl %eax, {DESC + 32:#x}
    movl $0, {DESC + 36:#x}
    movl $1, {DESC + 40:#x}
    movw $2, {DESC + 44:#x}
    movw $0, {DESC + 46:#x}
    call rand
    test $0x3c, %eax                 # one in 16: one field gets a random value
    jnz 4f
    mov %eax, %ecx
    shr $8, %ecx
    and $31, %ecx
    call pick_addr
    movl %eax, {DESC:#x}(%ecx,2)
4:  movzwl availidx, %eax
    mov %eax, %edi
    and $7, %edi
    shl $1, %edi
    movw $0, {AVAIL + 4:#x}(%edi)
    inc %eax
    movw %ax, availidx
    movw %ax, {AVAIL + 2:#x}
    jmp next

op_indirect:                        # an indirect table in scratch, referenced from descriptor 0
    incl {COUNTS + 16:#x}
    call rand
    mov %eax, %esi
    and $0xffff0, %esi
    add ${SCRATCH:#x}, %esi
    mov $4, %ecx
5:  call pick_addr
    movl %eax, (%esi,%ecx,8)        # fills the 64 bytes with random descriptors
    call pick_len
    movl %eax, 4(%esi,%ecx,8)
    inc %ecx
    cmp $12, %ecx
    jb 5b
    call rand
    and $0xff, %eax                  # usually not a multiple of 16; up to 15 entries
    test $7, %al                     # one in 8: a well-formed table of 15 linked entries,
    jnz 7f                           # longer than most queues
    and $0x17fff0, %esi
    xor %ecx, %ecx
6:  mov %ecx, %edi
    shl $4, %edi
    movl ${SCRATCH:#x}, (%esi,%edi)
    movl $0, 4(%esi,%edi)
    movl $16, 8(%esi,%edi)
    lea 1(%ecx), %eax
    movw $1, 12(%esi,%edi)          # NEXT
    movw %ax, 14(%esi,%edi)
    inc %ecx
    cmp $15, %ecx
    jb 6b
    movw $2, {14 * 16 + 12}(%esi)    # the last one: WRITE, no NEXT
    mov $240, %eax
7:  movl %esi, {DESC:#x}
    movl $0, {DESC + 4:#x}
    movl %eax, {DESC + 8:#x}
    movw $4, {DESC + 12:#x}
    jmp next

op_reinit:
    incl {COUNTS + 20:#x}
    call init
    jmp next

op_regwrite:                        # a random offset of the window, width and value
    incl {COUNTS + 24:#x}
    call rand
    mov %eax, %edi
    and $0x1ff, %edi                 # any byte offset, config space included
    mov %edi, %ecx
    and $0x1fc, %ecx
    cmp $0x50, %ecx                  # (QueueNotify has its own op)
    je next
    mov %eax, %ecx
    shr $9, %ecx
    and $3, %ecx                     # 0: byte, 1: word, else dword
    call rand
    cmp $1, %cl
    jb 1f
    je 2f
    movl %eax, %fs:(%ebx,%edi)
    jmp next
1:  movb %al, %fs:(%ebx,%edi)
    jmp next
2:  movw %ax, %fs:(%ebx,%edi)
    jmp next

op_regread:
    incl {COUNTS + 28:#x}
    call rand
    and $0x1fc, %eax
    movl %fs:(%ebx,%eax), %ecx
    jmp next

# -- helpers ------------------------------------------------------------------------------

init:                               # reset and set the queue up (mostly validly)
    movl $0, %fs:0x070(%ebx)
    movl $1, %fs:0x070(%ebx)
    movl $3, %fs:0x070(%ebx)
    call rand
    movl %eax, defects              # each nibble 0 (1 in 16): one defect below
    movl $1, %fs:0x024(%ebx)
    testl $0xf, defects
    jz 1f                            # VERSION_1 left out
    movl $1, %fs:0x020(%ebx)        # VERSION_1
1:  movl $0, %fs:0x024(%ebx)
    call rand
    mov %eax, %ecx
    and $0x30006244, %eax            # SEG_MAX BLK_SIZE FLUSH DISCARD WZ INDIRECT EVENT_IDX
    testl $0xf0, defects
    jnz 2f
    or $0x80000000, %eax             # a feature the device does not offer
2:  movl %eax, %fs:0x020(%ebx)
    testl $0xf00, defects
    jnz 3f
    movl $7, %fs:0x070(%ebx)        # DRIVER_OK before FEATURES_OK
3:  movl $11, %fs:0x070(%ebx)
    testl $0xf00000, defects
    jnz 6f
    movl $1, %fs:0x030(%ebx)        # QueueSel names no queue; then its QueueSize
    movl $8, %fs:0x038(%ebx)
6:  movl $0, %fs:0x030(%ebx)
    mov %ecx, %eax
    shr $8, %eax
    and $15, %eax
    movzwl sizes(,%eax,2), %eax
    movl %eax, %fs:0x038(%ebx)
    mov ${DESC:#x}, %eax
    testl $0xf000, defects
    jnz 4f
    add $2, %eax                     # a misaligned descriptor table
4:  movl %eax, %fs:0x080(%ebx)
    movl $0, %fs:0x084(%ebx)
    movl ${AVAIL:#x}, %fs:0x090(%ebx)
    movl $0, %fs:0x094(%ebx)
    mov ${USED:#x}, %eax
    testl $0xf0000, defects
    jnz 5f
    mov $0x80000000, %eax            # a used ring outside RAM
5:  movl %eax, %fs:0x0a0(%ebx)
    movl $0, %fs:0x0a4(%ebx)
    movl $1, %fs:0x044(%ebx)
    movl $15, %fs:0x070(%ebx)
    movw $0, availidx
    movw $0, {AVAIL + 2:#x}
    ret

{xorshift32('seed')}

pick_addr:                          # -> %eax (low), %edx (high)
    call rand
    mov %eax, %edx
    and $7, %edx
    shr $3, %eax
    cmp $5, %dl
    jb 6f
    je 7f
    cmp $6, %dl
    je 8f
    or $0x80000000, %eax             # not RAM (sometimes other MMIO)
    xor %edx, %edx
    ret
6:  and $0xfffff, %eax               # scratch
    add ${SCRATCH:#x}, %eax
    xor %edx, %edx
    ret
7:  and $0x3ff, %eax                 # straddling the end of RAM
    neg %eax
    add ${RAM:#x}, %eax
    xor %edx, %edx
    ret
8:  and $0x3ff, %eax                 # the device's own window
    add ${WINDOW:#x}, %eax
    xor %edx, %edx
    ret

pick_len:                           # -> %eax
    call rand
    mov %eax, %edx
    and $7, %edx
    shr $3, %eax
    movl lens(,%edx,4), %edx
    cmp $0xfffffffe, %edx
    jne 9f
    and $0xffff, %eax                # a random length below 64 KiB
    ret
9:  mov %edx, %eax
    ret

{flat_gdt()}
seed:   .long 0x2545f491
availidx: .word 0
types:  .byte 0, 1, 4, 8, 11, 13, 0, 99
defects: .long 0
        .p2align 1
sizes:  .word 8, 8, 8, 8, 16, 16, 4, 4, 2, 8, 8, 8, 3, 0, 512, 1
        .p2align 2
lens:   .long 16, 512, 1, 0xfffffffe, 0xffffffff, 0, 1024, 4096
"""

BACKENDS = ["kvm", "emu"]


def make_machine(backend: str) -> Machine:
    if backend == "kvm":
        oracles.require("kvm")  # decided by a raw probe, never by the code under test
    return Machine(memory_size=RAM, backend=backend)


@dataclass
class FuzzRun:
    backend: str
    result: RunResult
    errors: dict[str, int]  # the device's check counters: check name -> times it fired
    operations: dict[str, int]  # the guest's own count of each operation it made
    kicks: int
    requests: int  # requests the device took off the ring (every type)
    outside: list[tuple[int, int]]  # device accesses outside guest RAM: must stay empty
    seconds: float

    @property
    def ring_operations(self) -> int:
        return sum(self.operations[k] for k in RING_OPERATIONS)


def run_guest_fuzz(tmp_path, backend: str, operations: int, seed: int = 0) -> FuzzRun:
    image = tmp_path / "fuzz.img"
    with open(image, "wb") as f:
        f.truncate(128 * 512)
    m = make_machine(backend)
    attached = []
    outside: list[tuple[int, int]] = []
    view = m.memory.view

    def watched_view(gpa: int, length: int):
        if not m.memory.is_ram(gpa, length):
            outside.append((gpa, length))
        return view(gpa, length)

    try:
        m.pio.register(0xF4, 1, ExitDevice(m), "debug-exit")
        attached = attach_virtio(m, [DriveSpec(str(image), cache="unsafe")], rng=False)
        transport = attached[0].transport
        m.memory.write(0x7C00, assemble(GUEST, 0x7C00))
        m.memory.view = watched_view  # every device access to guest RAM goes through here
        t0 = time.monotonic()
        result = m.run(real_mode(0, 0x7C00).with_gprs(rbp=operations, rsi=seed), timeout=1800)
        seconds = time.monotonic() - t0
        m.memory.view = view
        counts = struct.unpack(f"<{len(OPERATIONS)}I",
                               m.memory.read(COUNTS, 4 * len(OPERATIONS)))
        return FuzzRun(backend, result, dict(transport.errors),
                       dict(zip(OPERATIONS, counts, strict=True)),
                       transport.notifications, sum(transport.device.requests.values()),
                       outside, seconds)
    finally:
        for a in attached:
            a.transport.close()
        m.close()


def check(run: FuzzRun, operations: int) -> None:
    assert run.result.status == (0x2A << 1) | 1, run.result.reason  # the guest's own exit
    assert run.outside == []
    assert sum(run.operations.values()) == operations
    assert run.kicks > 0
    for name in ("desc_not_ram", "desc_mmio", "notify_needs_reset", "indirect_bad_length",
                 "desc_index_out_of_range"):
        assert name in run.errors, run.errors


@pytest.mark.parametrize("backend", BACKENDS)
def test_guest_fuzz(tmp_path, backend):
    check(run_guest_fuzz(tmp_path, backend, 3000), 3000)


LONG_OPERATIONS = int(os.environ.get("X86VM_FUZZ_OPS", "150000"))
"""About 12/16 of them are descriptor/ring operations: 150,000 gives more than 100,000."""


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_guest_fuzz_long(tmp_path, backend):
    run = run_guest_fuzz(tmp_path, backend, LONG_OPERATIONS,
                         int(os.environ.get("X86VM_FUZZ_SEED", "0")))
    print(f"\n{backend}: {sum(run.operations.values())} operations "
          f"({run.ring_operations} on descriptors and rings) in {run.seconds:.1f} s; "
          f"{run.result.exits} exits, {run.kicks} kicks, {run.requests} requests; "
          f"{len(run.outside)} accesses outside RAM; {run.result.reason}")
    print("operations:", run.operations)
    print("checks fired:", dict(sorted(run.errors.items())))
    if report := os.environ.get("X86VM_FUZZ_REPORT"):
        with open(report, "a") as f:
            f.write(json.dumps({"backend": backend, "operations": run.operations,
                                "errors": dict(sorted(run.errors.items())),
                                "exits": run.result.exits, "kicks": run.kicks,
                                "requests": run.requests, "outside": len(run.outside),
                                "seconds": round(run.seconds, 1),
                                "reason": run.result.reason}) + "\n")
    check(run, LONG_OPERATIONS)
    if LONG_OPERATIONS >= 150_000:
        assert run.ring_operations >= 100_000
        assert set(run.errors) == ALL_CHECKS - NOT_REACHED, sorted(ALL_CHECKS - set(run.errors))


ALL_CHECKS = set(QUEUE_CHECKS) | set(TRANSPORT_CHECKS) | set(BLK_CHECKS)
NOT_REACHED = {"blk_write_readonly", "blk_host_io_error", "ring_access"}
"""What this guest cannot trip: its image is writable, the host healthy, and ``ring_access``
(the accessor's own refusal) is pre-empted by the checks before it."""
