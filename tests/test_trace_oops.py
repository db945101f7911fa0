"""Crash reports and the guest-virtual memory reader under them.

Oracles: KVM itself translates guest-virtual addresses (``KVM_TRANSLATE``, api.rst §4.38)
through the same page tables the walker reads, in every paging mode; objdump 2.40 gives the
text of the faulting instruction of the crash guest at its address.
"""

from __future__ import annotations

import ctypes
import fcntl
import random
import re
import subprocess
from pathlib import Path

import pytest

from guests.build import build, missing_tools
from oracle.objdump import objdump
from test_cli_run import x86vm
from test_kvm_support import requires_kvm, runs_guests
from x86vm.cpu.state import (
    CR0_PE,
    CR0_PG,
    CR4_LA57,
    CR4_PAE,
    CR4_PSE,
    EFER_LMA,
    EFER_LME,
    RegisterState,
    Segment,
)
from x86vm.machine.memory import GuestMemory
from x86vm.machine.runloop import RunResult
from x86vm.trace.oops import crash_report, is_crash, memory_reader
from x86vm.trace.paging import TranslationError, read_linear, translate, write_linear

MIB = 1 << 20
TABLES = 0x100000  # page-table frames are handed out from here
HIGH = 0xFFFFFFFF80000000


class KvmTranslation(ctypes.Structure):
    _fields_ = [("linear_address", ctypes.c_uint64), ("physical_address", ctypes.c_uint64),
                ("valid", ctypes.c_uint8), ("writeable", ctypes.c_uint8),
                ("usermode", ctypes.c_uint8), ("pad", ctypes.c_uint8 * 5)]


KVM_TRANSLATE = (3 << 30) | (ctypes.sizeof(KvmTranslation) << 16) | (0xAE << 8) | 0x85


class Tables:
    """Page tables built in guest RAM for one paging mode: ``map(linear, size, phys)``."""

    def __init__(self, memory: GuestMemory, mode: str) -> None:
        self.memory, self.mode = memory, mode
        self.next_frame = TABLES
        self.entry = 4 if mode == "32-bit" else 8
        self.root = self.frame()

    def frame(self) -> int:
        frame, self.next_frame = self.next_frame, self.next_frame + 4096
        return frame

    def levels(self) -> list[int]:
        return {"32-bit": [22, 12], "PAE": [30, 21, 12], "4-level": [39, 30, 21, 12],
                "5-level": [48, 39, 30, 21, 12]}[self.mode]

    def map(self, linear: int, size: int, phys: int) -> None:
        table = self.root
        for shift in self.levels():
            bits = 10 if self.mode == "32-bit" else (2 if self.mode == "PAE" and shift == 30
                                                     else 9)
            slot = table + ((linear >> shift) & ((1 << bits) - 1)) * self.entry
            if 1 << shift == size:
                flags = 0x3 | (0x80 if shift > 12 else 0)
                self.memory.write_int(slot, self.entry, phys | flags)
                return
            entry = self.memory.read_int(slot, self.entry)
            if not entry & 1:
                entry = self.frame() | (0x1 if self.mode == "PAE" and shift == 30 else 0x3)
                self.memory.write_int(slot, self.entry, entry)
            table = entry & 0x000FFFFFFFFFF000
        raise AssertionError(f"no level maps {size:#x} pages")

    def state(self) -> RegisterState:
        code = Segment(selector=8, limit=0xFFFFFFFF, type=0xB, db=1, g=1)
        data = Segment(selector=16, limit=0xFFFFFFFF, type=0x3, db=1, g=1)
        cr0, cr4, efer = CR0_PE | CR0_PG, 0, 0
        if self.mode == "32-bit":
            cr4 = CR4_PSE
        else:
            cr4 = CR4_PAE
        if self.mode in ("4-level", "5-level"):
            efer = EFER_LME | EFER_LMA
            cr4 |= CR4_LA57 if self.mode == "5-level" else 0
            code = Segment(selector=8, limit=0xFFFFFFFF, type=0xB, l=1, g=1)
        return RegisterState(rip=0, cs=code, ds=data, es=data, fs=data, gs=data, ss=data,
                             cr0=cr0, cr3=self.root, cr4=cr4, efer=efer)


