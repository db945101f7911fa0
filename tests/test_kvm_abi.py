"""The ctypes mirror of linux/kvm.h against the C compiler: sizes, offsets, ioctl numbers.

The oracle is the installed kernel headers compiled by gcc: a generated C program prints
``sizeof``/``offsetof`` for every structure and field of :mod:`x86vm.machine.kvm.abi` and the
value of every ioctl macro, and the test compares them with what ctypes computes.
"""

import ctypes
import subprocess

import pytest

from support.oracles import require
from x86vm.machine.kvm import abi

STRUCTS = {  # ctypes class -> C type name
    abi.KvmRegs: "struct kvm_regs",
    abi.KvmSegment: "struct kvm_segment",
    abi.KvmDtable: "struct kvm_dtable",
    abi.KvmSregs: "struct kvm_sregs",
    abi.KvmMsrEntry: "struct kvm_msr_entry",
    abi.KvmMsrs: "struct kvm_msrs",
    abi.KvmCpuidEntry2: "struct kvm_cpuid_entry2",
    abi.KvmCpuid2: "struct kvm_cpuid2",
    abi.KvmUserspaceMemoryRegion: "struct kvm_userspace_memory_region",
    abi.KvmIrqLevel: "struct kvm_irq_level",
    abi.KvmPitConfig: "struct kvm_pit_config",
    abi.KvmCoalescedMmioZone: "struct kvm_coalesced_mmio_zone",
    abi.KvmCoalescedMmio: "struct kvm_coalesced_mmio",
    abi.KvmCoalescedMmioRing: "struct kvm_coalesced_mmio_ring",
    abi.KvmMpState: "struct kvm_mp_state",
    abi.KvmVcpuEvents: "struct kvm_vcpu_events",
    abi.KvmDebugregs: "struct kvm_debugregs",
    abi.KvmGuestDebugArch: "struct kvm_guest_debug_arch",
    abi.KvmGuestDebug: "struct kvm_guest_debug",
    abi.KvmDebugExitArch: "struct kvm_debug_exit_arch",
    abi.KvmRun: "struct kvm_run",
}
# union members of kvm_run: ctypes member -> C member path
RUN_MEMBERS = {"io": "io", "debug": "debug.arch", "mmio": "mmio", "hypercall": "hypercall",
               "fail_entry": "fail_entry", "internal": "internal",
               "system_event": "system_event", "ex": "ex"}

IOCTLS = [name for name in dir(abi) if name.startswith("KVM_") and isinstance(
    getattr(abi, name), int) and (name.startswith(("KVM_GET_", "KVM_SET_", "KVM_CREATE_",
                                                   "KVM_CHECK_", "KVM_RUN", "KVM_IRQ_LINE",
                                                   "KVM_REGISTER_", "KVM_UNREGISTER_")))]
CONSTANTS = ["KVM_API_VERSION", "KVM_EXIT_IO", "KVM_EXIT_MMIO", "KVM_EXIT_HLT",
             "KVM_EXIT_SHUTDOWN", "KVM_EXIT_FAIL_ENTRY", "KVM_EXIT_INTERNAL_ERROR",
             "KVM_EXIT_HYPERCALL", "KVM_EXIT_SYSTEM_EVENT", "KVM_EXIT_INTR", "KVM_EXIT_DEBUG",
             "KVM_CAP_COALESCED_MMIO", "KVM_CAP_IMMEDIATE_EXIT", "KVM_CAP_PIT2",
             "KVM_COALESCED_MMIO_PAGE_OFFSET", "KVM_PIO_PAGE_OFFSET", "KVM_COALESCED_MMIO_MAX",
             "KVM_PIT_SPEAKER_DUMMY", "KVM_MP_STATE_HALTED", "KVM_NR_INTERRUPTS",
             "KVM_INTERNAL_ERROR_EMULATION", "KVM_VCPUEVENT_VALID_NMI_PENDING",
             "KVM_VCPUEVENT_VALID_SIPI_VECTOR", "KVM_VCPUEVENT_VALID_SHADOW",
             "KVM_X86_SHADOW_INT_MOV_SS", "KVM_X86_SHADOW_INT_STI", "KVM_GUESTDBG_ENABLE",
             "KVM_GUESTDBG_SINGLESTEP", "KVM_GUESTDBG_USE_SW_BP", "KVM_GUESTDBG_USE_HW_BP",
             "KVM_GUESTDBG_INJECT_DB", "KVM_GUESTDBG_INJECT_BP",
             "KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES"]


