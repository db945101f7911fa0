"""``x86vm kvm-probe``: what this host's KVM can run.

Tiny long-mode guests for instructions that software-emulated vCPUs are known to get wrong,
and the debug controls (``set_debug``); one line per probe, exit status 0 when all pass.

On hardware virtualization (VT-x/AMD-V) every probe passes. On a software vCPU some of these
instructions are handed to KVM's instruction emulator, which cannot do them; knowing which
explains why a guest such as Linux stops where it does (and which kernel options avoid it).
"""

from __future__ import annotations

import argparse
import struct
from collections.abc import Callable
from dataclasses import replace

from x86vm.cli import CliError
from x86vm.machine.backend import DebugControl
from x86vm.machine.boot.state import TableRegister, long_mode64
from x86vm.machine.errors import MachineError
from x86vm.machine.exits import DebugStop, IoExit
from x86vm.machine.vm import Machine

CODE, HANDLER, USER, STACK = 0x10000, 0x10100, 0x10200, 0x80000
PML4, GDT, IDT = 0x1000, 0x800, 0x4000
KERNEL_CS = 0x10
EXIT_PORT, REPORT_PORT = 0xF4, 0x80
XSAVE_BIT = 1 << 26  # CPUID.1:ECX.XSAVE

# Machine code (GNU as, checked with objdump -d):
HANDLER_CODE = bytes.fromhex(
    "8cc8"  # mov %cs,%eax
    "e780"  # out %eax,$0x80        report the code segment the handler runs with
    "b000"  # mov $0x0,%al
    "e6f4")  # out %al,$0xf4        debug-exit
XGETBV = bytes.fromhex("31c9" "0f01d0" "b000" "e6f4")  # xor %ecx,%ecx; xgetbv; exit
INT3 = bytes.fromhex("cc" "f4")  # int3; hlt
INT80 = bytes.fromhex("cd80" "f4")  # int $0x80; hlt
SYSCALL_SETUP = bytes.fromhex(
    "b9800000c0" "0f32" "83c801" "0f30"  # EFER.SCE |= 1
    "b9810000c0" "31c0" "ba10001800" "0f30"  # STAR: syscall CS 0x10, sysret base 0x18
    "b9820000c0" "b800010100" "31d2" "0f30"  # LSTAR = 0x10100 (HANDLER)
    "48c7c100020100" "49c7c302000000" "480f07")  # rcx = 0x10200 (USER), r11 = 2; sysretq
SYSCALL_USER = bytes.fromhex("0f05")  # syscall
CPUID_ECX = bytes.fromhex("b801000000" "31c9" "0fa2" "89c8" "e780" "b000" "e6f4")


class _Port:
    """Records what the guest writes; with ``stop``, the first write also ends the run."""

    def __init__(self, stop: Callable[[int, str], None] | None = None) -> None:
        self.values: list[int] = []
        self.stop = stop

    def read(self, offset: int, size: int) -> int:
        return 0xFF

    def write(self, offset: int, size: int, value: int) -> None:
        self.values.append(value)
        if self.stop is not None:
            self.stop(0, "probe done")


def _run(code: bytes, *, user: bytes = b"", fix_int3: bool = True,
         setup: Callable[[Machine], None] | None = None) -> tuple[str, list[int]]:
    """Run ``code`` at CPL 0 in 64-bit mode; all IDT vectors and LSTAR lead to HANDLER."""
    with Machine(memory_size=2 << 20, irqchip=False) as m:
        report, done = _Port(), _Port(m.request_stop)
        m.pio.register(REPORT_PORT, 4, report, "report")
        m.pio.register(EXIT_PORT, 1, done, "exit")
        pdpt, pd = PML4 + 0x1000, PML4 + 0x2000
        m.memory.write_u64(PML4, pdpt | 0x7)  # present, writable, user
        m.memory.write_u64(pdpt, pd | 0x7)
        for j in range(512):  # the first GiB in 2 MiB pages
            m.memory.write_u64(pd + 8 * j, (j << 21) | 0x87)
        # null, -, kernel code 0x10, kernel data 0x18, user data 0x20, user code 0x28
        m.memory.write_struct(GDT, "<6Q", 0, 0, 0x00AF9A000000FFFF, 0x00CF92000000FFFF,
                              0x00CFF2000000FFFF, 0x00AFFA000000FFFF)
        gate = ((HANDLER & 0xFFFF) | (KERNEL_CS << 16) | (0xEE00 << 32)  # present, DPL 3
                | (((HANDLER >> 16) & 0xFFFF) << 48))                    # interrupt gate
        for vector in range(256):
            m.memory.write(IDT + 16 * vector, struct.pack("<QQ", gate, HANDLER >> 32))
        m.memory.write(CODE, code)
        m.memory.write(HANDLER, HANDLER_CODE)
        m.memory.write(USER, user)
        entry = long_mode64(CODE, TableRegister(GDT, 6 * 8 - 1), PML4, rsp=STACK)
        entry = replace(entry, idt=TableRegister(IDT, 16 * 256 - 1),
                        cr4=entry.cr4 | (1 << 18) | (1 << 9))  # OSXSAVE, OSFXSR
        m.backend.vcpu.fix_int3 = fix_int3
        if setup is not None:
            setup(m)
        result = m.run(entry, timeout=5)
        if done.values:
            return "ok", report.values
        return result.reason, report.values


