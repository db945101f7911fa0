"""The KVM userspace ABI for x86-64: ioctl numbers, constants and structures.

A transcription of ``include/uapi/linux/kvm.h`` and ``arch/x86/include/uapi/asm/kvm.h`` (API
version 12) into ctypes. ioctl request numbers are computed with the ``_IO``/``_IOR``/``_IOW``/
``_IOWR`` encoding of ``include/uapi/asm-generic/ioctl.h`` from the structure they carry, as the
header does. ``tests/test_kvm_abi.py`` checks every size and offset against the C compiler.
"""

from __future__ import annotations

import ctypes
from ctypes import Structure, Union, c_char, c_uint8, c_uint16, c_uint32, c_uint64, c_void_p

# -- ioctl request encoding (asm-generic/ioctl.h) ---------------------------------------------

_IOC_NRBITS, _IOC_TYPEBITS, _IOC_SIZEBITS = 8, 8, 14
_IOC_NRSHIFT = 0
_IOC_TYPESHIFT = _IOC_NRSHIFT + _IOC_NRBITS
_IOC_SIZESHIFT = _IOC_TYPESHIFT + _IOC_TYPEBITS
_IOC_DIRSHIFT = _IOC_SIZESHIFT + _IOC_SIZEBITS
_IOC_NONE, _IOC_WRITE, _IOC_READ = 0, 1, 2


def _IOC(direction: int, type_: int, nr: int, size: int) -> int:  # noqa: N802
    return (direction << _IOC_DIRSHIFT) | (type_ << _IOC_TYPESHIFT) | (nr << _IOC_NRSHIFT) | (
        size << _IOC_SIZESHIFT)


def _IO(type_: int, nr: int) -> int:  # noqa: N802
    return _IOC(_IOC_NONE, type_, nr, 0)


def _IOR(type_: int, nr: int, ctype: type) -> int:  # noqa: N802
    return _IOC(_IOC_READ, type_, nr, ctypes.sizeof(ctype))


def _IOW(type_: int, nr: int, ctype: type) -> int:  # noqa: N802
    return _IOC(_IOC_WRITE, type_, nr, ctypes.sizeof(ctype))


def _IOWR(type_: int, nr: int, ctype: type) -> int:  # noqa: N802
    return _IOC(_IOC_READ | _IOC_WRITE, type_, nr, ctypes.sizeof(ctype))


# -- constants ---------------------------------------------------------------------------------

KVMIO = 0xAE
KVM_API_VERSION = 12

KVM_CAP_IRQCHIP = 0
KVM_CAP_USER_MEMORY = 3
KVM_CAP_SET_TSS_ADDR = 4
KVM_CAP_COALESCED_MMIO = 15  # returns the ring's page offset in the vCPU mapping
KVM_CAP_MCE = 31  # returns the most machine-check banks a vCPU can have
KVM_CAP_PIT2 = 33
KVM_CAP_READONLY_MEM = 81
KVM_MEM_READONLY = 1 << 1  # a slot the guest reads; its writes exit as MMIO
KVM_CAP_SET_IDENTITY_MAP_ADDR = 37
KVM_CAP_IMMEDIATE_EXIT = 136
KVM_CAP_COALESCED_PIO = 162
KVM_CAP_X86_USER_SPACE_MSR = 188
KVM_CAP_X86_MSR_FILTER = 189
# KVM_CAP_X86_USER_SPACE_MSR's argument: which failed guest MSR accesses exit to userspace
KVM_MSR_EXIT_REASON_INVAL, KVM_MSR_EXIT_REASON_UNKNOWN, KVM_MSR_EXIT_REASON_FILTER = 1, 2, 4
KVM_MSR_FILTER_READ, KVM_MSR_FILTER_WRITE = 1 << 0, 1 << 1
KVM_MSR_FILTER_MAX_RANGES = 16

KVM_PIO_PAGE_OFFSET = 1
KVM_COALESCED_MMIO_PAGE_OFFSET = 2
PAGE_SIZE = 4096

KVM_PIT_SPEAKER_DUMMY = 1
KVM_EXIT_IO_IN, KVM_EXIT_IO_OUT = 0, 1