SIZES = {"32-bit": (4096, 4 * MIB), "PAE": (4096, 2 * MIB), "4-level": (4096, 2 * MIB, 1 << 30),
         "5-level": (4096, 2 * MIB, 1 << 30)}
UPPER_HALF = {"4-level": 0xFFFF800000000000, "5-level": 0xFF00000000000000}
LOWER_HALF = {"4-level": 1 << 47, "5-level": 1 << 56}


def random_mappings(rng: random.Random, mode: str, ram: int) -> list[tuple[int, int, int]]:
    """Mappings that never share a largest-page region with a mapping of another size (so
    the tables hold exactly these translations)."""
    space = LOWER_HALF.get(mode, 1 << 32)  # the canonical lower half
    region = max(SIZES[mode])
    sizes_by_region: dict[int, int] = {}
    out = []
    while len(out) < 40:
        size = rng.choice(SIZES[mode])
        linear = rng.randrange(space // size) * size
        if mode in UPPER_HALF and rng.random() < 0.5:
            linear |= UPPER_HALF[mode]  # the canonical upper half
        key = linear // region
        if sizes_by_region.setdefault(key, size) != size or size == region and any(
                m[0] == linear for m in out):
            continue
        if any(m[0] == linear for m in out):
            continue
        phys = rng.randrange(max(ram, size * 4) // size) * size
        out.append((linear, size, phys))
    return out


def in_gib_page(mappings, address: int) -> bool:
    return any(size == 1 << 30 and linear <= address < linear + size
               for linear, size, _ in mappings)


def constructed(mappings, address: int) -> int | None:
    for linear, size, phys in mappings:
        if linear <= address < linear + size:
            return phys + address - linear
    return None


def probes(rng: random.Random, mappings, mode: str) -> list[int]:
    addresses = []
    for linear, size, _ in mappings:
        addresses += [linear, linear + size - 1, linear + rng.randrange(size)]
    top = 1 << 64 if mode in UPPER_HALF else 1 << 32
    addresses += [rng.randrange(top) for _ in range(60)]
    if mode in LOWER_HALF:   # the first non-canonical addresses above and below
        addresses += [LOWER_HALF[mode], UPPER_HALF[mode] - 1]
    if mode == "5-level":   # canonical at 57 bits only
        addresses += [1 << 47, 0xFFFF7FFFFFFFFFFF]
    return addresses


@runs_guests
@pytest.mark.parametrize("mode", ["32-bit", "PAE", "4-level"])
def test_walker_agrees_with_kvm_translate(mode: str) -> None:
    """KVM_TRANSLATE where this host's KVM keeps the paging mode (its software KVM drops
    CR0.PG outside long mode and does not walk 1 GiB pages), and always the translations the
    tables were built with."""
    from x86vm.machine.kvm import KvmBackend

    memory = GuestMemory()
    memory.add_ram(0, 64 * MIB)
    backend = KvmBackend(memory)
    try:
        rng = random.Random(mode)
        tables = Tables(memory, mode)
        mappings = random_mappings(rng, mode, 64 * MIB)
        for linear, size, phys in mappings:
            tables.map(linear, size, phys)
        state = tables.state()
        backend.set_state(state)
        kvm_pages = bool(backend.vcpu.get_sregs().cr0 & CR0_PG)
        if mode == "4-level":
            assert kvm_pages
        checked = mapped = 0
        for address in probes(rng, mappings, mode):
            try:
                ours = translate(memory, state, address)
            except TranslationError:
                ours = None
            assert ours == constructed(mappings, address), f"{mode} {address:#x}"
            if kvm_pages and not in_gib_page(mappings, address):
                request = KvmTranslation(linear_address=address)
                fcntl.ioctl(backend.vcpu.fd, KVM_TRANSLATE, request)
                theirs = request.physical_address if request.valid else None
                assert ours == theirs, f"{mode} {address:#x}: ours {ours}, KVM {theirs}"
            checked += 1
            mapped += ours is not None
        assert mapped > 60 and checked - mapped > 30
    finally:
        backend.close()
        memory.close()


def test_reads_cross_pages_and_stop_at_the_first_hole() -> None:
    memory = GuestMemory()
    memory.add_ram(0, 16 * MIB)
    try:
        tables = Tables(memory, "4-level")
        tables.map(HIGH, 4096, 0x400000)
        tables.map(HIGH + 4096, 4096, 0x200000)  # the next page is elsewhere physically
        state = tables.state()
        memory.write(0x400FFE, b"ab")
        memory.write(0x200000, b"cd")
        assert read_linear(memory, state, HIGH + 0xFFE, 4) == b"abcd"
        write_linear(memory, state, HIGH + 0xFFF, b"XY")
        assert memory.read(0x400FFF, 1) == b"X" and memory.read(0x200000, 1) == b"Y"
        with pytest.raises(TranslationError) as caught:
            read_linear(memory, state, HIGH + 0x1FFE, 4)
        assert caught.value.partial == memory.read(0x200FFE, 2)
        with pytest.raises(TranslationError):  # nothing written when a page is missing
            write_linear(memory, state, HIGH + 0x1FFF, b"ZZ")
        assert memory.read(0x200FFF, 1) == b"\0"
        tables.map(0x1000, 4096, 0x7FFF000 + (1 << 40))  # a PTE pointing past RAM
        with pytest.raises(TranslationError, match="not RAM"):
            read_linear(memory, state, 0x1000, 1)
    finally:
        memory.close()


def test_a_32bit_report_marks_the_instruction_objdump_prints() -> None:
    memory = GuestMemory()
    memory.add_ram(0, 8 * MIB)
    try:
        tables = Tables(memory, "32-bit")
        tables.map(0xC0000000, 4 * MIB, 0x400000)
        code = bytes.fromhex("5589e583ec08c745fc00000000" "8b4508" "0f0b" "c9c3") + b"\x90" * 40
        memory.write(0x400100, code)
        fault = 0xC0000100 + 16
        state = tables.state()
        state.rip = fault
        state.gprs = {"rax": 0x1234, "rsp": 0xC0000800, "rbp": 0xC0000808}
        memory.write(0x400800, (0xDEADBEEF).to_bytes(4, "little") * 3)
        text = crash_report(state, memory_reader(memory, state), "guest shut down (test)")
        assert "EIP: 0008:0xc0000110" in text
        code_line = next(ln for ln in text.splitlines() if ln.startswith("Code: "))
        assert code_line == "Code: " + "00 " * 26 + ("55 89 e5 83 ec 08 c7 45 fc 00 00 00 00 8b "
                                                   "45 08 <0f> 0b c9 c3" + " 90" * 18)
        assert "EAX: 00001234" in text and " deadbeef deadbeef deadbeef" in text
        expected = objdump(memory.read(0x400110, 4), 32, address=fault)[0][2]
        marked = [ln for ln in text.splitlines() if "<-- trapping instruction" in ln]
        assert marked == [f"c0000110:*\t0f 0b                \t{expected}\t\t<-- trapping "
                          "instruction"]
        after = text.split("Code starting with the faulting instruction\n", 1)[1]
        assert after.splitlines()[1] == f"c0000110:\t0f 0b                \t{expected}"
    finally:
        memory.close()


def test_unreadable_code_and_stack_are_said_so() -> None:
    memory = GuestMemory()
    memory.add_ram(0, 4 * MIB)
    try:
        tables = Tables(memory, "PAE")
        state = tables.state()
        state.rip, state.gprs = 0xDEAD0000, {"rsp": 0xBEEF0000}
        text = crash_report(state, memory_reader(memory, state), "x")
        assert "Code: Unable to access opcode bytes at 0xdead0000." in text
        assert "Stack: unreadable at 0xbeef0000" in text
        assert "All code" not in text
    finally:
        memory.close()


def test_which_runs_are_crashes() -> None:
    assert is_crash(RunResult(0, "guest shut down (triple fault)", 3))
    assert is_crash(RunResult(126, "KVM internal error: emulation failure", 3))
    assert not is_crash(RunResult(0, "reset: i8042", 3))
    assert not is_crash(RunResult(3, "debug-exit", 3))
    assert not is_crash(RunResult(124, "timeout after 1 s", 3))


@pytest.fixture(scope="module")
def crash_guest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if missing_tools():
        pytest.skip("cannot build the crash guest: gcc/ld/objcopy missing")
    return build("crash64.elf", tmp_path_factory.mktemp("guests"))


def _symbol(elf: Path, name: str) -> int:
    out = subprocess.run(["nm", str(elf)], capture_output=True, text=True, check=True).stdout
    return int(re.search(rf"^([0-9a-f]+) \w {name}$", out, re.M).group(1), 16)


@pytest.mark.parametrize("backend", [pytest.param("kvm", marks=requires_kvm()), "emu"])
def test_x86vm_run_reports_a_triple_fault_at_the_faulting_instruction(crash_guest,
                                                                        backend) -> None:
    done = x86vm("run", crash_guest, "--serial", "none", "--timeout", "30",
                 "--backend", backend)
    assert done.returncode == 0, done.stderr
    report = done.stderr
    assert report.startswith("x86vm: guest crashed: guest shut down (triple fault)\n"), report
    crash_here = _symbol(crash_guest, "crash_here")  # linked at its physical address
    rip = HIGH + crash_here
    assert f"RIP: 0008:0x{rip:016x}\n" in report
    assert "RAX: 4141414141414141" in report and "RCX: 0000000000c0ffee" in report
    assert "Stack:\n 0000000000002222 0000000000001111 " in report
    assert "CPU mode: long64 (64-bit code), paging: 4-level" in report
    # objdump's own text of the linked guest at crash_here (linked at its physical address;
    # the report shows the high alias): the marked line and the .text after it
    listing = subprocess.run(
        ["objdump", "-d", "-m", "i386:x86-64", f"--start-address={crash_here:#x}",
         str(crash_guest)], capture_output=True, text=True, check=True).stdout
    elf_lines = [(int(m.group(1), 16), m.group(2)) for m in
                 re.finditer(r"^ *([0-9a-f]+):(\t.*)$", listing, re.M)]
    assert elf_lines[0][0] == crash_here and elf_lines[0][1].endswith("\tud2"), listing
    marked = [ln for ln in report.splitlines() if "<-- trapping instruction" in ln]
    assert marked == [f"{rip:016x}:*{elf_lines[0][1]}\t\t<-- trapping instruction"]
    after = report.split("Code starting with the faulting instruction\n", 1)[1].splitlines()
    assert after[1:1 + len(elf_lines)] == [f"{HIGH + a:016x}:{rest}" for a, rest in elf_lines]
    # the whole second listing is objdump's of the Code: bytes from the marked one on
    code = bytes.fromhex(re.search(r"^Code: .*<(.*)$", report, re.M).group(1)
                         .replace(">", ""))
    raw = Path(str(crash_guest) + f".{backend}.code")
    raw.write_bytes(code)
    dump = subprocess.run(["objdump", "-D", "-b", "binary", "-m", "i386:x86-64",
                           f"--adjust-vma={rip:#x}", str(raw)],
                          capture_output=True, text=True, check=True).stdout
    expected = dump.split("<.data>:\n", 1)[1].rstrip("\n").splitlines()
    assert [ln.strip() for ln in after[1:]] == [ln.strip() for ln in expected], dump
