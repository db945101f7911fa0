"""Crash reports: an Oops-style dump of a vCPU that ended in a triple fault or an error.

The layout follows what Linux prints for a kernel Oops on x86 (arch/x86/kernel/process_64.c
``__show_regs``, process_32.c, dumpstack.c ``show_opcodes``): the instruction pointer, a
``Code:`` line of the 42 bytes before it, the byte at it in ``<..>`` and 21 after it, the
registers, the top of the stack, then the code disassembled by x86vm as the kernel's
``scripts/decodecode`` shows it, the faulting instruction marked. The hidden part of the
segment registers, which an Oops cannot show but a monitor can, follows. Memory is read by
guest-virtual address through the guest's page tables (:mod:`x86vm.trace.paging`).
"""

from __future__ import annotations

from collections.abc import Callable

from x86vm.cpu.state import RegisterState, Segment, TableRegister
from x86vm.disasm.decodecode import OopsCode, decodecode
from x86vm.machine.backend import STATUS_INTERNAL_ERROR, RunResult
from x86vm.machine.memory import GuestMemory
from x86vm.trace.paging import (
    TranslationError,
    code_address,
    paging_mode,
    read_linear,
    stack_address,
)

PROLOGUE_SIZE = 42  # dumpstack.c: bytes shown before the instruction pointer
EPILOGUE_SIZE = 21  # ... and after the byte at it (OPCODE_BUFSIZE 64)
STACK_WORDS = 24  # kstack_depth_to_print
SHUTDOWN_PREFIX = "guest shut down"

ReadMemory = Callable[[int, int], bytes]


def is_crash(result: RunResult) -> bool:
    """A run that ended in a shutdown (triple fault) or on an internal error."""
    return result.status == STATUS_INTERNAL_ERROR or result.reason.startswith(SHUTDOWN_PREFIX)


def code_bits(state: RegisterState) -> int:
    """The default operand size of the code at RIP: 64, 32 or 16."""
    mode = state.mode
    if mode == "long64":
        return 64
    if mode in ("compat", "protected32"):
        return 32
    return 16


def _read(read: ReadMemory, address: int, length: int) -> bytes | None:
    try:
        return read(address, length)
    except TranslationError:
        return None


def _code(state: RegisterState, read: ReadMemory) -> tuple[str, bytes | None, int]:
    """The ``Code:`` words (Linux: prologue bytes, ``<ip byte>``, epilogue) and its bytes."""
    ip = code_address(state)
    for before in (PROLOGUE_SIZE, 0):  # the prologue may cross into an unmapped page
        data = _read(read, ip - before, before + 1 + EPILOGUE_SIZE)
        if data is not None:
            words = [f"<{b:02x}>" if i == before else f"{b:02x}" for i, b in enumerate(data)]
            return " ".join(words), data, before
    return "", None, 0


def _hex(value: int, bits: int) -> str:
    return f"{value & ((1 << bits) - 1):0{bits // 4}x}"


def _registers(state: RegisterState, bits: int) -> list[str]:
    g = state.gpr
    if bits == 64:
        lines = [f"RSP: {state.ss.selector:04x}:{_hex(g('rsp'), 64)} "
                 f"EFLAGS: {_hex(state.rflags, 32)}"]
        names = ("RAX", "RBX", "RCX", "RDX", "RSI", "RDI", "RBP", "R08", "R09", "R10", "R11",
                 "R12", "R13", "R14", "R15")
        for i in range(0, len(names), 3):
            lines.append(" ".join(f"{n}: {_hex(g(n.lower().replace('r0', 'r')), 64)}"
                                  for n in names[i:i + 3]))
        lines.append(f"FS:  {_hex(state.fs.base, 64)}({state.fs.selector:04x}) "
                     f"GS:{_hex(state.gs.base, 64)}({state.gs.selector:04x}) "
                     f"knlGS:{_hex(state.msrs.get(0xC0000102, 0), 64)}")
        lines.append(f"CS:  {state.cs.selector:04x} DS: {state.ds.selector:04x} "
                     f"ES: {state.es.selector:04x} CR0: {_hex(state.cr0, 64)}")
        lines.append(f"CR2: {_hex(state.cr2, 64)} CR3: {_hex(state.cr3, 64)} "
                     f"CR4: {_hex(state.cr4, 64)}")
        width = 64
    else:
        names32 = ("EAX", "EBX", "ECX", "EDX", "ESI", "EDI", "EBP", "ESP")
        lines = [" ".join(f"{n}: {_hex(g('r' + n[1:].lower()), 32)}" for n in names32[:4]),
                 " ".join(f"{n}: {_hex(g('r' + n[1:].lower()), 32)}" for n in names32[4:]),
                 f"DS: {state.ds.selector:04x} ES: {state.es.selector:04x} "
                 f"FS: {state.fs.selector:04x} GS: {state.gs.selector:04x} "
                 f"SS: {state.ss.selector:04x} EFLAGS: {_hex(state.rflags, 32)}",
                 f"CR0: {_hex(state.cr0, 32)} CR2: {_hex(state.cr2, 32)} "
                 f"CR3: {_hex(state.cr3, 32)} CR4: {_hex(state.cr4, 32)}"]
        width = 32
    dr = state.dr
    if len(dr) == 6 and (any(dr[:4]) or dr[4] != 0xFFFF0FF0 or dr[5] != 0x400):
        lines.append(" ".join(f"DR{i}: {_hex(v, width)}" for i, v in enumerate(dr[:4])))
        lines.append(f"DR6: {_hex(dr[4], width)} DR7: {_hex(dr[5], width)}")
    return lines


