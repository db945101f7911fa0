"""Random user-mode instruction cases per instruction family, for the host-CPU differential.

Each family draws an instruction text (AT&T, as GNU as reads it) and the registers, flags and
scratch memory it starts from. Register values mix edge values (0, 1, all ones, sign bits)
with random ones; memory operands address the harness's scratch area through %rbx.
"""

from __future__ import annotations

import random

from cpu.hostcpu import MEM_BASE, MEM_SIZE, Case, draw_cases

EDGE = (0, 1, 2, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000,
        0xFFFFFFFF, 0x7FFFFFFFFFFFFFFF, 0x8000000000000000, 0xFFFFFFFFFFFFFFFF)
REGS = {8: ("rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
            "r14", "r15"),
        4: ("eax", "ecx", "edx", "esi", "edi", "r8d", "r9d", "r10d", "r11d", "r13d", "r15d"),
        2: ("ax", "cx", "dx", "si", "di", "r8w", "r9w", "r10w", "r12w"),
        1: ("al", "cl", "dl", "ah", "ch", "dh", "sil", "dil", "r8b", "r11b")}
REGS32 = {4: ("eax", "ecx", "edx", "esi", "edi", "ebp"), 2: ("ax", "cx", "dx", "si", "di", "bp"),
          1: ("al", "cl", "dl", "ah", "ch", "dh")}
SUFFIX = {1: "b", 2: "w", 4: "l", 8: "q"}
_BITS = [64]   # the code size cases are generated for (set by generate)


def _regs_of() -> dict:
    return REGS if _BITS[0] == 64 else REGS32


def _size(rng: random.Random, sizes: tuple) -> int:
    return rng.choice([s for s in sizes if s != 8 or _BITS[0] == 64])


def _w(text64: str, text32: str) -> str:
    return text64 if _BITS[0] == 64 else text32
GPR_FULL = ("rax", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12", "r13",
            "r14", "r15")
CONDITIONS = ("o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge",
              "le", "g")


