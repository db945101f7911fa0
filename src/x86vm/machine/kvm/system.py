"""/dev/kvm and VM file descriptors: the system and VM ioctls of the KVM API.

KVM API doc (Documentation/virt/kvm/api.rst) §4: ``KVM_GET_API_VERSION`` must return 12;
``KVM_CREATE_VM`` returns a VM fd on which memory slots, the in-kernel irqchip and PIT, the
TSS/identity-map pages and coalesced-MMIO zones are set up, and vCPUs are created.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import struct

from x86vm.machine.errors import MachineError
from x86vm.machine.kvm import abi

DEFAULT_KVM_PATH = "/dev/kvm"
# Three pages for the real-mode TSS and one for the EPT identity map, just below the BIOS
# area at the top of 4 GiB (api.rst §4.48 KVM_SET_TSS_ADDR, §4.57 KVM_SET_IDENTITY_MAP_ADDR).
TSS_ADDR = 0xFFFB_D000
IDENTITY_MAP_ADDR = 0xFFFB_C000


class KvmError(MachineError):
    """/dev/kvm is unusable or a KVM ioctl failed; the message is one line for the user."""


_libc = ctypes.CDLL(None, use_errno=True)
_libc_ioctl = _libc.ioctl
_libc_ioctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong)
_libc_ioctl.restype = ctypes.c_int


def ioctl(fd: int, request: int, arg: int | bytes | bytearray | ctypes.Structure = 0,
          what: str = "") -> int:
    """``ioctl(2)`` through :func:`fcntl.ioctl`; errors become :class:`KvmError`.

    Structures are passed by address and filled in place (``mutate_flag`` semantics).
    """
    try:
        return fcntl.ioctl(fd, request, arg)
    except OSError as exc:
        raise KvmError(f"{what or hex(request)}: {exc.strerror}") from exc


def ioctl_ulong(fd: int, request: int, value: int, what: str) -> int:
    """``ioctl(2)`` with an ``unsigned long`` argument, for values that do not fit a C int
    (``fcntl.ioctl`` converts integer arguments to ``int``)."""
    ret = _libc_ioctl(fd, request, value)
    if ret < 0:
        raise KvmError(f"{what}: {os.strerror(ctypes.get_errno())}")
    return ret


def libc_ioctl() -> ctypes._CFuncPtr:
    """libc's ``ioctl`` as a ctypes function (releases the GIL; errno in ctypes.get_errno)."""
    return _libc_ioctl