def _segment(name: str, s: Segment) -> str:
    return (f"{name.upper():4} {s.selector:04x} base={s.base:016x} limit={s.limit:08x} "
            f"type={s.type:x} s={s.s} dpl={s.dpl} p={s.present} db={s.db} l={s.l} g={s.g}"
            + (" unusable" if s.unusable else ""))


def _table(name: str, t: TableRegister) -> str:
    return f"{name.upper():4}      base={t.base:016x} limit={t.limit:08x}"


def _stack(state: RegisterState, read: ReadMemory, bits: int) -> list[str]:
    size = 8 if bits == 64 else 4
    per_line = 4 if bits == 64 else 8
    top = stack_address(state)
    try:
        data = read(top, STACK_WORDS * size)
    except TranslationError as exc:  # the words up to the first unmapped one
        partial = getattr(exc, "partial", b"")
        data = partial[: len(partial) // size * size]
    if not data:
        return [f"Stack: unreadable at {top:#x}"]
    words = [int.from_bytes(data[i:i + size], "little") for i in range(0, len(data), size)]
    lines = ["Stack:"]
    for i in range(0, len(words), per_line):
        lines.append(" " + " ".join(_hex(w, size * 8) for w in words[i:i + per_line]))
    return lines


def crash_report(state: RegisterState, read: ReadMemory, reason: str) -> str:
    """The report for a vCPU in ``state``; ``read(linear, length)`` reads guest memory by
    linear address (raising :class:`TranslationError` where nothing is mapped)."""
    bits = code_bits(state)
    ip_name = "RIP" if bits == 64 else "EIP"
    words, data, before = _code(state, read)
    lines = [f"x86vm: guest crashed: {reason}",
             f"CPU mode: {state.mode} ({bits}-bit code), paging: {paging_mode(state)}",
             f"{ip_name}: {state.cs.selector:04x}:0x{_hex(state.rip, 64 if bits == 64 else 32)}"]
    ip = code_address(state)
    lines.append(f"Code: {words}" if data is not None
                 else f"Code: Unable to access opcode bytes at 0x{ip:x}.")
    lines += _registers(state, bits)
    lines += _stack(state, read, bits)
    lines += [_segment(n, getattr(state, n)) for n in ("cs", "ss", "ds", "es", "fs", "gs",
                                                         "tr", "ldt")]
    lines += [_table("gdt", state.gdt), _table("idt", state.idt)]
    lines.append(f"EFER: {state.efer:016x}")
    text = "\n".join(lines) + "\n"
    if data is not None:
        oops = OopsCode(line=f"Code: {words}", code=words, width=1,
                        mode=64 if bits == 64 else 32 if bits == 32 else 16, pc=ip)
        listing = decodecode(oops, exact=True)
        text += listing.split("\n", 1)[1]  # without the Code: line echoed again
    return text


def memory_reader(memory: GuestMemory, state: RegisterState) -> ReadMemory:
    """``read(linear, length)`` through ``state``'s page tables."""
    return lambda linear, length: read_linear(memory, state, linear, length)


def vcpu_state(backend: object) -> RegisterState | None:
    """The vCPU's registers from ``backend.get_state()``; for a KVM backend that does not
    implement it yet, from ``KVM_GET_REGS``/``KVM_GET_SREGS`` directly. None if neither works."""
    get_state = getattr(backend, "get_state", None)
    if get_state is not None:
        try:
            return get_state()
        except (NotImplementedError, AttributeError):
            pass
    vcpu = getattr(backend, "vcpu", None)
    if vcpu is None or not hasattr(vcpu, "get_sregs"):
        return None
    try:
        regs, sregs = vcpu.get_regs(), vcpu.get_sregs()
    except OSError:
        return None
    from x86vm.cpu.state import GPR_NAMES

    def segment(k: object) -> Segment:
        return Segment(selector=k.selector, base=k.base, limit=k.limit, type=k.type, s=k.s,
                       dpl=k.dpl, present=k.present, db=k.db, l=k.l, g=k.g, avl=k.avl,
                       unusable=k.unusable)

    return RegisterState(
        rip=regs.rip, gprs={n: getattr(regs, n) for n in GPR_NAMES}, rflags=regs.rflags,
        cs=segment(sregs.cs), ds=segment(sregs.ds), es=segment(sregs.es),
        fs=segment(sregs.fs), gs=segment(sregs.gs), ss=segment(sregs.ss),
        tr=segment(sregs.tr), ldt=segment(sregs.ldt),
        gdt=TableRegister(sregs.gdt.base, sregs.gdt.limit),
        idt=TableRegister(sregs.idt.base, sregs.idt.limit),
        cr0=sregs.cr0, cr2=sregs.cr2, cr3=sregs.cr3, cr4=sregs.cr4, cr8=sregs.cr8,
        efer=sregs.efer)


def report_for_run(backend: object, memory: GuestMemory, result: RunResult) -> str | None:
    """The crash report for a finished run, or None if it did not crash (or no state)."""
    if not is_crash(result):
        return None
    state = vcpu_state(backend)
    if state is None:
        return None
    return crash_report(state, memory_reader(memory, state), result.reason)
