"""QEMU 7.2's virtio-mmio + virtio-blk as the oracle, register by register.

One probe firmware (64 KiB, run from the reset vector: QEMU ``-M microvm -bios``, x86vm on
KVM with the image at 0xf0000) finds the virtio-blk window — QEMU's transports at
0xfeb00000 + 0x200·i, x86vm's at 0xd0000000 — and walks it through reset, feature
negotiation (refused and accepted), queue set-up, one IN request (polled: QEMU completes it
asynchronously), the interrupt status and its acknowledgement, the configuration space and a
final reset, writing every value it reads to the debug console (port 0xe9). The two byte
streams must match, except where x86vm differs on purpose (masked per read, and listed in
docs/virtio.md): the vendor ID, the feature bits each offers, QueueNumMax (QEMU's
virtio-mmio reports 1024), and FEATURES_OK after the driver accepted a
feature the device did not offer — x86vm leaves it clear, as §2.2.2 says a device that does
not accept the features must; QEMU drops the bit and sets FEATURES_OK. QEMU's microvm
transports are legacy (version 1) unless ``virtio-mmio.force-legacy=false``.

A second probe breaks the rings in the ways a hostile driver would (a loop, a ``next`` or
head out of range, the available index jumping, bad indirect tables, a buffer outside RAM, a
kick before DRIVER_OK) and compares what a driver can see afterwards.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from support import oracles
from support.backends import BACKENDS
from support.virtio_guest import find_blk_window, flat_gdt, unreal_mode, window_table
from test_kvm_support import ExitDevice, assemble
from x86vm.devices.virtio import DriveSpec, attach_virtio
from x86vm.machine.boot import load_image
from x86vm.machine.vm import Machine

QEMU = shutil.which("qemu-system-x86_64")
WINDOWS = [0xFEB0_0000 + 0x200 * i for i in range(24)] + [0xD000_0000]
DESC, AVAIL, USED, HEADER, DATA, STATUS = 0x1000, 0x2000, 0x3000, 0x4000, 0x5000, 0x6000
SECTOR0 = bytes(range(0x40, 0x50)) * 32

# (kind, ...) operations; each "r" emits 4 bytes, "m" 1..4 bytes; masks keep the bits both
# sides must agree on.
FULL = 0xFFFFFFFF


def r(off: int, mask: int = FULL, why: str = "") -> tuple:
    return ("r", off, mask)


def w(off: int, value: int) -> tuple:
    return ("w", off, value)


def m(addr: int, size: int, mask: int = FULL) -> tuple:
    return ("m", addr, size, mask)


def ram(addr: int, size: int, value: int) -> tuple:
    return ("ram", addr, size, value)


PROBE = [
    r(0x000), r(0x004), r(0x008),
    r(0x00C, 0, "vendor: QEMU 0x554d4551, x86vm 'x86v'"),
    w(0x070, 0), r(0x070), w(0x070, 1), r(0x070), w(0x070, 3), r(0x070),
    w(0x014, 1), r(0x010, 0x1, "VERSION_1; other high bits differ by design"),
    w(0x014, 0), r(0x010, 1 << 9 | 1 << 2 | 1 << 6, "FLUSH, SEG_MAX, BLK_SIZE offered by both"),
    # FEATURES_OK with a feature the device does not offer (bit 31, reserved)
    w(0x024, 1), w(0x020, 1), w(0x024, 0), w(0x020, 1 << 31),
    w(0x070, 11), r(0x070, FULL & ~8, "x86vm refuses FEATURES_OK (§2.2.2), QEMU masks"),
    # reset, then the real negotiation
    w(0x070, 0), r(0x070), w(0x070, 1), w(0x070, 3),
    w(0x024, 1), w(0x020, 1), w(0x024, 0), w(0x020, 1 << 9),
    w(0x070, 11), r(0x070),
    w(0x030, 0), r(0x044), r(0x034, 0, "QueueNumMax: QEMU 1024, x86vm 256"),
    w(0x030, 1), r(0x034), r(0x044),           # no second queue
    w(0x030, 0), w(0x038, 8),
    w(0x080, DESC), w(0x084, 0), w(0x090, AVAIL), w(0x094, 0), w(0x0A0, USED), w(0x0A4, 0),
    w(0x044, 1), r(0x044),
    w(0x070, 15), r(0x070), r(0x060),
    # IN, sector 0: header -> data (512, W) -> status (W)
    ram(HEADER, 4, 0), ram(HEADER + 4, 4, 0), ram(HEADER + 8, 4, 0), ram(HEADER + 12, 4, 0),
    ram(DESC, 4, HEADER), ram(DESC + 8, 4, 16), ram(DESC + 12, 2, 1), ram(DESC + 14, 2, 1),
    ram(DESC + 16, 4, DATA), ram(DESC + 24, 4, 512), ram(DESC + 28, 2, 3),
    ram(DESC + 30, 2, 2),
    ram(DESC + 32, 4, STATUS), ram(DESC + 40, 4, 1), ram(DESC + 44, 2, 2),
    ram(STATUS, 1, 0xFF),
    ram(AVAIL + 4, 2, 0), ram(AVAIL + 2, 2, 1),
    w(0x050, 0), ("wait_used", 1),
    m(USED + 2, 2), m(USED + 4, 4), m(USED + 8, 4), m(STATUS, 1), m(DATA, 4), m(DATA + 508, 4),
    r(0x060), w(0x064, 1), r(0x060),
    r(0x100), r(0x104),                         # capacity
    r(0x114),                                   # blk_size
    r(0x0FC),                                   # ConfigGeneration
    w(0x070, 0), r(0x070), r(0x044), r(0x060),
]


def init(queue_size: int = 8, features_low: int = 1 << 28) -> list[tuple]:
    """Reset and initialize (INDIRECT_DESC by default), queue 0 at DESC/AVAIL/USED, zeroed."""
    ops = [w(0x070, 0), w(0x070, 1), w(0x070, 3), w(0x024, 1), w(0x020, 1), w(0x024, 0),
           w(0x020, features_low), w(0x070, 11), w(0x030, 0), w(0x038, queue_size),
           w(0x080, DESC), w(0x084, 0), w(0x090, AVAIL), w(0x094, 0), w(0x0A0, USED),
           w(0x0A4, 0)]
    ops += [ram(a, 4, 0) for a in range(DESC, DESC + 16 * 8, 4)]
    ops += [ram(AVAIL, 4, 0), ram(USED, 4, 0), ram(STATUS, 1, 0xFF)]
    return ops + [w(0x044, 1), w(0x070, 15)]


def request(descs: list[tuple[int, int, int, int]], head: int = 0, idx: int = 1,
            wait: bool = True) -> list[tuple]:
    """IN sector 0 through raw descriptors (addr, len, flags, next), then kick and wait for
    the outcome (a used buffer or DEVICE_NEEDS_RESET; each poll is an MMIO exit on x86vm,
    where the outcome is already there at the first one)."""
    ops = [ram(HEADER, 4, 0), ram(HEADER + 8, 4, 0)]
    for i, (addr, length, flags, nxt) in enumerate(descs):
        ops += [ram(DESC + 16 * i, 4, addr & FULL), ram(DESC + 16 * i + 4, 4, addr >> 32),
                ram(DESC + 16 * i + 8, 4, length), ram(DESC + 16 * i + 12, 2, flags),
                ram(DESC + 16 * i + 14, 2, nxt)]
    return ops + [ram(AVAIL + 4, 2, head), ram(AVAIL + 2, 2, idx), w(0x050, 0)] + (
        [("spin",)] if wait else [])


def outcome(kind: str = "same") -> list[tuple]:
    """What the driver can see afterwards: Status, InterruptStatus, used idx, status byte.
    ``error``: both set DEVICE_NEEDS_RESET and use nothing, but QEMU's InterruptStatus then
    also has bit 0 (observed: 3; §4.2.2 says bits of events that did not happen are 0) and the
    status byte of a request never used is not the driver's to read. ``differs``: a
    documented difference, not compared."""
    if kind == "differs":
        return [r(0x070, 0), r(0x060, 0), m(USED + 2, 2, 0), m(STATUS, 1, 0)]
    if kind == "error":
        return [r(0x070), r(0x060, FULL & ~1), m(USED + 2, 2), m(STATUS, 1, 0)]
    return [r(0x070), r(0x060), m(USED + 2, 2), m(STATUS, 1)]


GOOD = [(HEADER, 16, 1, 1), (DATA, 512, 3, 2), (STATUS, 1, 2, 0)]
ERROR_PROBE = (
    # a buffer outside RAM: QEMU completes the request OK (the data goes nowhere); x86vm sets
    # DEVICE_NEEDS_RESET (desc_not_ram)
    init() + request([(HEADER, 16, 1, 1), (0x7000_0000_0000, 512, 3, 2), (STATUS, 1, 2, 0)])
    + outcome("differs")
    # a loop
    + init() + request([(HEADER, 16, 1, 1), (DATA, 512, 3, 0)]) + outcome("error")
    + [w(0x050, 0), ("spin",)] + outcome("error")             # a kick while broken
    # next out of range
    + init() + request([(HEADER, 16, 1, 1), (DATA, 512, 3, 9)]) + outcome("error")
    # a head out of range
    + init() + request(GOOD, head=100) + outcome("error")
    # the available index jumps past the queue size
    + init() + request(GOOD, idx=20) + outcome("error")
    # an indirect table whose length is not a multiple of 16
    + init() + request([(DATA, 24, 4, 0)]) + outcome("error")
    # INDIRECT and NEXT together
    + init() + request([(DATA, 32, 5, 1), (STATUS, 1, 2, 0)]) + outcome("error")
    # a kick before DRIVER_OK: QEMU processes it; x86vm ignores it (§3.1.1: the device MUST
    # NOT consume buffers before DRIVER_OK)
    + init()[:-1] + request(GOOD, wait=False) + outcome("differs")
    # after all that, a good request still works after a reset
    + init() + request(GOOD) + outcome() + [m(DATA, 4)]
)


def probe_source(ops: list[tuple]) -> str:
    lines = []
    for op in ops:
        kind = op[0]
        if kind == "r":
            lines += [f"movl %fs:{op[1]:#x}(%ebx), %eax", "call emit4"]
        elif kind == "w":
            lines += [f"movl ${op[2]:#x}, %fs:{op[1]:#x}(%ebx)"]
        elif kind == "ram":
            suffix = {1: "b", 2: "w", 4: "l"}[op[2]]
            lines += [f"mov{suffix} ${op[3]:#x}, %fs:{op[1]:#x}"]
        elif kind == "m":
            lines += [f"movl %fs:{op[1]:#x}, %eax", f"mov ${op[2]}, %cx", "call emitn"]
        elif kind == "spin":  # QEMU completes asynchronously: wait for a used buffer or
            lines += ["mov $0x400000, %ecx", "1:",  # DEVICE_NEEDS_RESET, a bounded time
                      f"cmpw $0, %fs:{USED + 2:#x}", "jne 2f",
                      "testl $0x40, %fs:0x070(%ebx)", "jnz 2f",
                      "dec %ecx", "jnz 1b", "2:"]
        elif kind == "wait_used":
            lines += ["mov $0x2000000, %ecx", "1:", f"cmpw ${op[1]}, %fs:{USED + 2:#x}",
                      "je 2f", "dec %ecx", "jnz 1b", "2:"]
    body = "\n    ".join(lines)
    return f"""
