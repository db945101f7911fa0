"""A KVM vCPU: registers, CPUID, MSRs, and ``KVM_RUN`` exits as backend-neutral exit objects.

api.rst §5 "The kvm_run structure": the vCPU fd is mmapped (size from
``KVM_GET_VCPU_MMAP_SIZE``); after ``KVM_RUN`` returns, ``exit_reason`` says which member of
the exit union is valid. For ``KVM_EXIT_IO`` the data lives at ``data_offset`` inside the same
mapping; for an ``in`` (and for an MMIO read) the monitor stores the value there and the kernel
completes the instruction on the next ``KVM_RUN``. The coalesced-MMIO ring is the page at
``KVM_COALESCED_MMIO_PAGE_OFFSET`` of the mapping.

The exit path reads ``kvm_run`` with :mod:`struct` at offsets taken from the ctypes layout in
:mod:`abi`: one ``unpack_from`` yields the exit reason and all ``io`` fields.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import struct
from collections.abc import Callable

from x86vm.cpu.state import STATE_MSRS, RegisterState
from x86vm.machine.exits import (
    DebugStop,
    Exit,
    Halt,
    Hypercall,
    InternalError,
    IoExit,
    MmioExit,
    Shutdown,
)
from x86vm.machine.kvm import abi
from x86vm.machine.kvm import state as kvm_state
from x86vm.machine.kvm.system import Kvm, KvmError, KvmVm, ioctl, libc_ioctl

# exit_reason followed by the kvm_run.io fields: direction, size, port, count, data_offset
_EXIT_HEAD = struct.Struct(
    f"<I{abi.RUN_IO - abi.RUN_EXIT_REASON - 4}xBBHIQ")
_MMIO = struct.Struct("<Q8sIB")
_HYPERCALL = struct.Struct("<Q6QQI")
_U32X2 = struct.Struct("<II")
_MSR_EXIT = struct.Struct("<IQ")  # kvm_run.msr index and data
_U64 = struct.Struct("<Q")
_RING_ENTRY = struct.Struct("<QII8s")
_RING_ENTRIES = ctypes.sizeof(abi.KvmCoalescedMmioRing)
RFLAGS_IF = 1 << 9
RFLAGS_RF = 1 << 16
INT3_OPCODE = 0xCC
BP_VECTOR = 3
DB_VECTOR = 1
_DEBUG = struct.Struct("<IIQQQ")  # kvm_debug_exit_arch: exception, pad, pc, dr6, dr7
# struct kvm_run.emulation_failure: suberror, ndata, flags, insn_size; insn_bytes follow
_EMULATION_FAILURE = struct.Struct("<IIQB")
_HYPERCALL_RET = abi.RUN_EXIT + abi.KvmRunExit.hypercall.offset + abi.KvmRunHypercall.ret.offset


class KvmVcpu:
    """One vCPU fd with its mmapped ``kvm_run``."""

    def __init__(self, kvm: Kvm, vm: KvmVm, index: int = 0) -> None:
        self.fd = vm.create_vcpu_fd(index)
        try:
            self.run_map = mmap.mmap(self.fd, kvm.vcpu_mmap_size, mmap.MAP_SHARED,
                                     mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as exc:
            os.close(self.fd)
            raise KvmError(f"mmap of kvm_run failed: {exc.strerror}") from None
        self.run_size = kvm.vcpu_mmap_size
        page = kvm.check_extension(abi.KVM_CAP_COALESCED_MMIO)
        ring = page * abi.PAGE_SIZE
        self.ring_offset = ring if page and ring + abi.PAGE_SIZE <= self.run_size else None
        self._ioctl = libc_ioctl()
        self._pending_read: IoExit | MmioExit | Hypercall | None = None
        self._pending_offset = 0
        self.int3_deliveries = 0
        self._instruction_breakpoints = 0  # DR6 bits of the hardware instruction breakpoints
        self._software_breakpoints = False  # KVM_GUESTDBG_USE_SW_BP is on
        self.fix_int3 = True  # see _deliver_int3
        # a guest RDMSR (value None)/WRMSR KVM sent to userspace (KVM_EXIT_X86_RDMSR/WRMSR):
        # returns the value read (anything on a write), or None for #GP
        self.msr_handler: Callable[[int, int | None], int | None] | None = None
        self.run = self._make_run()

    # -- registers --------------------------------------------------------------------------

    def get_regs(self) -> abi.KvmRegs:
        regs = abi.KvmRegs()
        ioctl(self.fd, abi.KVM_GET_REGS, regs, "KVM_GET_REGS")
        return regs

    def set_regs(self, regs: abi.KvmRegs) -> None:
        ioctl(self.fd, abi.KVM_SET_REGS, regs, "KVM_SET_REGS")

    def get_sregs(self) -> abi.KvmSregs:
        sregs = abi.KvmSregs()
        ioctl(self.fd, abi.KVM_GET_SREGS, sregs, "KVM_GET_SREGS")
        return sregs

    def set_sregs(self, sregs: abi.KvmSregs) -> None:
        ioctl(self.fd, abi.KVM_SET_SREGS, sregs, "KVM_SET_SREGS")

    def get_msrs(self, indices: list[int]) -> dict[int, int]:
        """``KVM_GET_MSRS``: the values of the MSRs the kernel could read."""
        msrs = abi.msrs_type(len(indices))()
        msrs.nmsrs = len(indices)
        for entry, index in zip(msrs.entries, indices, strict=True):
            entry.index = index
        n = ioctl(self.fd, abi.KVM_GET_MSRS, msrs, "KVM_GET_MSRS")
        return {msrs.entries[i].index: msrs.entries[i].data for i in range(n)}

    def readable_msrs(self, indices: tuple[int, ...]) -> dict[int, int]:
        """The values of those of ``indices`` this KVM lets userspace read: ``KVM_GET_MSRS``
        stops at the first it refuses, so that one is left out and the rest read again."""
        values: dict[int, int] = {}
        rest = list(indices)
        while rest:
            got = self.get_msrs(rest)
            values.update(got)
            rest = rest[len(got) + 1:]
        return values

    def set_msrs(self, values: dict[int, int]) -> None:
        """``KVM_SET_MSRS``; the ioctl returns how many were set, all of them or an error."""
        msrs = abi.msrs_type(len(values))()
        msrs.nmsrs = len(values)
        for entry, (index, data) in zip(msrs.entries, values.items(), strict=True):
            entry.index, entry.data = index, data
        n = ioctl(self.fd, abi.KVM_SET_MSRS, msrs, "KVM_SET_MSRS")
        if n != len(values):
            bad = msrs.entries[n].index
            raise KvmError(f"KVM_SET_MSRS: MSR {bad:#x} was refused")

    def set_cpuid2(self, cpuid: ctypes.Structure) -> None:
        ioctl(self.fd, abi.KVM_SET_CPUID2, cpuid, "KVM_SET_CPUID2")

    def setup_mce(self, mcg_cap: int) -> None:
        """``KVM_X86_SETUP_MCE``: the guest's IA32_MCG_CAP, its low byte the bank count."""
        ioctl(self.fd, abi.KVM_X86_SETUP_MCE, struct.pack("<Q", mcg_cap), "KVM_X86_SETUP_MCE")

    def mp_state(self) -> int:
        state = abi.KvmMpState()
        ioctl(self.fd, abi.KVM_GET_MP_STATE, state, "KVM_GET_MP_STATE")
        return state.mp_state

    def get_events(self) -> abi.KvmVcpuEvents:
        events = abi.KvmVcpuEvents()
        ioctl(self.fd, abi.KVM_GET_VCPU_EVENTS, events, "KVM_GET_VCPU_EVENTS")
        return events

    def set_events(self, events: abi.KvmVcpuEvents) -> None:
        ioctl(self.fd, abi.KVM_SET_VCPU_EVENTS, events, "KVM_SET_VCPU_EVENTS")

    def get_debugregs(self) -> abi.KvmDebugregs:
        debugregs = abi.KvmDebugregs()
        ioctl(self.fd, abi.KVM_GET_DEBUGREGS, debugregs, "KVM_GET_DEBUGREGS")
        return debugregs

    def set_debugregs(self, debugregs: abi.KvmDebugregs) -> None:
        ioctl(self.fd, abi.KVM_SET_DEBUGREGS, debugregs, "KVM_SET_DEBUGREGS")

    def get_state(self) -> RegisterState:
        """The vCPU's registers: regs, sregs, debug registers, events and the MSRs of
        :data:`STATE_MSRS` this KVM can read (api.rst §4.11-4.14, §4.18, §4.31-4.32)."""
        return kvm_state.state_from_kvm(self.get_regs(), self.get_sregs(),
                                        self.get_debugregs(), self.get_events(),
                                        self.readable_msrs(STATE_MSRS))

    def set_state(self, state: RegisterState) -> None:
        """Load ``state``. The sregs and events are read first so that what a
        :class:`RegisterState` does not carry (``apic_base``, NMI masking, SMM) keeps its
        value; only the MSRs in ``state.msrs`` are written (a boot loader's state has none).
        """
        regs = abi.KvmRegs()
        kvm_state.load_regs(regs, state)  # checks the register names before any change
        sregs = self.get_sregs()
        kvm_state.load_sregs(sregs, state)
        self.set_sregs(sregs)
        if state.msrs:
            self.set_msrs(state.msrs)
        self.set_regs(regs)
        debugregs = abi.KvmDebugregs()
        kvm_state.load_debugregs(debugregs, state)
        self.set_debugregs(debugregs)
        events = self.get_events()
        kvm_state.load_events(events, state)
        self.set_events(events)

    def set_guest_debug(self, control: int, debugreg: tuple[int, ...] = ()) -> None:
        """``KVM_SET_GUEST_DEBUG`` (api.rst §4.38): ``control`` flags, and with
        ``KVM_GUESTDBG_USE_HW_BP`` the DR0-DR3 addresses and DR7 in ``debugreg[0..7]``."""
        dbg = abi.KvmGuestDebug()
        dbg.control = control
        for i, value in enumerate(debugreg):
            dbg.arch.debugreg[i] = value
        ioctl(self.fd, abi.KVM_SET_GUEST_DEBUG, dbg, "KVM_SET_GUEST_DEBUG")
        self._software_breakpoints = bool(control & abi.KVM_GUESTDBG_USE_SW_BP)
        dr7 = dbg.arch.debugreg[7] if control & abi.KVM_GUESTDBG_USE_HW_BP else 0
        # DR6.Bn of the enabled slots whose R/W bits are 00: instruction breakpoints
        self._instruction_breakpoints = sum(
            1 << n for n in range(4) if dr7 >> (2 * n) & 3 and not dr7 >> (16 + 4 * n) & 3)

    # -- running ----------------------------------------------------------------------------

    def _make_run(self) -> Callable[[], Exit | None]:
        """Build :meth:`run` as a closure over locals: this is the exit hot path, so every
        constant, the mapping and the unpacker are bound once instead of looked up per exit.
        """
        ioctl_, fd, request, run_map, run_size = (self._ioctl, self.fd, abi.KVM_RUN,
                                                  self.run_map, self.run_size)
        unpack_head, head_offset = _EXIT_HEAD.unpack_from, abi.RUN_EXIT_REASON
        exit_io, io_out = abi.KVM_EXIT_IO, abi.KVM_EXIT_IO_OUT
        io_exit, other_exit, failed_run = IoExit, self._other_exit, self._failed_run

        def run() -> Exit | None:
            """One ``KVM_RUN``: the exit it ended with, or None when a signal or
            ``immediate_exit`` interrupted it before the guest exited."""
            if ioctl_(fd, request, 0) < 0:
                return failed_run()
            reason, direction, size, port, count, data_offset = unpack_head(run_map,
                                                                             head_offset)
            if reason != exit_io:
                return other_exit(reason)
            end = data_offset + size * count
            if end > run_size or size not in (1, 2, 4):
                return InternalError(f"KVM_EXIT_IO with bad size/count/offset: {size}/"
                                     f"{count}/{data_offset:#x}")
            if direction == io_out:
                return io_exit(port, size, True, bytearray(run_map[data_offset:end]), count)
            exit_ = io_exit(port, size, False, bytearray(end - data_offset), count)
            self._pending_read, self._pending_offset = exit_, data_offset
            return exit_

        return run

    def _failed_run(self) -> Exit | None:
        err = ctypes.get_errno()
        if err == errno.EINTR or err == errno.EAGAIN:
            return self._interrupted()
        return InternalError(f"KVM_RUN failed: {os.strerror(err)}")

    def _interrupted(self) -> Halt | None:
        """KVM_RUN returned EINTR: a kick. With the in-kernel LAPIC a ``hlt`` never exits to
        userspace, so a vCPU halted with IF=0 (nothing but an NMI can wake it) is reported
        here as :class:`Halt`."""
        if self.run_map[abi.RUN_IMMEDIATE_EXIT]:  # interrupt(): this run is over, not the next
            self.run_map[abi.RUN_IMMEDIATE_EXIT] = 0
            return None
        try:
            if self.mp_state() == abi.KVM_MP_STATE_HALTED and not (
                    self.get_regs().rflags & RFLAGS_IF):
                return Halt()
        except KvmError:
            pass
        return None

    def _other_exit(self, reason: int) -> Exit | None:
        run = self.run_map
        if reason == abi.KVM_EXIT_MMIO:
            gpa, data, length, is_write = _MMIO.unpack_from(run, abi.RUN_MMIO)
            if not 1 <= length <= 8:
                return InternalError(f"KVM_EXIT_MMIO at {gpa:#x} with length {length}")
            if is_write:
                return MmioExit(gpa, length, True, bytearray(data[:length]))
            exit_ = MmioExit(gpa, length, False, bytearray(length))
            self._pending_read, self._pending_offset = exit_, abi.RUN_MMIO_DATA
            return exit_
        if reason == abi.KVM_EXIT_HLT:
            return Halt()
        if reason == abi.KVM_EXIT_SHUTDOWN:
            return Shutdown("triple fault")
        if reason == abi.KVM_EXIT_SYSTEM_EVENT:
            kind = _U32X2.unpack_from(run, abi.RUN_EXIT)[0]
            return Shutdown(f"system event: {abi.KVM_SYSTEM_EVENT_NAMES.get(kind, kind)}")
        if reason == abi.KVM_EXIT_HYPERCALL:
            nr, *args_ret = _HYPERCALL.unpack_from(
                run, abi.RUN_EXIT + abi.KvmRunExit.hypercall.offset)
            exit_ = Hypercall(nr, tuple(args_ret[:6]))
            self._pending_read, self._pending_offset = exit_, _HYPERCALL_RET
            return exit_
        if reason == abi.KVM_EXIT_X86_RDMSR or reason == abi.KVM_EXIT_X86_WRMSR:
            self._user_msr(reason == abi.KVM_EXIT_X86_WRMSR)
            return None
        if reason in (abi.KVM_EXIT_INTR, abi.KVM_EXIT_IRQ_WINDOW_OPEN):
            return None
        if reason == abi.KVM_EXIT_DEBUG:
            return self._debug_stop()
        if reason == abi.KVM_EXIT_INTERNAL_ERROR and self._failed_at_int3():
            if self._software_breakpoints:  # what KVM_GUESTDBG_USE_SW_BP reports elsewhere
                return DebugStop(self.get_regs().rip)
            if self.fix_int3 and self._deliver_int3():
                return None
        return InternalError(self._describe_failure(reason))

    def _user_msr(self, write: bool) -> None:
        """Answer a RDMSR/WRMSR exit (api.rst §5 ``KVM_EXIT_X86_RDMSR``): ``error`` 1 makes
        KVM inject #GP, as it would have without userspace MSRs; the next KVM_RUN completes
        the instruction."""
        run = self.run_map
        index, data = _MSR_EXIT.unpack_from(run, abi.RUN_MSR + 12)
        handler = self.msr_handler
        value = None if handler is None else handler(index, data if write else None)
        run[abi.RUN_MSR] = 1 if value is None else 0
        if value is not None and not write:
            struct.pack_into("<Q", run, abi.RUN_MSR + 16, value & (1 << 64) - 1)

    def _debug_stop(self) -> DebugStop:
        """``KVM_EXIT_DEBUG``. An instruction breakpoint is a fault: resuming would hit it
        again, so RFLAGS.RF is set, as a #DB handler's IRET does (SDM Vol. 3B §18.3.1.1)."""
        exception, _, _, dr6, _ = _DEBUG.unpack_from(self.run_map, abi.RUN_DEBUG)
        regs = self.get_regs()
        if exception != DB_VECTOR:
            return DebugStop(regs.rip)
        if dr6 & self._instruction_breakpoints:
            regs.rflags |= RFLAGS_RF
            self.set_regs(regs)
        return DebugStop(regs.rip, dr6)

    def _failed_at_int3(self) -> bool:
        """Host quirk: some KVM hosts (software-emulated vCPUs) hand ``int3`` to KVM's
        instruction emulator, which cannot deliver software interrupts outside real mode and
        reports an emulation failure with the instruction bytes ``CC``."""
        run = self.run_map
        suberror, _, flags, size = _EMULATION_FAILURE.unpack_from(run, abi.RUN_EXIT)
        return (suberror == abi.KVM_INTERNAL_ERROR_EMULATION
                and bool(flags & abi.KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)
                and size >= 1 and run[abi.RUN_EXIT + _EMULATION_FAILURE.size] == INT3_OPCODE)

    def _deliver_int3(self) -> bool:
        """After :meth:`_failed_at_int3`: complete the instruction as the CPU would (SDM
        Vol. 2 "INT n/INTO/INT3/INT1": #BP is a trap, the saved RIP is the next instruction):
        step RIP past the one-byte ``CC`` and inject #BP with ``KVM_SET_VCPU_EVENTS``."""
        events = abi.KvmVcpuEvents()
        ioctl(self.fd, abi.KVM_GET_VCPU_EVENTS, events, "KVM_GET_VCPU_EVENTS")
        if events.exception.injected or events.exception.pending or events.interrupt.injected:
            return False  # something is already being delivered: not a plain int3
        regs = self.get_regs()
        regs.rip += 1
        self.set_regs(regs)
        events.exception.injected, events.exception.nr = 1, BP_VECTOR
        events.exception.has_error_code, events.exception.error_code = 0, 0
        ioctl(self.fd, abi.KVM_SET_VCPU_EVENTS, events, "KVM_SET_VCPU_EVENTS")
        self.int3_deliveries += 1
        return True

    def _describe_failure(self, reason: int) -> str:
        run = self.run_map
        name = abi.EXIT_REASON_NAMES.get(reason, f"exit reason {reason}")
        if reason == abi.KVM_EXIT_INTERNAL_ERROR:
            suberror, ndata = _U32X2.unpack_from(run, abi.RUN_EXIT)
            what = abi.KVM_INTERNAL_ERROR_NAMES.get(suberror, f"suberror {suberror}")
            data = struct.unpack_from(f"<{min(ndata, 16)}Q", run, abi.RUN_EXIT + 8)
            detail = f"KVM internal error: {what}" + (
                f" (data {' '.join(hex(d) for d in data)})" if data else "")
        elif reason == abi.KVM_EXIT_FAIL_ENTRY:
            hw = _U64.unpack_from(run, abi.RUN_EXIT)[0]
            detail = f"VM entry failed: hardware entry failure reason {hw:#x}"
        elif reason == abi.KVM_EXIT_EXCEPTION:
            vector, code = _U32X2.unpack_from(run, abi.RUN_EXIT)
            detail = f"unhandled guest exception {vector} (error code {code:#x})"
        else:
            detail = f"unexpected KVM exit {name}"
        try:
            detail += f" at rip {self.get_regs().rip:#x}"
        except KvmError:
            pass
        return detail

    def complete_io(self, exit_: Exit) -> None:
        """Store the result of a read exit (``in``, MMIO load, hypercall return value) where
        the kernel picks it up on the next ``KVM_RUN`` (api.rst §5, KVM_EXIT_IO/MMIO)."""
        if exit_ is not self._pending_read:
            return
        self._pending_read = None
        if isinstance(exit_, Hypercall):
            _U64.pack_into(self.run_map, _HYPERCALL_RET, exit_.ret & (2**64 - 1))
            return
        data = exit_.data
        off = self._pending_offset
        self.run_map[off:off + len(data)] = data

    def set_immediate_exit(self, value: bool) -> None:
        self.run_map[abi.RUN_IMMEDIATE_EXIT] = 1 if value else 0

    def drain_coalesced(self) -> list[IoExit | MmioExit]:
        """Writes buffered in the coalesced ring since the last exit, oldest first; the ring's
        ``first`` index is advanced past them (api.rst §4.67)."""
        ring = self.ring_offset
        if ring is None:
            return []
        run = self.run_map
        first, last = _U32X2.unpack_from(run, ring)
        out: list[IoExit | MmioExit] = []
        limit = abi.KVM_COALESCED_MMIO_MAX
        if first >= limit or last >= limit:
            raise KvmError(f"coalesced MMIO ring indices out of range: {first}, {last}")
        while first != last:
            addr, length, pio, data = _RING_ENTRY.unpack_from(
                run, ring + _RING_ENTRIES + first * _RING_ENTRY.size)
            length = min(length, 8)
            if pio:
                out.append(IoExit(addr, length, True, bytearray(data[:length])))
            else:
                out.append(MmioExit(addr, length, True, bytearray(data[:length])))
            first = (first + 1) % limit
        struct.pack_into("<I", run, ring, first)
        return out

    def close(self) -> None:
        if self.fd >= 0:
            self.run_map.close()
            os.close(self.fd)
            self.fd = -1