def _hide_xsave(m: Machine) -> None:
    cpuid = m.backend.kvm.supported_cpuid()
    for e in cpuid.entries[:cpuid.nent]:
        if e.function == 1:
            e.ecx &= ~XSAVE_BIT
    m.backend.vcpu.set_cpuid2(cpuid)


# Debug-control probes (KVM_SET_GUEST_DEBUG), at CODE:
# 10000: 90        nop
# 10001: e6 80     out %al,$0x80
# 10003: 90        nop
# 10004: 89 04 25 00 01 01 00   mov %eax,0x10100 (HANDLER, a watched dword)
# 1000b: cc        int3
# 1000c: f4        hlt
DEBUG_CODE = bytes.fromhex("90" "e680" "90" "890425" "00010100" "cc" "f4")


def _debug_stops(control: DebugControl, limit: int = 6) -> list[tuple[str, int]]:
    """The exits of DEBUG_CODE under ``control``: ("debug", rip) or (exit class, rip)."""
    with Machine(memory_size=2 << 20, irqchip=False) as m:
        m.pio.register(REPORT_PORT, 1, _Port(), "report")
        m.memory.write(PML4, struct.pack("<Q", (PML4 + 0x1000) | 0x7))
        m.memory.write(PML4 + 0x1000, struct.pack("<Q", (PML4 + 0x2000) | 0x7))
        m.memory.write_u64(PML4 + 0x2000, 0x87)  # the first 2 MiB
        m.memory.write_struct(GDT, "<3Q", 0, 0, 0x00AF9A000000FFFF)
        m.memory.write(CODE, DEBUG_CODE)
        m.set_state(long_mode64(CODE, TableRegister(GDT, 3 * 8 - 1), PML4, rsp=STACK))
        m.set_debug(control)
        out: list[tuple[str, int]] = []
        with m.backend.running():
            for _ in range(limit):
                ex = m.backend.run()
                rip = m.get_state().rip
                out.append(("debug" if isinstance(ex, DebugStop) else type(ex).__name__, rip))
                if not isinstance(ex, DebugStop | IoExit):
                    break
        return out


def _debug_probes() -> dict[str, str]:
    results = {}
    stops = _debug_stops(DebugControl(single_step=True), limit=3)
    results["single step"] = "ok" if stops[0] == ("debug", CODE + 1) else f"stops {stops}"
    results["single step after an I/O exit"] = (
        "ok" if stops[1:] == [("IoExit", CODE + 3), ("debug", CODE + 4)]
        else "the step after an exiting instruction is reported one instruction late")
    stops = _debug_stops(DebugControl(breakpoints=(CODE + 3,)), limit=3)
    results["breakpoint (debug register)"] = (
        "ok" if stops[1] == ("debug", CODE + 3) else f"stops {stops}")
    results["resume from a breakpoint (RFLAGS.RF)"] = (
        "ok" if stops[2:] != [("debug", CODE + 3)]
        else "RF is ignored: the breakpoint fires again at the same RIP")
    stops = _debug_stops(DebugControl(watchpoints=((HANDLER, 4, "w"),)), limit=3)
    results["data watchpoint"] = ("ok" if ("debug", CODE + 0xB) in stops
                                  else "write watchpoints never fire")
    stops = _debug_stops(DebugControl(software_breakpoints=True), limit=3)
    results["int3 interception"] = ("ok" if stops[-1] == ("debug", CODE + 0xB)
                                    else f"stops {stops}")
    return results


def probe() -> dict[str, str]:
    """Probe name → ``"ok"`` or what went wrong."""
    results = {}
    results["xgetbv (XSAVE family)"] = _run(XGETBV)[0]
    for name, code, fix in (("int3", INT3, False), ("int3 with the backend's fix", INT3, True),
                            ("int $0x80", INT80, False)):
        outcome, cs = _run(code, fix_int3=fix)
        results[name] = outcome if outcome != "ok" or cs == [KERNEL_CS] else f"CS={cs}"
    outcome, cs = _run(SYSCALL_SETUP, user=SYSCALL_USER)
    if outcome == "ok" and cs != [KERNEL_CS]:
        outcome = (f"syscall entered LSTAR with CS={cs[0]:#x}, not {KERNEL_CS:#x}: "
                   "the CPL did not change")
    results["syscall from ring 3"] = outcome
    outcome, ecx = _run(CPUID_ECX, setup=_hide_xsave)
    if outcome == "ok" and ecx and ecx[0] & XSAVE_BIT:
        outcome = "KVM_SET_CPUID2 feature changes are ignored (XSAVE still reported)"
    results["CPUID feature masking"] = outcome
    results.update(_debug_probes())
    return results


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "kvm-probe", help="probe what this host's KVM can run",
        description=__doc__.splitlines()[2].strip())
    p.set_defaults(func=main)


def main(args: argparse.Namespace | None = None) -> int:
    try:
        results = probe()
    except MachineError as exc:
        raise CliError(str(exc)) from None
    width = max(len(name) for name in results)
    for name, outcome in results.items():
        print(f"{name:{width}}  {outcome}")
    return 0 if all(v == "ok" for v in results.values()) else 1