def value(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.35:
        return rng.choice(EDGE)
    if r < 0.5:
        return rng.randrange(0, 256)
    return rng.getrandbits(64)


def regs(rng: random.Random) -> dict[str, int]:
    out = {r: value(rng) for r in GPR_FULL}
    out["rbx"] = MEM_BASE + 0x800      # the memory operand base
    return out


def flags(rng: random.Random) -> int:
    return 0x202 | (rng.getrandbits(12) & 0x8D5)


def memory(rng: random.Random) -> bytes:
    return rng.randbytes(MEM_SIZE)


def _reg(rng, size):
    return "%" + rng.choice(_regs_of()[size])


def _mem(rng, size):
    base = _w("%rbx", "%ebx")
    return f"{rng.randrange(-0x400, 0x400, 1 if size == 1 else size)}({base})"


def _case(rng, text):
    return Case(text, regs(rng), flags(rng), memory(rng))


def _incompatible(*ops: str) -> bool:
    """ah..dh cannot be encoded with a REX prefix (new 8-bit registers, sil, dil)."""
    high = any(o in ("%ah", "%ch", "%dh", "%bh") for o in ops)
    rex = any(o.startswith("%r") or o in ("%sil", "%dil", "%spl", "%bpl") for o in ops)
    return high and rex


def alu(rng: random.Random) -> Case:
    op = rng.choice(("add", "sub", "adc", "sbb", "and", "or", "xor", "cmp", "test"))
    size = _size(rng, (1, 2, 4, 8))
    kind = rng.random()
    while True:
        dst = _reg(rng, size)
        if kind < 0.45:
            src = _reg(rng, size)
        elif kind < 0.8:
            imm = rng.choice((0, 1, 0x7F, 0x80, 0xFF, rng.getrandbits(8 * min(size, 4))))
            if size >= 4 and imm >= 0x80000000:
                imm -= 1 << 32
            src = f"${imm}" if not (size == 1 and imm > 0xFF) else f"${imm & 0xFF}"
            if size == 2:
                src = f"${imm & 0xFFFF}" if imm >= 0 else f"${imm}"
        else:
            src = _reg(rng, size)
            if op == "test":
                dst = _mem(rng, size)
            else:
                src, dst = (_mem(rng, size), dst) if rng.random() < 0.5 else (src, _mem(rng, size))
        if not _incompatible(src, dst):
            break
    return _case(rng, f"{op}{SUFFIX[size]} {src}, {dst}")


def unary(rng: random.Random) -> Case:
    op = rng.choice(("inc", "dec", "neg", "not"))
    size = _size(rng, (1, 2, 4, 8))
    dst = _reg(rng, size) if rng.random() < 0.7 else _mem(rng, size)
    return _case(rng, f"{op}{SUFFIX[size]} {dst}")


def shift(rng: random.Random) -> Case:
    op = rng.choice(("shl", "shr", "sar", "rol", "ror", "rcl", "rcr", "shld", "shrd"))
    if op in ("shld", "shrd"):
        size = _size(rng, (2, 4, 8))
        src, dst = _reg(rng, size), _reg(rng, size) if rng.random() < 0.8 else _mem(rng, size)
        if dst in ("%cx", "%ecx", "%rcx") or src in ("%cx", "%ecx", "%rcx"):
            src, dst = f"%{_regs_of()[size][0]}", _mem(rng, size)
        # a 16-bit operand shifted by more than 16 is undefined (SDM "SHLD", "SHRD")
        top = 17 if size == 2 else 64
        count = f"${rng.randrange(0, top)}" if rng.random() < 0.5 else "%cl"
        case = _case(rng, f"{op}{SUFFIX[size]} {count}, {src}, {dst}")
        case.regs["rcx"] = (case.regs["rcx"] & ~0xFF) | rng.randrange(0, top)
        return case
    size = _size(rng, (1, 2, 4, 8))
    dst = _reg(rng, size) if rng.random() < 0.8 else _mem(rng, size)
    form = rng.random()
    if form < 0.3:
        text = f"{op}{SUFFIX[size]} {dst}"
    elif form < 0.6:
        text = f"{op}{SUFFIX[size]} ${rng.randrange(0, 64)}, {dst}"
    else:
        if dst in ("%cl", "%ch", "%cx", "%ecx", "%rcx"):
            dst = _mem(rng, size)
        text = f"{op}{SUFFIX[size]} %cl, {dst}"
    case = _case(rng, text)
    case.regs["rcx"] = (case.regs["rcx"] & ~0xFF) | rng.randrange(0, 70)
    return case


def muldiv(rng: random.Random) -> Case:
    op = rng.choice(("mul", "imul", "imul2", "imul3", "div", "idiv"))
    size = _size(rng, (1, 2, 4, 8))
    case = _case(rng, "")
    while True:
        src = _reg(rng, size)
        if src[1:] not in ("al", "ah", "ax", "eax", "rax", "dl", "dh", "dx", "edx", "rdx"):
            break
    if op == "imul2" and size > 1:
        case.text = f"imul{SUFFIX[size]} {src}, {_reg(rng, size)}"
        if _incompatible(*case.text.replace(",", "").split()[1:]):
            case.text = f"imul{SUFFIX[size]} {src}, %{_regs_of()[size][0]}"
    elif op == "imul3" and size > 1:
        case.text = f"imul{SUFFIX[size]} ${rng.randrange(-128, 128)}, {src}, %{_regs_of()[size][1]}"
    elif op in ("div", "idiv"):
        case.text = f"{op}{SUFFIX[size]} {src}"
        d = rng.getrandbits(8 * size) or 1
        full = _full(src)
        case.regs[full] = (case.regs[full] & ~((1 << (8 * size)) - 1)) | d
        if src[1:] in ("ah", "ch", "dh", "bh"):
            case.regs[full] = (case.regs[full] & ~0xFF00) | (d << 8)
        # keep the quotient in range: a high half below the divisor
        if op == "div":
            hi = rng.randrange(0, d)
        else:
            hi = 0 if rng.random() < 0.5 else (1 << (8 * size)) - 1
        if size == 1:
            case.regs["rax"] = (case.regs["rax"] & ~0xFF00) | (hi << 8)
            if op == "idiv":
                case.regs["rax"] = (case.regs["rax"] & ~0xFFFF) | rng.randrange(0, 0x40)
        else:
            case.regs["rdx"] = (case.regs["rdx"] & ~((1 << (8 * size)) - 1)) | hi
            if op == "idiv":
                lo = rng.getrandbits(8 * size - 2)
                if hi:
                    lo = (1 << (8 * size)) - 1 - lo
                case.regs["rax"] = (case.regs["rax"] & ~((1 << (8 * size)) - 1)) | lo
                case.regs[full] = (case.regs[full] & ~((1 << (8 * size)) - 1)) | \
                    (d | (1 << (8 * size - 3)))
    else:
        case.text = f"{op.rstrip('23')}{SUFFIX[size]} {src}"
    return case


_FULL = {"al": "rax", "cl": "rcx", "dl": "rdx", "ah": "rax", "ch": "rcx", "dh": "rdx",
         "sil": "rsi", "dil": "rdi", "ax": "rax", "cx": "rcx", "dx": "rdx", "si": "rsi",
         "di": "rdi", "eax": "rax", "ecx": "rcx", "edx": "rdx", "esi": "rsi", "edi": "rdi",
         "bp": "rbp", "ebp": "rbp", "bl": "rbx", "bh": "rbx", "bx": "rbx", "ebx": "rbx"}


def _full(reg: str) -> str:
    """The 64-bit register holding ``reg`` (%r9d → r9)."""
    name = reg[1:]
    if name in _FULL:
        return _FULL[name]
    if name.startswith("r"):
        digits = "".join(ch for ch in name[1:] if ch.isdigit())
        if digits:
            return f"r{digits}"
    return name


def bits(rng: random.Random) -> Case:
    op = rng.choice(("bt", "bts", "btr", "btc", "bsf", "bsr", "popcnt", "lzcnt", "tzcnt",
                     "bswap"))
    size = _size(rng, (2, 4, 8))
    if op == "bswap":
        size = _size(rng, (4, 8))
        return _case(rng, f"bswap {_reg(rng, size)}")
    if op.startswith("bt"):
        if rng.random() < 0.5:
            return _case(rng, f"{op}{SUFFIX[size]} ${rng.randrange(0, 256)}, {_reg(rng, size)}")
        dst = _reg(rng, size) if rng.random() < 0.6 else _mem(rng, size)
        case = _case(rng, f"{op}{SUFFIX[size]} %{_regs_of()[size][2]}, {dst}")
        if "(" in dst:  # a register bit offset reaches beyond the operand: keep it in memory
            case.regs["rdx"] = rng.randrange(-0x1000, 0x1000) & ((1 << 64) - 1)
            if size == 2:
                case.regs["rdx"] = rng.randrange(-0x1000, 0x1000) & 0xFFFF
        return case
    src = _reg(rng, size) if rng.random() < 0.7 else _mem(rng, size)
    case = _case(rng, f"{op}{SUFFIX[size]} {src}, {_reg(rng, size)}")
    if rng.random() < 0.2 and not src.endswith(")"):
        case.regs[_full(src)] = 0
    return case


def moves(rng: random.Random) -> Case:
    kind = rng.choice(("movzx", "movsx", "cmov", "set", "xchg", "xadd", "cmpxchg", "lea",
                       "cwd", "lahf", "sahf", "mov"))
    if kind == "movsx" and _BITS[0] == 64 and rng.random() < 0.25:
        return _case(rng, f"movslq {_reg(rng, 4)}, {_reg(rng, 8)}")
    if kind in ("movzx", "movsx"):
        src_size = rng.choice((1, 2))
        dst_size = _size(rng, tuple(s for s in (2, 4, 8) if s > src_size))
        src = _reg(rng, src_size) if rng.random() < 0.7 else _mem(rng, src_size)
        dst = _reg(rng, dst_size)
        if _incompatible(src, dst):
            src = "%al"
        letter = "z" if kind == "movzx" else "s"
        return _case(rng, f"mov{letter}{SUFFIX[src_size]}{SUFFIX[dst_size]} {src}, {dst}")
    if kind == "cmov":
        size = _size(rng, (2, 4, 8))
        src = _reg(rng, size) if rng.random() < 0.7 else _mem(rng, size)
        return _case(rng, f"cmov{rng.choice(CONDITIONS)}{SUFFIX[size]} {src}, "
                          f"{_reg(rng, size)}")
    if kind == "set":
        dst = _reg(rng, 1) if rng.random() < 0.7 else _mem(rng, 1)
        return _case(rng, f"set{rng.choice(CONDITIONS)} {dst}")
    if kind in ("xchg", "xadd", "cmpxchg"):
        size = _size(rng, (1, 2, 4, 8))
        a = _reg(rng, size)
        b = _reg(rng, size) if rng.random() < 0.5 else _mem(rng, size)
        if _incompatible(a, b):
            a, b = f"%{_regs_of()[size][0]}", _mem(rng, size)
        return _case(rng, f"{kind}{SUFFIX[size]} {a}, {b}")
    if kind == "lea":
        size = _size(rng, (2, 4, 8))
        scale = rng.choice((1, 2, 4, 8))
        return _case(rng, f"lea{SUFFIX[size]} {rng.randrange(-2**31, 2**31)}"
                          f"({_w('%rsi,%rdi', '%esi,%edi')},{scale}), {_reg(rng, size)}")
    if kind == "cwd":
        return _case(rng, rng.choice(_w(("cbtw", "cwtl", "cltq", "cwtd", "cltd", "cqto"),
                                        ("cbtw", "cwtl", "cwtd", "cltd"))))
    if kind in ("lahf", "sahf"):
        return _case(rng, kind)
    size = _size(rng, (1, 2, 4, 8))
    src = _reg(rng, size) if rng.random() < 0.5 else _mem(rng, size)
    dst = _reg(rng, size) if "(" in src or rng.random() < 0.5 else _mem(rng, size)
    if _incompatible(src, dst):
        src = "%" + _regs_of()[size][0]
    return _case(rng, f"mov{SUFFIX[size]} {src}, {dst}")


def strings(rng: random.Random) -> Case:
    op = rng.choice(("movs", "stos", "lods", "cmps", "scas"))
    size = _size(rng, (1, 2, 4, 8))
    rep = rng.choice(("", "rep ", "repe ", "repne ")) if op in ("cmps", "scas") else \
        rng.choice(("", "rep "))
    if op == "lods":
        rep = ""
    case = _case(rng, f"{rep}{op}{SUFFIX[size]}")
    case.regs["rsi"] = MEM_BASE + 0x400 + rng.randrange(0, 0x100)
    case.regs["rdi"] = MEM_BASE + 0x800 + rng.randrange(0, 0x100)
    case.regs["rcx"] = rng.randrange(0, 40)
    if op == "movs" and rng.random() < 0.25:   # overlapping source and destination
        case.regs["rdi"] = case.regs["rsi"] + rng.randrange(-12, 13)
    case.rflags = (case.rflags & ~0x400) | (0x400 if rng.random() < 0.3 else 0)
    if case.rflags & 0x400:
        case.regs["rsi"] += 0x300
        case.regs["rdi"] += 0x300
    if op in ("cmps", "scas") and rng.random() < 0.5:
        mem = bytearray(case.memory)
        mem[0x400:0x500] = mem[0x800:0x900]
        case.memory = bytes(mem)
    return case


def stack(rng: random.Random) -> Case:
    op = rng.choice(("push", "pop", "pushf", "popf", "enter", "leave"))
    w = _w("q", "l")
    if op in ("push", "pop") and rng.random() < 0.3:   # 16-bit operand size
        target = rng.choice(("%ax", "%r9w" if _BITS[0] == 64 else "%cx", _mem(rng, 2)))
        if op == "push" and rng.random() < 0.3:
            target = f"${rng.randrange(-0x8000, 0x8000)}"
        return _case(rng, f"{op}w {target}")
    if op == "push":
        src = rng.choice((_w("%rax", "%eax"), _w("%r9", "%ecx"), "$-5", "$0x12345678",
                          _mem(rng, 8 if w == "q" else 4)))
        return _case(rng, f"push{w} {src}")
    if op == "pop":
        dst = rng.choice((_w("%rax", "%eax"), _w("%r10", "%edx"), _mem(rng, 8 if w == "q" else 4)))
        return _case(rng, f"pop{w} {dst}")
    if op == "pushf":
        return _case(rng, f"pushf{w}")
    if op == "popf":
        case = _case(rng, f"popf{w}")
        # a flags image with only the user-changeable arithmetic bits and DF
        mem = bytearray(case.memory)
        image = 0x202 | (rng.getrandbits(12) & 0xCD5)
        mem[0xD00:0xD08] = image.to_bytes(8, "little")
        case.memory = bytes(mem)
        case.regs["rsp"] = MEM_BASE + 0xD00
        return case
    if op == "enter":
        return _case(rng, f"enter ${rng.randrange(0, 64)}, $0")
    if op == "leave":
        case = _case(rng, "leave")
        case.regs["rbp"] = MEM_BASE + 0x600 + 8 * rng.randrange(0, 64)
        return case
    return _case(rng, "leave")


def sequence(rng: random.Random) -> Case:
    """Three to six register instructions in a row (one translated block): flags pass
    from one to the next (adc/sbb, inc/dec keeping CF, setcc/cmovcc reading them)."""
    parts = []
    for _ in range(rng.randrange(3, 7)):
        kind = rng.random()
        if kind < 0.45:
            parts.append(alu(rng).text)
        elif kind < 0.65:
            size = _size(rng, (1, 2, 4, 8))
            parts.append(f"{rng.choice(('inc', 'dec', 'neg'))}{SUFFIX[size]} {_reg(rng, size)}")
        elif kind < 0.68:
            parts.append(f"set{rng.choice(CONDITIONS)} {_reg(rng, 1)}")
        elif kind < 0.72:
            parts.append(rng.choice(("clc", "stc", "cmc")))
        elif kind < 0.8:   # interpreted in the middle of a block: CF/OF by 1-bit rotates
            size = _size(rng, (1, 2, 4, 8))
            parts.append(f"{rng.choice(('rol', 'ror', 'rcl', 'rcr'))}{SUFFIX[size]} "
                         f"{_reg(rng, size)}")
        else:
            size = _size(rng, (2, 4, 8))
            parts.append(f"cmov{rng.choice(CONDITIONS)}{SUFFIX[size]} {_reg(rng, size)}, "
                         f"{_reg(rng, size)}")
    return _case(rng, "; ".join(parts))


def bmi(rng: random.Random) -> Case:
    """BMI1/BMI2/ADX/MOVBE (the host has them; CPUID says the emulator does)."""
    op = rng.choice(("andn", "bextr", "blsi", "blsmsk", "blsr", "bzhi", "mulx", "pdep",
                     "pext", "rorx", "sarx", "shlx", "shrx", "adcx", "adox", "movbe"))
    size = _size(rng, (4, 8))
    regs3 = [_reg(rng, size) for _ in range(3)]
    if op in ("blsi", "blsmsk", "blsr", "adcx", "adox"):
        src = regs3[0] if rng.random() < 0.7 else _mem(rng, size)
        case = _case(rng, f"{op} {src}, {regs3[1]}")
    elif op == "rorx":
        case = _case(rng, f"rorx ${rng.randrange(0, 64)}, {regs3[0]}, {regs3[1]}")
    elif op == "movbe":
        mem = _mem(rng, size)
        text = f"movbe {mem}, {regs3[0]}" if rng.random() < 0.5 else \
            f"movbe {regs3[0]}, {mem}"
        case = _case(rng, text)
    elif op in ("andn", "pdep", "pext", "mulx"):   # AT&T: r/m, vvvv, destination
        src = regs3[0] if rng.random() < 0.7 else _mem(rng, size)
        case = _case(rng, f"{op} {src}, {regs3[1]}, {regs3[2]}")
    else:                                          # AT&T: vvvv, r/m, destination
        src = regs3[1] if rng.random() < 0.7 else _mem(rng, size)
        case = _case(rng, f"{op} {regs3[0]}, {src}, {regs3[2]}")
    if op in ("bextr", "bzhi") and rng.random() < 0.7:   # a control value in range
        full = _full(regs3[0])
        case.regs[full] = rng.randrange(0, 72) | (rng.randrange(0, 72) << 8)
    return case


def misc(rng: random.Random) -> Case:
    """CMPXCHG8B/16B, XLAT, ENTER with nesting, and (32-bit code) BCD and PUSHA/POPA."""
    choices = ["cmpxchg8b", "xlat", "enter"]
    if _BITS[0] == 64:
        choices.append("cmpxchg16b")
    else:
        choices += ["daa", "das", "aaa", "aas", "aam", "aad", "pusha", "popa"]
    op = rng.choice(choices)
    if op in ("cmpxchg8b", "cmpxchg16b"):
        case = _case(rng, f"{op} {16 * rng.randrange(-32, 32)}({_w('%rbx', '%ebx')})")
        if rng.random() < 0.5:   # make the comparison succeed
            mem = bytearray(case.memory)
            half = 8 if op == "cmpxchg16b" else 4
            at = 0x800 + int(case.text.split()[1].split("(")[0])
            lo = case.regs["rax"] & ((1 << (8 * half)) - 1)
            hi = case.regs["rdx"] & ((1 << (8 * half)) - 1)
            mem[at:at + 2 * half] = (lo | (hi << (8 * half))).to_bytes(2 * half, "little")
            case.memory = bytes(mem)
        return case
    if op == "xlat":
        return _case(rng, "xlat")
    if op == "enter":
        case = _case(rng, f"enter ${rng.randrange(0, 64)}, ${rng.randrange(0, 4)}")
        case.regs["rbp"] = MEM_BASE + 0x600 + 8 * rng.randrange(0, 32)
        return case
    if op in ("aam", "aad"):
        return _case(rng, f"{op} ${rng.choice((10, 16, 7, 1, 255))}")
    return _case(rng, op)


FAMILIES = {"alu": alu, "unary": unary, "shift": shift, "muldiv": muldiv, "bits": bits,
            "moves": moves, "strings": strings, "stack": stack,
            "sequence": sequence, "bmi": bmi, "misc": misc}


def generate(family: str, count: int, seed: int, bits: int = 64) -> list[Case]:
    """``count`` cases of ``family`` for 64-bit or 32-bit code."""
    return draw_cases(FAMILIES, _BITS, family, count, seed, bits)
