"""The registers gdb sees: a target description and the ``g`` packet layout that follows it.

The features are gdb's x86 ones (gdb manual, "Standard Target Features" > "i386 Features"):
``org.gnu.gdb.i386.core`` (general registers, ``eflags``, the six selectors, the x87 stack and
control registers, in that order), ``org.gnu.gdb.i386.sse`` (xmm, ``mxcsr``) and
``org.gnu.gdb.i386.segments`` (``fs_base``, ``gs_base``); a last feature ``x86vm.control``
adds CR0, CR2, CR3, CR4, CR8 and EFER. The description follows the mode the guest is in when
gdb connects: amd64 in long mode, i386 in protected mode, i8086 in real mode (i386 registers).
The x87/SSE registers come from :attr:`RegisterState.fpu` (the emu backend fills it); where it
is None (KVM) they read as unavailable (``x``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from x86vm.cpu.state import RegisterState, Segment

AMD64_GPRS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
              "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
I386_GPRS = ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi")
SELECTORS = ("cs", "ss", "ds", "es", "fs", "gs")
X87 = (*(f"st{i}" for i in range(8)), "fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg",
       "fooff", "fop")
_FPU_FIELDS = {"fctrl": "fcw", "fstat": "fsw", "ftag": "ftw", "fiseg": "fcs", "fioff": "fip",
               "foseg": "fds", "fooff": "fdp", "fop": "fop", "mxcsr": "mxcsr"}
CONTROL = ("cr0", "cr2", "cr3", "cr4", "cr8", "efer")


@dataclass(frozen=True)
class Reg:
    name: str
    bits: int
    type: str
    feature: str
    group: str = ""


def layout(arch: str) -> tuple[Reg, ...]:
    """The registers of ``arch`` ("amd64", "i386", "i8086") in ``g`` packet order."""
    wide = arch == "amd64"
    core, sse = "org.gnu.gdb.i386.core", "org.gnu.gdb.i386.sse"
    word = 64 if wide else 32
    regs: list[Reg] = []
    for name in AMD64_GPRS if wide else I386_GPRS:
        kind = "data_ptr" if name in ("rsp", "rbp", "esp", "ebp") else f"int{word}"
        regs.append(Reg(name, word, kind, core, "general"))
    regs.append(Reg("rip" if wide else "eip", word, "code_ptr", core, "general"))
    regs.append(Reg("eflags", 32, "int32", core, "general"))
    regs += [Reg(s, 32, "int32", core, "general") for s in SELECTORS]
    regs += [Reg(n, 80 if n.startswith("st") else 32, "i387_ext" if n.startswith("st")
                 else "int32", core, "float") for n in X87]
    regs += [Reg(f"xmm{i}", 128, "vec128", sse, "vector") for i in range(16 if wide else 8)]
    regs.append(Reg("mxcsr", 32, "int32", sse, "vector"))
    regs += [Reg(n, word, "int64" if wide else "int32", "org.gnu.gdb.i386.segments",
                 "system") for n in ("fs_base", "gs_base")]
    regs += [Reg(n, 64, "int64", "x86vm.control", "system") for n in CONTROL]
    return tuple(regs)


_VEC128 = """<vector id="v4f" type="ieee_single" count="4"/>
<vector id="v2d" type="ieee_double" count="2"/>
<vector id="v16i8" type="int8" count="16"/>
<vector id="v8i16" type="int16" count="8"/>
<vector id="v4i32" type="int32" count="4"/>
<vector id="v2i64" type="int64" count="2"/>
<union id="vec128">
<field name="v4_float" type="v4f"/><field name="v2_double" type="v2d"/>
<field name="v16_int8" type="v16i8"/><field name="v8_int16" type="v8i16"/>
<field name="v4_int32" type="v4i32"/><field name="v2_int64" type="v2i64"/>
<field name="uint128" type="uint128"/>
</union>
"""


def target_xml(arch: str) -> str:
    """The ``target.xml`` gdb reads with ``qXfer:features:read`` (gdb manual, "Target
    Description Format")."""
    architecture = {"amd64": "i386:x86-64", "i386": "i386", "i8086": "i8086"}[arch]
    out = ['<?xml version="1.0"?>', '<!DOCTYPE target SYSTEM "gdb-target.dtd">',
           "<target>", f"<architecture>{architecture}</architecture>"]
    current = None
    for index, reg in enumerate(layout(arch)):
        if reg.feature != current:
            if current is not None:
                out.append("</feature>")
            out.append(f'<feature name="{reg.feature}">')
            if reg.feature == "org.gnu.gdb.i386.sse":
                out.append(_VEC128.strip())
            current = reg.feature
        group = f' group="{reg.group}"' if reg.group else ""
        out.append(f'<reg name="{reg.name}" bitsize="{reg.bits}" type="{reg.type}" '
                   f'regnum="{index}"{group}/>')
    out += ["</feature>", "</target>"]
    return "\n".join(out) + "\n"


def arch_for(state: RegisterState) -> str:
    mode = state.mode
    if mode in ("long64", "compat"):
        return "amd64"
    return "i8086" if mode in ("real", "vm86") else "i386"


def _gpr_key(name: str) -> str:
    return "r" + name[1:] if name.startswith("e") and len(name) == 3 else name


def read_register(state: RegisterState, reg: Reg) -> int | None:
    """The value gdb sees for ``reg``, or None when the state does not hold it."""
    name = reg.name
    if name in ("rip", "eip"):
        return state.rip
    if name == "eflags":
        return state.rflags & 0xFFFFFFFF
    if name in SELECTORS:
        return getattr(state, name).selector
    if name == "fs_base":
        return state.fs.base
    if name == "gs_base":
        return state.gs.base
    if name in CONTROL:
        return getattr(state, name)
    if reg.feature == "org.gnu.gdb.i386.core" and reg.group == "general":
        return state.gpr(_gpr_key(name))
    fpu = state.fpu
    if fpu is not None:
        if name in _FPU_FIELDS:
            return getattr(fpu, _FPU_FIELDS[name])
        if name.startswith("st"):
            return fpu.st[int(name[2:])]
        if name.startswith("xmm"):
            return fpu.xmm[int(name[3:])]
    return None


def write_register(state: RegisterState, reg: Reg, value: int) -> RegisterState:
    """``state`` with ``reg`` set to ``value`` (registers it does not hold are ignored)."""
    name = reg.name
    if name in ("rip", "eip"):
        return replace(state, rip=value)
    if name == "eflags":
        return replace(state, rflags=(state.rflags & ~0xFFFFFFFF) | value | 0x2)
    if name in SELECTORS:
        return replace(state, **{name: replace(getattr(state, name), selector=value & 0xFFFF)})
    if name in ("fs_base", "gs_base"):
        seg: Segment = getattr(state, name[:2])
        return replace(state, **{name[:2]: replace(seg, base=value)})
    if name in CONTROL:
        return replace(state, **{name: value})
    if reg.feature == "org.gnu.gdb.i386.core" and reg.group == "general":
        key = _gpr_key(name)
        if reg.bits == 32:  # a 32-bit write keeps nothing above (as the CPU does)
            value &= 0xFFFFFFFF
        return state.with_gprs(**{key: value})
    fpu = state.fpu
    if fpu is not None:
        if name in _FPU_FIELDS:
            return replace(state, fpu=replace(fpu, **{_FPU_FIELDS[name]: value}))
        if name.startswith("st") or name.startswith("xmm"):
            field, i = ("st", int(name[2:])) if name.startswith("st") else ("xmm", int(name[3:]))
            values = list(getattr(fpu, field))
            values[i] = value
            return replace(state, fpu=replace(fpu, **{field: tuple(values)}))
    return state


def encode(value: int | None, bits: int) -> str:
    size = bits // 8
    if value is None:
        return "xx" * size
    return (value & ((1 << bits) - 1)).to_bytes(size, "little").hex()


def decode(text: str) -> int | None:
    if "x" in text:
        return None
    return int.from_bytes(bytes.fromhex(text), "little")


def g_packet(state: RegisterState, regs: tuple[Reg, ...]) -> str:
    return "".join(encode(read_register(state, r), r.bits) for r in regs)


def apply_g_packet(state: RegisterState, regs: tuple[Reg, ...], text: str) -> RegisterState:
    pos = 0
    for reg in regs:
        chunk = text[pos:pos + reg.bits // 4]
        pos += reg.bits // 4
        if len(chunk) < reg.bits // 4:
            break
        value = decode(chunk)
        if value is not None and read_register(state, reg) is not None:
            state = write_register(state, reg, value)
    return state