# exit reasons (kvm.h "KVM_EXIT_*")
KVM_EXIT_UNKNOWN = 0
KVM_EXIT_EXCEPTION = 1
KVM_EXIT_IO = 2
KVM_EXIT_HYPERCALL = 3
KVM_EXIT_DEBUG = 4
KVM_EXIT_HLT = 5
KVM_EXIT_MMIO = 6
KVM_EXIT_IRQ_WINDOW_OPEN = 7
KVM_EXIT_SHUTDOWN = 8
KVM_EXIT_FAIL_ENTRY = 9
KVM_EXIT_INTR = 10
KVM_EXIT_INTERNAL_ERROR = 17
KVM_EXIT_SYSTEM_EVENT = 24
KVM_EXIT_X86_RDMSR = 29
KVM_EXIT_X86_WRMSR = 30

EXIT_REASON_NAMES = {
    value: name.removeprefix("KVM_EXIT_")
    for name, value in dict(globals()).items()
    if name.startswith("KVM_EXIT_") and name not in ("KVM_EXIT_IO_IN", "KVM_EXIT_IO_OUT")
}

KVM_INTERNAL_ERROR_EMULATION = 1
KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES = 1 << 0
KVM_INTERNAL_ERROR_NAMES = {1: "emulation failure", 2: "simultaneous exception",
                            3: "delivery event", 4: "unexpected exit reason"}
KVM_SYSTEM_EVENT_NAMES = {1: "shutdown", 2: "reset", 3: "crash", 4: "wakeup", 5: "suspend",
                          6: "SEV termination"}

KVM_MP_STATE_HALTED = 3

# kvm_vcpu_events.flags and interrupt.shadow (asm/kvm.h)
KVM_VCPUEVENT_VALID_NMI_PENDING = 0x00000001
KVM_VCPUEVENT_VALID_SIPI_VECTOR = 0x00000002
KVM_VCPUEVENT_VALID_SHADOW = 0x00000004
KVM_X86_SHADOW_INT_MOV_SS = 0x01
KVM_X86_SHADOW_INT_STI = 0x02

# kvm_guest_debug.control (linux/kvm.h, asm/kvm.h)
KVM_GUESTDBG_ENABLE = 0x00000001
KVM_GUESTDBG_SINGLESTEP = 0x00000002
KVM_GUESTDBG_USE_SW_BP = 0x00010000
KVM_GUESTDBG_USE_HW_BP = 0x00020000
KVM_GUESTDBG_INJECT_DB = 0x00040000
KVM_GUESTDBG_INJECT_BP = 0x00080000

# -- structures (asm/kvm.h, x86) ---------------------------------------------------------------


class KvmRegs(Structure):
    _fields_ = [(name, c_uint64) for name in (
        "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp",
        "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags")]


class KvmSegment(Structure):
    _fields_ = [
        ("base", c_uint64),
        ("limit", c_uint32),
        ("selector", c_uint16),
        ("type", c_uint8),
        ("present", c_uint8),
        ("dpl", c_uint8),
        ("db", c_uint8),
        ("s", c_uint8),
        ("l", c_uint8),
        ("g", c_uint8),
        ("avl", c_uint8),
        ("unusable", c_uint8),
        ("padding", c_uint8),
    ]


class KvmDtable(Structure):
    _fields_ = [("base", c_uint64), ("limit", c_uint16), ("padding", c_uint16 * 3)]


KVM_NR_INTERRUPTS = 256
SEGMENT_NAMES = ("cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt")


