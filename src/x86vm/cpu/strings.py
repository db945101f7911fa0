"""String instructions with REP/REPcc and segment overrides, and port I/O (SDM Vol. 2:
MOVS, STOS, LODS, CMPS, SCAS, INS, OUTS, IN, OUT; Vol. 1 §19.5 for the I/O permission).

A REP instruction commits one element at a time (registers and memory), so a fault or a
monitor read in its middle leaves it resumable; after REP_CHUNK elements it yields with RIP
back at itself so that interrupts and timeouts are seen. Port reads stop the instruction
for the monitor (``port_read`` raises until the value is replayed); port writes are queued
in ``cpu.pending``.
"""

from __future__ import annotations

from x86vm.cpu import flags as F
from x86vm.cpu.operand import MASK, Mem, Reg, linear, seg_linear, write_reg

REP_CHUNK = 4096  # REP iterations before the instruction yields (interrupts, timeouts)


def _index_regs(mem: Mem) -> int:
    return mem.base.num


def _adv(cpu, reg: int, asize: int, delta: int) -> int:
    m = MASK[asize]
    v = (cpu.r[reg] + delta) & m
    if asize == 2:
        cpu.r[reg] = (cpu.r[reg] & ~0xFFFF) | v
    else:
        cpu.r[reg] = v
    return v


def _rep_prefix(insn) -> int:
    rep = 0
    for p in insn.prefixes:
        if p in (0xF2, 0xF3):
            rep = p
    return rep


def h_string(cpu, c) -> None:
    insn, ops = c
    name = insn.mnemonic
    rep = _rep_prefix(insn)
    asize = insn.address_size // 8
    amask = MASK[asize]
    if name in ("movs", "cmps"):
        size = ops[0].size
    elif name in ("stos", "outs"):
        size = ops[1].size if name == "outs" and type(ops[1]) is Mem else ops[0].size
    else:
        size = ops[1].size if type(ops[1]) is Mem else ops[0].size
    if name in ("ins", "outs"):
        size = ops[0].size if name == "ins" else ops[1].size
        if name == "outs" and type(ops[1]) is not Mem:
            size = ops[1].size
    delta = -size if cpu.fl & 0x400 else size
    count_left = None
    start = insn.address
    if rep and name in ("movs", "stos") and delta > 0:
        _rep_bulk(cpu, name, ops, size, asize, amask, start)
        return
    if rep and name == "ins" and delta > 0:
        # KVM hands REP INS to the monitor as one exit of up to a page of elements and
        # REP OUTS as one exit per element (tests/test_cpu_exits.py); so does emu
        _rep_port_run(cpu, name, ops, size, asize, amask, start)
        return
    for _n in range(REP_CHUNK):
        if rep:
            count = cpu.r[1] & amask
            if count == 0:
                return
        done = _string_step(cpu, name, ops, size, asize, amask, delta)
        if rep:
            count_left = _adv(cpu, 1, asize, -1)
        if cpu.replay:
            cpu.replay.clear()
            cpu.replay_pos = 0
        if not rep:
            return
        if name in ("cmps", "scas"):
            zf = done
            if (rep == 0xF3 and not zf) or (rep == 0xF2 and zf):
                return
        if count_left == 0:
            return
        if cpu.pending:
            cpu.rip = start
            return
    cpu.rip = start  # yield: the next run continues the REP


def _rep_bulk(cpu, name, ops, size, asize, amask, start) -> None:
    """REP MOVS/STOS upwards: whole runs of elements that stay inside one page of RAM are
    copied or filled at once; an element that crosses a page, touches MMIO or overlaps its
    source goes the one-element way. Yields (RIP back at the instruction) after a while."""
    for _ in range(256):
        if cpu.r[1] & amask == 0:
            return
        if not _bulk_chunk(cpu, name, ops, size, asize, amask):
            _string_step(cpu, name, ops, size, asize, amask, size)
            _adv(cpu, 1, asize, -1)
            if cpu.replay:
                cpu.replay.clear()
                cpu.replay_pos = 0
            if cpu.pending:
                if cpu.r[1] & amask:
                    cpu.rip = start
                return
    if cpu.r[1] & amask:
        cpu.rip = start