class Kvm:
    """The /dev/kvm system fd: API version, capabilities, supported CPUID, VM creation."""

    def __init__(self, path: str = DEFAULT_KVM_PATH) -> None:
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            raise KvmError(f"{path} does not exist: KVM is not available on this host "
                           "(no kvm module, or not exposed to this container)") from None
        except PermissionError:
            raise KvmError(f"{path}: permission denied (join the 'kvm' group or run as a "
                           "user with access)") from None
        except OSError as exc:
            raise KvmError(f"{path}: {exc.strerror}") from None
        try:
            version = ioctl(self.fd, abi.KVM_GET_API_VERSION, 0, "KVM_GET_API_VERSION")
            if version != abi.KVM_API_VERSION:
                raise KvmError(f"{path}: KVM API version {version}, expected "
                               f"{abi.KVM_API_VERSION}")
            self.vcpu_mmap_size = ioctl(self.fd, abi.KVM_GET_VCPU_MMAP_SIZE, 0,
                                        "KVM_GET_VCPU_MMAP_SIZE")
        except KvmError:
            os.close(self.fd)
            raise

    def check_extension(self, cap: int) -> int:
        return ioctl(self.fd, abi.KVM_CHECK_EXTENSION, cap, "KVM_CHECK_EXTENSION")

    def mce_cap_supported(self) -> int:
        """``KVM_X86_GET_MCE_CAP_SUPPORTED``: the IA32_MCG_CAP flags KVM can emulate (its
        bank count is ``KVM_CHECK_EXTENSION(KVM_CAP_MCE)``)."""
        value = bytearray(8)
        ioctl(self.fd, abi.KVM_X86_GET_MCE_CAP_SUPPORTED, value, "KVM_X86_GET_MCE_CAP_SUPPORTED")
        return struct.unpack("<Q", value)[0]

    def supported_cpuid(self) -> ctypes.Structure:
        """``KVM_GET_SUPPORTED_CPUID``, growing the buffer while the kernel says E2BIG."""
        n = 64
        while True:
            cpuid = abi.cpuid2_type(n)()
            cpuid.nent = n
            try:
                fcntl.ioctl(self.fd, abi.KVM_GET_SUPPORTED_CPUID, cpuid)
            except OSError as exc:
                if exc.errno == errno.E2BIG and n < 4096:
                    n *= 2
                    continue
                raise KvmError(f"KVM_GET_SUPPORTED_CPUID: {exc.strerror}") from exc
            return cpuid

    def create_vm(self) -> KvmVm:
        try:
            fd = fcntl.ioctl(self.fd, abi.KVM_CREATE_VM, 0)
        except OSError as exc:
            raise KvmError(f"KVM_CREATE_VM failed: {exc.strerror}") from None
        return KvmVm(fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class KvmVm:
    """A VM fd: memory slots, irqchip, PIT, IRQ lines, coalesced zones."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._irq_level = struct.Struct("<II")

    def set_identity_map_addr(self, gpa: int = IDENTITY_MAP_ADDR) -> None:
        ioctl(self.fd, abi.KVM_SET_IDENTITY_MAP_ADDR, struct.pack("<Q", gpa),
              "KVM_SET_IDENTITY_MAP_ADDR")

    def set_tss_addr(self, gpa: int = TSS_ADDR) -> None:
        ioctl_ulong(self.fd, abi.KVM_SET_TSS_ADDR, gpa, "KVM_SET_TSS_ADDR")

    def set_user_memory_region(self, slot: int, gpa: int, size: int, host_address: int,
                               flags: int = 0) -> None:
        region = abi.KvmUserspaceMemoryRegion(slot, flags, gpa, size, host_address)
        ioctl(self.fd, abi.KVM_SET_USER_MEMORY_REGION, bytes(region),
              "KVM_SET_USER_MEMORY_REGION")

    def create_irqchip(self) -> None:
        """In-kernel PIC pair, IOAPIC and LAPIC (api.rst §4.24)."""
        ioctl(self.fd, abi.KVM_CREATE_IRQCHIP, 0, "KVM_CREATE_IRQCHIP")

    def create_pit2(self) -> None:
        """In-kernel i8254 PIT on ports 0x40-0x43, with a dummy speaker port 0x61."""
        ioctl(self.fd, abi.KVM_CREATE_PIT2, bytes(abi.KvmPitConfig(abi.KVM_PIT_SPEAKER_DUMMY)),
              "KVM_CREATE_PIT2")

    def enable_cap(self, cap: int, *args: int) -> None:
        """``KVM_ENABLE_CAP`` on the VM (api.rst §4.37)."""
        enable = abi.KvmEnableCap(cap=cap)
        enable.args[:len(args)] = args
        ioctl(self.fd, abi.KVM_ENABLE_CAP, bytes(enable), f"KVM_ENABLE_CAP({cap})")

    def set_msr_filter(self, denied: list[tuple[int, int]]) -> None:
        """``KVM_X86_SET_MSR_FILTER`` (api.rst §4.130): every MSR is the guest's except the
        ``(base, count)`` ranges in ``denied``, whose reads and writes fail, to userspace
        when ``KVM_MSR_EXIT_REASON_FILTER`` is enabled."""
        msr_filter = abi.KvmMsrFilter(flags=0)  # KVM_MSR_FILTER_DEFAULT_ALLOW
        bitmaps = [ctypes.create_string_buffer((count + 7) // 8) for _, count in denied]
        for i, ((base, count), bitmap) in enumerate(zip(denied, bitmaps, strict=True)):
            msr_filter.ranges[i] = abi.KvmMsrFilterRange(
                abi.KVM_MSR_FILTER_READ | abi.KVM_MSR_FILTER_WRITE, count, base,
                ctypes.addressof(bitmap))
        ioctl(self.fd, abi.KVM_X86_SET_MSR_FILTER, msr_filter, "KVM_X86_SET_MSR_FILTER")

    def irq_line(self, irq: int, level: bool) -> None:
        """``KVM_IRQ_LINE``: drive GSI ``irq`` of the in-kernel PIC/IOAPIC."""
        fcntl.ioctl(self.fd, abi.KVM_IRQ_LINE, self._irq_level.pack(irq, 1 if level else 0))

    def register_coalesced(self, gpa: int, size: int, pio: bool = False) -> None:
        """Buffer guest writes to ``[gpa, gpa + size)`` in the vCPU's ring instead of exiting
        (api.rst §4.67 KVM_REGISTER_COALESCED_MMIO; ``pio`` needs KVM_CAP_COALESCED_PIO)."""
        zone = abi.KvmCoalescedMmioZone(gpa, size, 1 if pio else 0)
        ioctl(self.fd, abi.KVM_REGISTER_COALESCED_MMIO, bytes(zone),
              "KVM_REGISTER_COALESCED_MMIO")

    def create_vcpu_fd(self, index: int) -> int:
        return ioctl(self.fd, abi.KVM_CREATE_VCPU, index, "KVM_CREATE_VCPU")

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