class KvmSregs(Structure):
    _fields_ = (
        [(name, KvmSegment) for name in SEGMENT_NAMES]
        + [("gdt", KvmDtable), ("idt", KvmDtable)]
        + [(name, c_uint64) for name in ("cr0", "cr2", "cr3", "cr4", "cr8", "efer",
                                         "apic_base")]
        + [("interrupt_bitmap", c_uint64 * ((KVM_NR_INTERRUPTS + 63) // 64))]
    )


class KvmMsrEntry(Structure):
    _fields_ = [("index", c_uint32), ("reserved", c_uint32), ("data", c_uint64)]


class KvmMsrs(Structure):
    """Header of ``struct kvm_msrs``; ``entries[nmsrs]`` follow (see :func:`msrs_type`)."""

    _fields_ = [("nmsrs", c_uint32), ("pad", c_uint32)]


class KvmCpuidEntry2(Structure):
    _fields_ = [
        ("function", c_uint32),
        ("index", c_uint32),
        ("flags", c_uint32),
        ("eax", c_uint32),
        ("ebx", c_uint32),
        ("ecx", c_uint32),
        ("edx", c_uint32),
        ("padding", c_uint32 * 3),
    ]


class KvmCpuid2(Structure):
    """Header of ``struct kvm_cpuid2``; ``entries[nent]`` follow (see :func:`cpuid2_type`)."""

    _fields_ = [("nent", c_uint32), ("padding", c_uint32)]


def msrs_type(n: int) -> type[Structure]:
    """``struct kvm_msrs`` with room for ``n`` entries (a flexible array in C)."""
    return type(f"KvmMsrs{n}", (Structure,),
                {"_fields_": KvmMsrs._fields_ + [("entries", KvmMsrEntry * n)]})


def cpuid2_type(n: int) -> type[Structure]:
    """``struct kvm_cpuid2`` with room for ``n`` entries (a flexible array in C)."""
    return type(f"KvmCpuid2_{n}", (Structure,),
                {"_fields_": KvmCpuid2._fields_ + [("entries", KvmCpuidEntry2 * n)]})


# -- structures (linux/kvm.h) ------------------------------------------------------------------


class KvmUserspaceMemoryRegion(Structure):
    _fields_ = [
        ("slot", c_uint32),
        ("flags", c_uint32),
        ("guest_phys_addr", c_uint64),
        ("memory_size", c_uint64),
        ("userspace_addr", c_uint64),
    ]


class KvmIrqLevel(Structure):
    _fields_ = [("irq", c_uint32), ("level", c_uint32)]  # irq is a union with s32 status


class KvmPitConfig(Structure):
    _fields_ = [("flags", c_uint32), ("pad", c_uint32 * 15)]


class KvmCoalescedMmioZone(Structure):
    _fields_ = [("addr", c_uint64), ("size", c_uint32), ("pio", c_uint32)]


class KvmCoalescedMmio(Structure):
    _fields_ = [("phys_addr", c_uint64), ("len", c_uint32), ("pio", c_uint32),
                ("data", c_uint8 * 8)]


class KvmCoalescedMmioRing(Structure):
    """Header of the ring page; ``coalesced_mmio[]`` follows."""

    _fields_ = [("first", c_uint32), ("last", c_uint32)]


KVM_COALESCED_MMIO_MAX = (PAGE_SIZE - ctypes.sizeof(KvmCoalescedMmioRing)) // ctypes.sizeof(
    KvmCoalescedMmio)


class KvmVcpuEventsException(Structure):
    _fields_ = [("injected", c_uint8), ("nr", c_uint8), ("has_error_code", c_uint8),
                ("pending", c_uint8), ("error_code", c_uint32)]


class KvmVcpuEventsInterrupt(Structure):
    _fields_ = [("injected", c_uint8), ("nr", c_uint8), ("soft", c_uint8), ("shadow", c_uint8)]


class KvmVcpuEventsNmi(Structure):
    _fields_ = [("injected", c_uint8), ("pending", c_uint8), ("masked", c_uint8),
                ("pad", c_uint8)]


class KvmVcpuEventsSmi(Structure):
    _fields_ = [("smm", c_uint8), ("pending", c_uint8), ("smm_inside_nmi", c_uint8),
                ("latched_init", c_uint8)]


class KvmVcpuEvents(Structure):
    """Pending/injected exception, interrupt, NMI, SMI state (api.rst §4.31)."""

    _fields_ = [
        ("exception", KvmVcpuEventsException),
        ("interrupt", KvmVcpuEventsInterrupt),
        ("nmi", KvmVcpuEventsNmi),
        ("sipi_vector", c_uint32),
        ("flags", c_uint32),
        ("smi", KvmVcpuEventsSmi),
        ("triple_fault", c_uint8),  # struct { __u8 pending; }
        ("reserved", c_uint8 * 26),
        ("exception_has_payload", c_uint8),
        ("exception_payload", c_uint64),
    ]


class KvmDebugregs(Structure):
    """DR0-DR3, DR6, DR7 of the guest (api.rst §4.32 KVM_GET_DEBUGREGS)."""

    _fields_ = [("db", c_uint64 * 4), ("dr6", c_uint64), ("dr7", c_uint64),
                ("flags", c_uint64), ("reserved", c_uint64 * 9)]


class KvmGuestDebugArch(Structure):
    _fields_ = [("debugreg", c_uint64 * 8)]


class KvmGuestDebug(Structure):
    """The monitor's debug control (api.rst §4.38 KVM_SET_GUEST_DEBUG); ``debugreg[0-3]``
    are breakpoint addresses, ``debugreg[7]`` their DR7 enables (with USE_HW_BP)."""

    _fields_ = [("control", c_uint32), ("pad", c_uint32), ("arch", KvmGuestDebugArch)]


class KvmDebugExitArch(Structure):
    """``kvm_run.debug.arch`` on ``KVM_EXIT_DEBUG``: the vector (1 #DB, 3 #BP), RIP, DR6/7."""

    _fields_ = [("exception", c_uint32), ("pad", c_uint32), ("pc", c_uint64),
                ("dr6", c_uint64), ("dr7", c_uint64)]


class KvmMpState(Structure):
    _fields_ = [("mp_state", c_uint32)]


# kvm_run and the members of its exit union that an x86 monitor reads.


class KvmRunIo(Structure):
    _fields_ = [("direction", c_uint8), ("size", c_uint8), ("port", c_uint16),
                ("count", c_uint32), ("data_offset", c_uint64)]


class KvmRunMmio(Structure):
    _fields_ = [("phys_addr", c_uint64), ("data", c_uint8 * 8), ("len", c_uint32),
                ("is_write", c_uint8)]


class KvmRunHypercall(Structure):
    _fields_ = [("nr", c_uint64), ("args", c_uint64 * 6), ("ret", c_uint64),
                ("longmode", c_uint32), ("pad", c_uint32)]


class KvmRunFailEntry(Structure):
    _fields_ = [("hardware_entry_failure_reason", c_uint64), ("cpu", c_uint32)]


class KvmRunInternal(Structure):
    _fields_ = [("suberror", c_uint32), ("ndata", c_uint32), ("data", c_uint64 * 16)]


class KvmRunSystemEvent(Structure):
    _fields_ = [("type", c_uint32), ("ndata", c_uint32), ("data", c_uint64 * 16)]


class KvmRunException(Structure):
    _fields_ = [("exception", c_uint32), ("error_code", c_uint32)]


class KvmRunExit(Union):
    _fields_ = [
        ("hw", c_uint64),  # hardware_exit_reason
        ("fail_entry", KvmRunFailEntry),
        ("ex", KvmRunException),
        ("io", KvmRunIo),
        ("debug", KvmDebugExitArch),  # struct { struct kvm_debug_exit_arch arch; } debug
        ("mmio", KvmRunMmio),
        ("hypercall", KvmRunHypercall),
        ("internal", KvmRunInternal),
        ("system_event", KvmRunSystemEvent),
        ("padding", c_char * 256),  # fixes the size of the union
    ]


SYNC_REGS_SIZE_BYTES = 2048


class KvmRun(Structure):
    _fields_ = [
        ("request_interrupt_window", c_uint8),
        ("immediate_exit", c_uint8),
        ("padding1", c_uint8 * 6),
        ("exit_reason", c_uint32),
        ("ready_for_interrupt_injection", c_uint8),
        ("if_flag", c_uint8),
        ("flags", c_uint16),
        ("cr8", c_uint64),
        ("apic_base", c_uint64),
        ("exit", KvmRunExit),
        ("kvm_valid_regs", c_uint64),
        ("kvm_dirty_regs", c_uint64),
        ("s", c_char * SYNC_REGS_SIZE_BYTES),
    ]


class KvmEnableCap(Structure):
    _fields_ = [("cap", c_uint32), ("flags", c_uint32), ("args", c_uint64 * 4),
                ("pad", c_uint8 * 64)]


class KvmMsrFilterRange(Structure):
    """One range of ``KVM_X86_SET_MSR_FILTER``: a clear bit in ``bitmap`` denies MSR
    ``base + bit`` to the guest (with ``KVM_MSR_EXIT_REASON_FILTER``: an exit to userspace)."""
    _fields_ = [("flags", c_uint32), ("nmsrs", c_uint32), ("base", c_uint32),
                ("bitmap", c_void_p)]


class KvmMsrFilter(Structure):
    _fields_ = [("flags", c_uint32), ("ranges", KvmMsrFilterRange * KVM_MSR_FILTER_MAX_RANGES)]


# -- ioctl requests ----------------------------------------------------------------------------

# on the /dev/kvm fd
KVM_GET_API_VERSION = _IO(KVMIO, 0x00)
KVM_CREATE_VM = _IO(KVMIO, 0x01)
KVM_CHECK_EXTENSION = _IO(KVMIO, 0x03)
KVM_GET_VCPU_MMAP_SIZE = _IO(KVMIO, 0x04)
KVM_GET_SUPPORTED_CPUID = _IOWR(KVMIO, 0x05, KvmCpuid2)
KVM_X86_GET_MCE_CAP_SUPPORTED = _IOR(KVMIO, 0x9D, c_uint64)
# on a VM fd
KVM_CREATE_VCPU = _IO(KVMIO, 0x41)
KVM_SET_USER_MEMORY_REGION = _IOW(KVMIO, 0x46, KvmUserspaceMemoryRegion)
KVM_SET_TSS_ADDR = _IO(KVMIO, 0x47)
KVM_SET_IDENTITY_MAP_ADDR = _IOW(KVMIO, 0x48, c_uint64)
KVM_CREATE_IRQCHIP = _IO(KVMIO, 0x60)
KVM_IRQ_LINE = _IOW(KVMIO, 0x61, KvmIrqLevel)
KVM_REGISTER_COALESCED_MMIO = _IOW(KVMIO, 0x67, KvmCoalescedMmioZone)
KVM_UNREGISTER_COALESCED_MMIO = _IOW(KVMIO, 0x68, KvmCoalescedMmioZone)
KVM_CREATE_PIT2 = _IOW(KVMIO, 0x77, KvmPitConfig)
KVM_ENABLE_CAP = _IOW(KVMIO, 0xA3, KvmEnableCap)
KVM_X86_SET_MSR_FILTER = _IOW(KVMIO, 0xC6, KvmMsrFilter)
# on a vCPU fd
KVM_RUN = _IO(KVMIO, 0x80)
KVM_GET_REGS = _IOR(KVMIO, 0x81, KvmRegs)
KVM_SET_REGS = _IOW(KVMIO, 0x82, KvmRegs)
KVM_GET_SREGS = _IOR(KVMIO, 0x83, KvmSregs)
KVM_SET_SREGS = _IOW(KVMIO, 0x84, KvmSregs)
KVM_GET_MSRS = _IOWR(KVMIO, 0x88, KvmMsrs)
KVM_SET_MSRS = _IOW(KVMIO, 0x89, KvmMsrs)
KVM_SET_CPUID2 = _IOW(KVMIO, 0x90, KvmCpuid2)
KVM_GET_MP_STATE = _IOR(KVMIO, 0x98, KvmMpState)
KVM_GET_VCPU_EVENTS = _IOR(KVMIO, 0x9F, KvmVcpuEvents)
KVM_SET_VCPU_EVENTS = _IOW(KVMIO, 0xA0, KvmVcpuEvents)
KVM_GET_DEBUGREGS = _IOR(KVMIO, 0xA1, KvmDebugregs)
KVM_SET_DEBUGREGS = _IOW(KVMIO, 0xA2, KvmDebugregs)
KVM_SET_GUEST_DEBUG = _IOW(KVMIO, 0x9B, KvmGuestDebug)
KVM_X86_SETUP_MCE = _IOW(KVMIO, 0x9C, c_uint64)

# -- byte offsets into the mmapped kvm_run, for the exit hot path -----------------------------

RUN_IMMEDIATE_EXIT = KvmRun.immediate_exit.offset
RUN_EXIT_REASON = KvmRun.exit_reason.offset
RUN_EXIT = KvmRun.exit.offset
RUN_IO = RUN_EXIT + KvmRunExit.io.offset
RUN_MMIO = RUN_EXIT + KvmRunExit.mmio.offset
RUN_MMIO_DATA = RUN_MMIO + KvmRunMmio.data.offset
RUN_DEBUG = RUN_EXIT + KvmRunExit.debug.offset
RUN_MSR = RUN_EXIT  # kvm_run.msr: u8 error (to KVM), pad[7], u32 reason, u32 index, u64 data