def _layout_lines():
    """(python key, C expression) pairs for every size, offset and constant checked."""
    for cls, cname in STRUCTS.items():
        yield f"sizeof {cls.__name__}", f"sizeof({cname})", ctypes.sizeof(cls)
        for field in cls._fields_:
            name = field[0]
            if cls is abi.KvmRun and name in ("exit", "s"):
                continue  # anonymous unions in C; members checked below
            yield (f"offsetof {cls.__name__}.{name}", f"offsetof({cname}, {name})",
                   getattr(cls, name).offset)
    for member, c_member in RUN_MEMBERS.items():
        mtype = dict(abi.KvmRunExit._fields_)[member]
        base = abi.RUN_EXIT + getattr(abi.KvmRunExit, member).offset
        yield (f"offsetof kvm_run.{member}", f"offsetof(struct kvm_run, {c_member})", base)
        if isinstance(mtype, type) and issubclass(mtype, ctypes.Structure):
            for field in mtype._fields_:
                yield (f"offsetof kvm_run.{member}.{field[0]}",
                       f"offsetof(struct kvm_run, {c_member}.{field[0]})",
                       base + getattr(mtype, field[0]).offset)
    yield "offsetof kvm_run.s", "offsetof(struct kvm_run, s)", abi.KvmRun.s.offset
    for name in IOCTLS + CONSTANTS:
        yield name, f"(unsigned long long)({name})", getattr(abi, name)


@pytest.fixture(scope="module")
def c_values(tmp_path_factory):
    require("gcc")
    lines = list(_layout_lines())
    src = ["#include <stddef.h>", "#include <stdio.h>", "#define PAGE_SIZE 4096",
           "#include <linux/kvm.h>",
           "int main(void) {"]
    for key, expr, _ in lines:
        src.append(f'  printf("%s=%llu\\n", "{key}", (unsigned long long)({expr}));')
    src.append("  return 0;\n}")
    d = tmp_path_factory.mktemp("kvmabi")
    (d / "layout.c").write_text("\n".join(src))
    subprocess.run(["gcc", "-o", str(d / "layout"), str(d / "layout.c")], check=True,
                   capture_output=True)
    out = subprocess.run([str(d / "layout")], check=True, capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines()), lines


def test_layout_matches_c_headers(c_values):
    values, lines = c_values
    mismatches = [(key, int(values[key]), py) for key, _, py in lines if int(values[key]) != py]
    assert mismatches == []
    assert len(lines) > 150  # every structure field, union member and ioctl was compared


def test_flexible_arrays_follow_the_header():
    cpuid = abi.cpuid2_type(3)
    assert ctypes.sizeof(cpuid) == ctypes.sizeof(abi.KvmCpuid2) + 3 * ctypes.sizeof(
        abi.KvmCpuidEntry2)
    msrs = abi.msrs_type(2)
    assert msrs.entries.offset == ctypes.sizeof(abi.KvmMsrs)


def test_exit_reason_names():
    assert abi.EXIT_REASON_NAMES[abi.KVM_EXIT_IO] == "IO"
    assert abi.EXIT_REASON_NAMES[abi.KVM_EXIT_SHUTDOWN] == "SHUTDOWN"


def test_hot_path_unpackers_agree_with_the_ctypes_layout():
    """The exit path decodes kvm_run with struct formats; fill a ctypes KvmRun and decode it."""
    from x86vm.machine.kvm import vcpu

    run = abi.KvmRun()
    run.exit_reason = abi.KVM_EXIT_IO
    io = run.exit.io
    io.direction, io.size, io.port, io.count, io.data_offset = 1, 2, 0x3F8, 3, 0x1000
    assert vcpu._EXIT_HEAD.unpack_from(bytes(run), abi.RUN_EXIT_REASON) == (
        abi.KVM_EXIT_IO, 1, 2, 0x3F8, 3, 0x1000)

    run = abi.KvmRun()
    mmio = run.exit.mmio
    mmio.phys_addr, mmio.len, mmio.is_write = 0xFEB00010, 4, 1
    mmio.data[:] = list(range(1, 9))
    assert vcpu._MMIO.unpack_from(bytes(run), abi.RUN_MMIO) == (
        0xFEB00010, bytes(range(1, 9)), 4, 1)
    assert abi.RUN_MMIO_DATA == abi.RUN_MMIO + 8

    run = abi.KvmRun()
    hc = run.exit.hypercall
    hc.nr, hc.ret, hc.longmode = 9, 77, 1
    hc.args[:] = [10, 11, 12, 13, 14, 15]
    assert vcpu._HYPERCALL.unpack_from(bytes(run), abi.RUN_EXIT + abi.KvmRunExit.hypercall.offset
                                       ) == (9, 10, 11, 12, 13, 14, 15, 77, 1)
    assert vcpu._HYPERCALL_RET == abi.RUN_EXIT + abi.KvmRunExit.hypercall.offset + 56

    entry = abi.KvmCoalescedMmio(0xE0000000, 2, 1)
    entry.data[:] = [0xAA, 0xBB, 0, 0, 0, 0, 0, 0]
    assert vcpu._RING_ENTRY.size == ctypes.sizeof(abi.KvmCoalescedMmio)
    assert vcpu._RING_ENTRY.unpack(bytes(entry)) == (0xE0000000, 2, 1, b"\xaa\xbb" + bytes(6))