def _bulk_chunk(cpu, name, ops, size, asize, amask) -> bool:
    count = cpu.r[1] & amask
    di = cpu.r[7] & amask
    dst = seg_linear(cpu, 0, di)
    n = min(count, (4096 - (dst & 0xFFF)) // size, (amask + 1 - di) // size)
    if name == "movs":
        si = cpu.r[6] & amask
        src = linear(cpu, ops[1], si)
        n = min(n, (4096 - (src & 0xFFF)) // size, (amask + 1 - si) // size)
    if n <= 0:
        return False
    if cpu.watch_pages:   # a debugger watches memory: element by element through the MMU
        return False
    nbytes = n * size
    if name == "movs":
        spa, _ = cpu.translate(cpu._lin_mask(src), 0)
        sfound = cpu.ram.find(spa)
        if sfound is None or cpu.ram.find(spa + nbytes - 1) is None:
            return False
    dpa, _ = cpu.translate(cpu._lin_mask(dst), 2)
    dfound = cpu.ram.find_writable(dpa)
    if dfound is None or cpu.ram.find_writable(dpa + nbytes - 1) is None:
        return False
    dbuf, doff = dfound
    if name == "movs":
        sbuf, soff = sfound
        if sbuf is dbuf and soff < doff < soff + nbytes:
            return False          # forward overlap: element by element (byte replication)
        data = sbuf[soff:soff + nbytes]
    else:
        data = (cpu.r[0] & MASK[size]).to_bytes(size, "little") * n
    ppn = dpa >> 12
    if ppn in cpu.code_pages:
        cpu.on_code_write(ppn, dpa & 0xFFF, (dpa & 0xFFF) + nbytes)
    dbuf[doff:doff + nbytes] = data
    _adv(cpu, 7, asize, nbytes)
    if name == "movs":
        _adv(cpu, 6, asize, nbytes)
    _adv(cpu, 1, asize, -n)
    return True


def _rep_port_run(cpu, name, ops, size, asize, amask, start) -> None:
    """REP INS upwards: the elements up to the page end (at most RCX) make one exit with
    ``count`` elements, as KVM's emulator hands string input to the monitor."""
    count = cpu.r[1] & amask
    if count == 0:
        return
    port = cpu.r[2] & 0xFFFF
    cpu.check_io(port, size)
    reg = 7
    off = cpu.r[reg] & amask
    la = seg_linear(cpu, 0, off)
    n = min(count, (4096 - (la & 0xFFF)) // size, (amask + 1 - off) // size)
    pa = found = None
    if n > 1 and not cpu.watch_pages:
        pa, _ = cpu.translate(cpu._lin_mask(la), 2)
        found = cpu.ram.find_writable(pa)
        if found is None or cpu.ram.find_writable(pa + n * size - 1) is None:
            n = 1
    if n <= 1:      # one element (page crossing, MMIO): the element path
        _string_step(cpu, name, ops, size, asize, amask, size)
        _adv(cpu, 1, asize, -1)
        cpu.replay.clear()
        cpu.replay_pos = 0
        if cpu.r[1] & amask:
            cpu.rip = start
        return
    buf, boff = found
    nbytes = n * size
    data = cpu.port_read(port, size, n).to_bytes(nbytes, "little")
    ppn = pa >> 12
    if ppn in cpu.code_pages:
        cpu.on_code_write(ppn, pa & 0xFFF, (pa & 0xFFF) + nbytes)
    buf[boff:boff + nbytes] = data
    _adv(cpu, reg, asize, nbytes)
    _adv(cpu, 1, asize, -n)
    cpu.replay.clear()
    cpu.replay_pos = 0
    if cpu.r[1] & amask:
        cpu.rip = start


def _string_step(cpu, name, ops, size, asize, amask, delta):
    if name == "movs":
        dst, src = ops
        v = cpu.read_mem(linear(cpu, src, cpu.r[6] & amask), size)
        cpu.write_mem(seg_linear(cpu, 0, cpu.r[7] & amask), size, v)
        _adv(cpu, 6, asize, delta)
        _adv(cpu, 7, asize, delta)
    elif name == "stos":
        cpu.write_mem(seg_linear(cpu, 0, cpu.r[7] & amask), size, cpu.r[0] & MASK[size])
        _adv(cpu, 7, asize, delta)
    elif name == "lods":
        src = ops[1]
        v = cpu.read_mem(linear(cpu, src, cpu.r[6] & amask), size)
        write_reg(cpu, Reg("", "gpr", 0, size), v)
        _adv(cpu, 6, asize, delta)
    elif name == "cmps":
        src1, _ = ops
        a = cpu.read_mem(linear(cpu, src1, cpu.r[6] & amask), size)
        b = cpu.read_mem(seg_linear(cpu, 0, cpu.r[7] & amask), size)
        _adv(cpu, 6, asize, delta)
        _adv(cpu, 7, asize, delta)
        cpu.cc = (F.SUB, size * 8, (a - b) & MASK[size], a, b, 0)
        return a == b
    elif name == "scas":
        a = cpu.r[0] & MASK[size]
        b = cpu.read_mem(seg_linear(cpu, 0, cpu.r[7] & amask), size)
        _adv(cpu, 7, asize, delta)
        cpu.cc = (F.SUB, size * 8, (a - b) & MASK[size], a, b, 0)
        return a == b
    elif name == "ins":
        port = cpu.r[2] & 0xFFFF
        cpu.check_io(port, size)
        la = seg_linear(cpu, 0, cpu.r[7] & amask)
        cpu.translate(la, 2)  # a fault on the destination comes before the port read
        v = cpu.port_read(port, size)
        cpu.write_mem(la, size, v)
        _adv(cpu, 7, asize, delta)
    elif name == "outs":
        port = cpu.r[2] & 0xFFFF
        cpu.check_io(port, size)
        src = ops[1]
        v = cpu.read_mem(linear(cpu, src, cpu.r[6] & amask), size)
        cpu.pending.append(("io", port, size, v))
        _adv(cpu, 6, asize, delta)
    return None


# -- port I/O ----------------------------------------------------------------------------------

def h_in(cpu, c) -> None:
    dst, port_op = c[1]
    port = cpu.r[2] & 0xFFFF if type(port_op) is Reg else port_op.value
    size = dst.size
    cpu.check_io(port, size)
    write_reg(cpu, dst, cpu.port_read(port, size))


def h_out(cpu, c) -> None:
    port_op, src = c[1]
    port = cpu.r[2] & 0xFFFF if type(port_op) is Reg else port_op.value
    size = src.size
    cpu.check_io(port, size)
    cpu.pending.append(("io", port, size, cpu.r[0] & MASK[size]))


STRING_HELPERS = {
    "movs": h_string, "stos": h_string, "lods": h_string, "cmps": h_string,
    "scas": h_string, "ins": h_string, "outs": h_string, "in": h_in, "out": h_out,
}