start:
    cli
    xor %ax, %ax
    mov %ax, %ss
    mov $0x7000, %sp
{unreal_mode('fs')}
2:
{find_blk_window(WINDOWS)}
found:
    {body}
    mov $1, %al
    out %al, $0xf4

emit4:                               # %eax -> 4 bytes, little-endian
    mov $4, %cx
emitn:
    out %al, $0xe9
    shr $8, %eax
    dec %cx
    jnz emitn
    ret

{flat_gdt(0xf0000)}
{window_table(WINDOWS)}
    .org 0xfff0
    ljmp $0xf000, $start
    .org 0x10000
"""


def masks(ops: list[tuple]) -> list[int]:
    """Per output byte: the bits both sides must agree on."""
    out = []
    for op in ops:
        if op[0] == "r":
            out += [(op[2] >> (8 * i)) & 0xFF for i in range(4)]
        elif op[0] == "m":
            out += [(op[3] >> (8 * i)) & 0xFF for i in range(op[2])]
    return out


def masked(data: bytes, ops: list[tuple]) -> bytes:
    mask = masks(ops)
    assert len(data) == len(mask), (len(data), len(mask))
    return bytes(b & k for b, k in zip(data, mask, strict=True))


class Debugcon:
    def __init__(self) -> None:
        self.data = bytearray()

    def read(self, offset: int, size: int) -> int:
        return 0xE9

    def write(self, offset: int, size: int, value: int) -> None:
        self.data.append(value & 0xFF)


def disk(tmp_path: Path) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    image = tmp_path / "disk.img"
    with open(image, "wb") as f:
        f.truncate(1 << 20)
        f.write(SECTOR0)
    return image


@pytest.fixture(scope="module")
def firmware() -> bytes:
    return assemble(probe_source(PROBE), 0)


def run_qemu(firmware: bytes, tmp_path: Path) -> bytes:
    oracles.require("qemu")
    tmp_path.mkdir(parents=True, exist_ok=True)
    fw, out = tmp_path / "probe.bin", tmp_path / "debugcon.out"
    fw.write_bytes(firmware)
    done = subprocess.run(
        [QEMU, "-M", "microvm,accel=tcg", "-m", "128M", "-bios", str(fw), "-display", "none",
         "-nodefaults", "-no-reboot", "-chardev", f"file,id=dbg,path={out}",
         "-device", "isa-debugcon,iobase=0xe9,chardev=dbg",
         "-device", "isa-debug-exit,iobase=0xf4,iosize=1",
         "-drive", f"if=none,id=d0,file={disk(tmp_path)},format=raw",
         "-global", "virtio-mmio.force-legacy=false",
         "-device", "virtio-blk-device,drive=d0"],
        capture_output=True, timeout=120)
    assert done.returncode == 3, (done.returncode, done.stderr.decode())
    return out.read_bytes()


def run_x86vm(firmware: bytes, tmp_path: Path, backend: str = "kvm") -> bytes:
    machine = Machine(memory_size=128 << 20, backend=backend)
    attached = []
    try:
        console = Debugcon()
        machine.pio.register(0xE9, 1, console, "debugcon")
        machine.pio.register(0xF4, 1, ExitDevice(machine), "debug-exit")
        attached = attach_virtio(machine, [DriveSpec(str(disk(tmp_path)))], rng=False)
        entry = load_image(machine.memory, firmware, "flat", flat_load_addr=0xF0000,
                           flat_cs_ip=(0xF000, 0xFFF0))
        result = machine.run(entry, timeout=120)
        assert result.status == 3, result.reason
        return bytes(console.data), dict(attached[0].transport.errors)
    finally:
        for a in attached:
            a.transport.close()
        machine.close()


@pytest.mark.parametrize("backend", BACKENDS)  # the guest polls: needs no interrupt controller
def test_virtio_blk_registers_match_qemu(firmware, tmp_path, backend):
    qemu = run_qemu(firmware, tmp_path / "q")
    ours, errors = run_x86vm(firmware, tmp_path / "x", backend)
    assert masked(ours, PROBE) == masked(qemu, PROBE), describe(ours, qemu)
    assert errors == {"features_not_offered": 1}


def describe(ours: bytes, qemu: bytes, probe: list[tuple] = PROBE) -> str:
    """Which probe reads differ (for the failure message)."""
    lines, pos = [], 0
    for op in probe:
        n = 4 if op[0] == "r" else op[2] if op[0] == "m" else 0
        if n:
            a, b = ours[pos : pos + n], qemu[pos : pos + n]
            mask = masks([op])
            if bytes(x & k for x, k in zip(a, mask, strict=True)) != bytes(
                    x & k for x, k in zip(b, mask, strict=True)):
                lines.append(f"{op}: x86vm {a.hex()} qemu {b.hex()}")
            pos += n
    return "\n".join(lines)


@pytest.mark.parametrize("backend", BACKENDS)
def test_virtio_blk_driver_errors_match_qemu(tmp_path, backend):
    """Broken chains and rings: both devices set DEVICE_NEEDS_RESET, use nothing, interrupt
    for a configuration change, ignore kicks until reset, and work again after one."""
    firmware = assemble(probe_source(ERROR_PROBE), 0)
    qemu = run_qemu(firmware, tmp_path / "q")
    ours, errors = run_x86vm(firmware, tmp_path / "x", backend)
    assert masked(ours, ERROR_PROBE) == masked(qemu, ERROR_PROBE), \
        describe(ours, qemu, ERROR_PROBE)
    assert errors == {"desc_not_ram": 1, "desc_loop": 1, "notify_needs_reset": 1,
                      "desc_index_out_of_range": 1, "head_out_of_range": 1,
                      "avail_idx_jump": 1, "indirect_bad_length": 1, "indirect_with_next": 1,
                      "notify_before_driver_ok": 1}


@pytest.mark.kvm
def test_queue_size_not_a_power_of_2_differs_from_qemu_on_purpose(tmp_path):
    """QEMU's split queue accepts QueueSize 3 (QueueReady reads 1); x86vm refuses it (§2.7:
    a split queue's size is a power of 2): QueueReady stays 0, DEVICE_NEEDS_RESET."""
    probe = init(queue_size=3) + [r(0x044), r(0x070)]
    firmware = assemble(probe_source(probe), 0)
    assert run_qemu(firmware, tmp_path / "q") == bytes.fromhex("010000000f000000")
    ours, errors = run_x86vm(firmware, tmp_path / "x")
    assert ours == bytes.fromhex("000000004f000000")
    assert errors == {"queue_size_not_power_of_2": 1}
