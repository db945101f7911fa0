"""System-level behaviour of the CPU, each on emu and (where it can run here) on KVM as the
oracle: MMIO read-modify-write and string instructions on MMIO, an access straddling RAM and
MMIO, #DE, real-mode interrupts through the IVT, paging faults with their error code and CR2
(NX, CR0.WP, SMEP, not present), determinism."""

from __future__ import annotations

import pytest

from cpu.asmguest import MMIO_BASE, assemble, assembler_missing, idt_gate, run_guest
from support.backends import backend_fixture
from x86vm.machine.vm import Machine

pytestmark = pytest.mark.skipif(assembler_missing() is not None, reason=str(assembler_missing()))


backend = backend_fixture()


def test_rmw_on_mmio_reads_then_writes(backend):
    code = assemble(f"""
        mov $0x10, %eax
        addl %eax, {MMIO_BASE + 0x40:#x}
        setc %bl
        movzbl %bl, %eax
        out %eax, $0xe0
        cli
        hlt""", 32, 0x10000)
    result, port, mmio, _ = run_guest(backend, code, 32, 0x10000, mmio_values=[0xFFFFFFF5])
    assert mmio.log == [("r", 0x40, 4, 0xFFFFFFF5), ("w", 0x40, 4, 0x5)]
    assert port.log == [("w", 0, 4, 1)]   # carry out of the addition
    assert result.status == 0, result.reason


def test_string_instructions_on_mmio(backend):
    code = assemble(f"""
        cld
        mov ${MMIO_BASE:#x}, %esi
        mov $0x20000, %edi
        mov $3, %ecx
        rep movsl
        mov $0x20000, %esi
        mov ${MMIO_BASE + 0x100:#x}, %edi
        mov $2, %ecx
        rep movsw
        mov 0x20008, %eax
        out %eax, $0xe0
        cli
        hlt""", 32, 0x10000)
    result, port, mmio, _ = run_guest(backend, code, 32, 0x10000,
                                      mmio_values=[0x11111111, 0x22222222, 0x33333333])
    assert mmio.log == [("r", 0, 4, 0x11111111), ("r", 4, 4, 0x22222222),
                        ("r", 8, 4, 0x33333333), ("w", 0x100, 2, 0x1111),
                        ("w", 0x102, 2, 0x1111)]
    assert port.log == [("w", 0, 4, 0x33333333)]


def test_divide_error_through_the_idt(backend):
    # IDT at 0x30000 with #DE's gate → handler reports the faulting EIP (pushed at 0(%esp))
    code = assemble("""
        lidt idtr
""" + idt_gate(0, "handler", 32) + """
        xor %edx, %edx
        mov $7, %eax
        xor %ecx, %ecx
    fault:
        divl %ecx
        cli
        hlt
    handler:
        mov (%esp), %eax
        out %eax, $0xe0
        movl $fault, %eax
        out %eax, $0xe0
        cli
        hlt
    idtr: .word 0x7ff
        .long 0x30000""", 32, 0x10000)
    result, port, _, _ = run_guest(backend, code, 32, 0x10000)
    assert len(port.log) == 2 and port.log[0][3] == port.log[1][3], port.log


REAL_INT_GUEST = """
        xor %ax, %ax
        mov %ax, %ds
        mov %ax, %ss
        mov $0x7000, %sp
        pushw $0x0cd7        /* every arithmetic flag and DF; IF clear */
        popfw
        movw $handler, 0x80 * 4
        movw $0, 0x80 * 4 + 2
        int $0x80
        mov $0x5678, %ax
        out %ax, $0xe0
        pushfw               /* IRET restored FLAGS */
        pop %ax
        out %ax, $0xe0
        cli
        hlt
    handler:
        mov %sp, %bp
        mov 4(%bp), %ax      /* the pushed FLAGS */
        out %ax, $0xe0
        mov $0x1234, %ax
        out %ax, $0xe0
        iret"""


def test_real_mode_software_interrupt_uses_the_ivt(backend):
    if backend == "kvm":
        pytest.skip("this host's KVM cannot deliver a software INT in real mode (docs/vmm.md)")
    code = assemble(REAL_INT_GUEST, 16, 0x7C00)
    result, port, _, _ = run_guest(backend, code, 16, 0x7C00)
    assert [v for _, _, _, v in port.log] == [0x0CD7, 0x1234, 0x5678, 0x0CD7]


PAGE_TABLES = 0x100000   # PML4, PDPT, PD, PT (4 KiB pages for the first 2 MiB)


def _paging_setup(target_flags: dict[int, int], cr0_or=0, cr4_or=0, efer_or=0):
    from dataclasses import replace

    def setup(memory, entry):
        pml4, pdpt, pd, pt = (PAGE_TABLES + i * 0x1000 for i in range(4))
        memory.write_u64(pml4, pdpt | 7)
        memory.write_u64(pdpt, pd | 7)
        memory.write_u64(pd, pt | 7)
        for i in range(512):
            memory.write_u64(pt + 8 * i, (i << 12) | 3)
        for page, flags in target_flags.items():
            memory.write_u64(pt + 8 * (page >> 12), page | flags)
        return replace(entry, cr3=pml4, cr0=entry.cr0 | cr0_or, cr4=entry.cr4 | cr4_or,
                       efer=entry.efer | efer_or)
    return setup


_PF_GUEST = """
        lidt idtr(%rip)
""" + idt_gate(14, "handler", 64) + """
        {body}
        cli
        hlt
    handler:
        pop %rax
        out %eax, $0xe0
        mov %cr2, %rax
        out %eax, $0xe0
        cli
        hlt
    idtr: .word 0xfff
        .quad 0x30000
"""
NX = 1 << 63


@pytest.mark.parametrize("name, body, flags, regs, expected", [
    ("nx", "mov $0x50000, %rax; jmp *%rax", {0x50000: NX | 3}, dict(efer_or=1 << 11),
     (0x11, 0x50000)),
    ("wp", "movl $1, 0x51000", {0x51000: 1}, dict(cr0_or=1 << 16), (0x3, 0x51000)),
    ("smep", "mov $0x52000, %rax; jmp *%rax", {0x52000: 7}, dict(cr4_or=1 << 20),
     (0x11, 0x52000)),
    ("not present", "mov 0x53008, %eax", {0x53000: 0}, {}, (0x0, 0x53008)),
    ("smap", "mov 0x54000, %eax", {0x54000: 7}, dict(cr4_or=1 << 21), (0x1, 0x54000)),
    ("smap with stac", "stac; mov 0x54000, %eax; clac", {0x54000: 7}, dict(cr4_or=1 << 21),
     ()),
])
def test_page_fault_error_code_and_cr2(backend, name, body, flags, regs, expected):
    code = assemble(_PF_GUEST.format(body=body), 64, 0x10000)
    # the target pages hold a ret, so a missing fault would run on and halt without reports
    def setup(memory, entry):
        for page in flags:
            memory.write(page, b"\xf4")
        return _paging_setup(flags, **regs)(memory, entry)
    result, port, _, _ = run_guest(backend, code, 64, 0x10000, setup=setup)
    assert [v for _, _, _, v in port.log] == list(expected), (name, result.reason)


def test_same_guest_twice_retires_the_same_instructions():
    code = assemble("""
        mov $50000, %ecx
    1:  imul $31, %eax, %eax
        add %ecx, %eax
        loop 1b
        out %eax, $0xe0
        cli
        hlt""", 32, 0x10000)
    counts = []
    for _ in range(2):
        with Machine(memory_size=2 << 20, backend="emu") as m:
            from cpu.asmguest import Recorder, entry_for
            port = Recorder()
            m.pio.register(0xE0, 4, port, "report")
            m.memory.write(0x10000, code)
            m.run(entry_for(m.memory, 32, 0x10000), timeout=30)
            counts.append((m.backend.stats()["instructions"], port.log, m.backend.clock_ns()))
    assert counts[0] == counts[1]
    assert counts[0][0] == 1 + 3 * 50000 + 3   # mov, the loop, out, cli, hlt


def test_self_modifying_code_runs_the_new_bytes(backend):
    # the store patches the immediate of the very next instruction, in the same block
    code = assemble("""
        movb $0x42, patch + 1
    patch:
        mov $0x00, %al
        out %al, $0xe0
        movb $0x43, again + 1
        jmp again
    again:
        mov $0x00, %al
        out %al, $0xe0
        cli
        hlt""", 32, 0x10000)
    result, port, _, _ = run_guest(backend, code, 32, 0x10000)
    assert [v for _, _, _, v in port.log] == [0x42, 0x43]


def test_access_straddling_ram_and_mmio_exits_for_the_mmio_part():
    # RAM ends at 16 MiB; the recorder device is placed right after it
    code = assemble("""
        mov $0x44332211, %eax
        movl %eax, 0xfffffe
        movl 0xfffffe, %ebx
        mov %ebx, %eax
        out %eax, $0xe0
        cli
        hlt""", 32, 0x10000)
    with Machine(memory_size=16 << 20, backend="emu") as m:
        from cpu.asmguest import Recorder, entry_for
        port, dev = Recorder(), Recorder([0xAABB])
        m.pio.register(0xE0, 4, port, "report")
        m.memory.add_mmio(16 << 20, 0x1000, dev, "after-ram")
        m.memory.write(0x10000, code)
        m.run(entry_for(m.memory, 32, 0x10000), timeout=10)
        assert m.memory.read(0xFFFFFE, 2) == b"\x11\x22"
    assert dev.log == [("w", 0, 2, 0x4433), ("r", 0, 2, 0xAABB)]
    assert port.log == [("w", 0, 4, 0xAABB2211)]


_PAGING32 = """
        mov ${cr4:#x}, %eax
        mov %eax, %cr4
        mov ${cr3:#x}, %eax
        mov %eax, %cr3
        mov %cr0, %eax
        or $0x80000000, %eax
        mov %eax, %cr0
        movl $0xcafe1234, {alias:#x}
        mov {phys:#x}, %eax
        out %eax, $0xe0
        mov {entry:#x}, %eax
        out %eax, $0xe0
        cli
        hlt"""


def _tables(layout: dict[int, int]):
    def setup(memory, entry):
        for at, value in layout.items():
            memory.write_u32(at, value & 0xFFFFFFFF)
            if value >> 32:
                memory.write_u32(at + 4, value >> 32)
    return setup


def _pt_identity(pt: int, pages: int, extra: dict[int, int]) -> dict[int, int]:
    out = {pt + 4 * i: (i << 12) | 3 for i in range(pages)}
    out.update(extra)
    return out


PAGING_CASES = [
    # 32-bit paging, 4 KiB pages: linear 0x200000 → physical 0x300000
    ("4k", 0, {0x100000: 0x101003, **_pt_identity(0x101000, 1024, {0x101800: 0x300003})},
     0x200010, 0x300010, 0x101800, 0x300063),
    # 32-bit paging with CR4.PSE, 4 MiB pages: linear 4 MiB → physical 8 MiB
    ("4m", 0x10, {0x100000: 0x83, 0x100004: 0x800083, 0x100008: 0x800083},
     0x400010, 0x800010, 0x100004, 0x8000E3),
    # PAE, 2 MiB pages: linear 2 MiB → physical 6 MiB
    ("pae", 0x20, {0x100000: 0x101001, 0x101000: 0x83, 0x101008: 0x600083,
                   0x101018: 0x600083}, 0x200010, 0x600010, 0x101008, 0x6000E3),
]


@pytest.mark.parametrize("mode, cr4, layout, alias, phys, entry, expected_entry",
                         PAGING_CASES)
def test_paging_modes_translate_and_set_accessed_dirty(backend, mode, cr4, layout, alias, phys,
                                                        entry, expected_entry):
    if backend == "kvm":
        pytest.skip("this host's KVM triple-faults as soon as a 32-bit guest sets CR0.PG "
                    "(QEMU is the oracle: test_cpu_qemu.py)")
    code = assemble(_PAGING32.format(cr4=cr4, cr3=0x100000, alias=alias, phys=phys,
                                     entry=entry), 32, 0x10000)
    result, port, _, _ = run_guest(backend, code, 32, 0x10000, setup=_tables(layout))
    assert [v for _, _, _, v in port.log] == [0xCAFE1234, expected_entry], result.reason


def _user_identity_map(memory, entry):
    """4 MiB identity-mapped with 2 MiB user pages (U/S=1 at every level)."""
    from dataclasses import replace
    memory.write_u64(0x100000, 0x101007)
    memory.write_u64(0x101000, 0x102007)
    memory.write_u64(0x102000, 0x000087)
    memory.write_u64(0x102008, 0x200087)
    return replace(entry, cr3=0x100000)


def test_sysret_to_user_mode_and_syscall_back():
    # expectations from the SDM ("SYSCALL", "SYSRET"): CS/SS from IA32_STAR, RFLAGS from R11
    # and SFMASK, RCX = the return address; this host's KVM cannot run a user-mode SYSCALL
    code = assemble("""
        mov $0xc0000081, %ecx         /* STAR: kernel CS 0x10, SYSRET base 0x20 */
        xor %eax, %eax
        mov $0x00200010, %edx
        wrmsr
        mov $0xc0000082, %ecx         /* LSTAR */
        lea handler(%rip), %rax
        xor %edx, %edx
        wrmsr
        mov $0xc0000084, %ecx         /* SFMASK: clear IF */
        mov $0x200, %eax
        wrmsr
        mov $0xc0000080, %ecx         /* EFER.SCE */
        rdmsr
        or $1, %eax
        wrmsr
        lea user(%rip), %rcx
        mov $0x202, %r11d
        sysretq
    user:
        mov %cs, %edi
        mov %ss, %esi
        syscall
    after:
        jmp after
    handler:
        pushfq                        /* RFLAGS = R11 & ~SFMASK */
        pop %rbx
        mov %edi, %eax
        out %eax, $0xe0
        mov %esi, %eax
        out %eax, $0xe0
        mov %cs, %eax
        out %eax, $0xe0
        mov %r11d, %eax
        out %eax, $0xe0
        lea after(%rip), %rax
        sub %rcx, %rax
        out %eax, $0xe0
        mov %ebx, %eax
        out %eax, $0xe0
        cli
        hlt""", 64, 0x10000)
    result, port, _, _ = run_guest("emu", code, 64, 0x10000, setup=_user_identity_map)
    assert [v for _, _, _, v in port.log] == [0x33, 0x2B, 0x10, 0x202, 0, 0x2], result.reason


def test_unimplemented_instruction_is_ud_in_the_guest_and_counted():
    code = assemble("""
        lidt idtr
""" + idt_gate(6, "handler", 32) + """
    fault:
        vzeroupper                /* AVX: not implemented */
        cli
        hlt
    handler:
        mov (%esp), %eax          /* #UD is a fault: the pushed EIP is the vzeroupper */
        out %eax, $0xe0
        cli
        hlt
    idtr: .word 0x7ff
        .long 0x30000""", 32, 0x10000)
    with Machine(memory_size=2 << 20, backend="emu") as m:
        from cpu.asmguest import Recorder, entry_for
        port = Recorder()
        m.pio.register(0xE0, 4, port, "report")
        m.memory.write(0x10000, code)
        m.run(entry_for(m.memory, 32, 0x10000), timeout=10)
        stats = m.backend.stats()
        assert m.backend.cpu.ud_seen == {"vzeroupper": 1}
    assert stats["undefined"] == 1
    assert port.log == [("w", 0, 4, 0x10000 + code.index(b"\xc5\xf8\x77"))]


def test_same_code_under_two_real_mode_code_segments(backend):
    # the linear address repeats with another CS base: the block must be the one for the RIP
    code = assemble("""
        ljmp $0x07c0, $(body - 0x7c00)
    body:
        call 1f
    1:  pop %ax
        out %ax, $0xe0
        mov %cs, %bx
        test %bx, %bx
        jz done
        ljmp $0, $body
    done:
        cli
        hlt""", 16, 0x7C00)
    result, port, _, _ = run_guest(backend, code, 16, 0x7C00)
    off = code.index(b"\x58")            # pop %ax: the return address pushed by the call
    assert [v for _, _, _, v in port.log] == [off, 0x7C00 + off], result.reason


def test_compatibility_mode_runs_32_bit_code_under_long_mode(backend):
    code = assemble("""
        mov $0x18, %ax
        mov %ax, %ss
        lea compat(%rip), %rax
        pushq $0x08                   /* the 32-bit code segment */
        push %rax
        lretq
        .code32
    compat:
        mov $5, %eax
        .byte 0x48                    /* dec %eax here, a REX prefix in 64-bit code */
        out %eax, $0xe0
        push $0x1234
        pop %eax
        out %eax, $0xe0
        mov %esp, %eax
        out %eax, $0xe0
        cli
        hlt""", 64, 0x10000)
    def setup(memory, entry):
        for at, value in ((0x100000, 0x101003), (0x101000, 0x102003), (0x102000, 0x83)):
            memory.write_u64(at, value)
        from dataclasses import replace
        return replace(entry, cr3=0x100000)
    result, port, _, _ = run_guest(backend, code, 64, 0x10000, setup=setup)
    assert [v for _, _, _, v in port.log] == [4, 0x1234, 0x70000], result.reason


TSS_GUEST = """
        mov $0x70000, %esp
        lgdt gdtr
        ljmp $0x08, $1f
    1:  mov $0x10, %ax
        mov %ax, %ds
        mov %ax, %es
        mov %ax, %ss
        movl $0x60000, 0x20004        /* ESP0 */
        movl $0x10, 0x20008           /* SS0 */
        movw $0x68, 0x20066           /* no I/O bitmap */
        mov $0x28, %ax
        ltr %ax
        lidt idtr
        movl $handler, %eax
        movw %ax, 0x30000 + 0x80 * 8
        movw $0x08, 0x30002 + 0x80 * 8
        movw $0xee00, 0x30004 + 0x80 * 8
        shr $16, %eax
        movw %ax, 0x30006 + 0x80 * 8
        push $0x23
        push $0x50000
        push $0x2
        push $0x1b
        push $user
        iret
    user:
        mov $0x1234, %eax
        int $0x80
    2:  jmp 2b
    handler:
        mov %eax, %edi
        mov $0x10, %ax                /* IRET to CPL 3 nulled DS and ES (DPL 0 < CPL 3) */
        mov %ax, %ds
        mov %ax, %es
        mov %cs, %eax
        out %eax, $0xe0
        mov %ss, %eax
        out %eax, $0xe0
        mov 4(%esp), %eax
        out %eax, $0xe0
        mov 12(%esp), %eax
        out %eax, $0xe0
        mov 16(%esp), %eax
        out %eax, $0xe0
        mov %esp, %eax
        out %eax, $0xe0
        mov %edi, %eax
        out %eax, $0xe0
        cli
        hlt
        .align 8
    gdt:
        .quad 0, 0x00cf9a000000ffff, 0x00cf92000000ffff, 0x00cffa000000ffff
        .quad 0x00cff2000000ffff
        .long 0x00000067, 0x00008902   /* 32-bit TSS at 0x20000 */
    gdtr: .word 6 * 8 - 1
        .long gdt
    idtr: .word 0x7ff
        .long 0x30000"""


def test_int_from_user_mode_switches_to_the_tss_stack(backend):
    # 32-bit protected mode: IRET to CPL 3, INT 0x80 through a DPL-3 gate back to CPL 0 on
    # the stack of TSS.SS0:ESP0 (SDM Vol. 3A §6.12.1), the user SS:ESP pushed there
    if backend == "kvm":
        pytest.skip("this host's KVM fails to emulate the IRET to CPL 3 "
                    "(QEMU is the oracle: test_cpu_qemu.py)")
    code = assemble(TSS_GUEST, 32, 0x10000)
    result, port, _, _ = run_guest(backend, code, 32, 0x10000)
    assert [v for _, _, _, v in port.log] == [0x08, 0x10, 0x1B, 0x50000, 0x23, 0x5FFEC,
                                              0x1234], result.reason


def test_vmcall_is_a_hypercall_exit_with_its_result_in_rax():
    code = assemble("""
        mov $12, %eax
        mov $1, %ebx
        mov $2, %ecx
        mov $3, %edx
        mov $4, %esi
        vmcall
        out %eax, $0xe0
        cli
        hlt""", 32, 0x10000)
    with Machine(memory_size=2 << 20, backend="emu") as m:
        from cpu.asmguest import Recorder, entry_for
        from x86vm.machine.exits import Hypercall

        port = Recorder()
        m.pio.register(0xE0, 4, port, "report")
        m.memory.write(0x10000, code)
        m.backend.set_state(entry_for(m.memory, 32, 0x10000))
        ex = m.backend.run()
        assert isinstance(ex, Hypercall) and (ex.nr, ex.args) == (12, (1, 2, 3, 4))
        ex.ret = -1000                      # what the run loop answers: -KVM_ENOSYS
        m.backend.complete_io(ex)
        ex = m.backend.run()
    assert ex.data == bytearray((-1000 & 0xFFFFFFFF).to_bytes(4, "little"))


TRAP_GUEST = """
        mov $0x70000, %esp
        lidt idtr
        mov %cs, %bx
""" + idt_gate(1, "handler", 32, selector="%bx") + """
        movl $0, 0x20000
        pushf
        orl $0x100, (%esp)
        popf
        mov $1, %eax
        mov $2, %eax
        pushf
        andl $~0x100, (%esp)
        popf
        mov 0x20000, %eax
        out %eax, $0xe0
        cli
        hlt
    handler:
        incl 0x20000
        iret
    idtr: .word 0x7ff
        .long 0x30000"""


def test_trap_flag_single_steps_through_the_idt(backend):
    # a #DB trap after every instruction that starts with TF=1 (SDM Vol. 3B §17.3.1.4):
    # not after the POPF that sets TF, but after the one that clears it
    if backend == "kvm":
        pytest.skip("this host's KVM fails to emulate the handler's IRET "
                    "(QEMU is the oracle: test_cpu_qemu.py)")
    code = assemble(TRAP_GUEST, 32, 0x10000)
    result, port, _, _ = run_guest(backend, code, 32, 0x10000)
    assert [v for _, _, _, v in port.log] == [5], result.reason


def test_device_writes_into_ram_replace_translated_code():
    # the guest calls a function, a device rewrites it (as DMA would), the guest calls again
    code = assemble("""
        call 0x20000
        out %eax, $0xe0
        call 0x20000
        out %eax, $0xe0
        cli
        hlt""", 32, 0x10000)
    with Machine(memory_size=2 << 20, backend="emu") as m:
        from cpu.asmguest import entry_for

        seen = []

        class Dma:
            def read(self, offset, size):
                return 0

            def write(self, offset, size, value):
                seen.append(value)
                m.memory.write(0x20000, b"\xb8\x02\x00\x00\x00\xc3")   # mov $2, %eax; ret

        m.pio.register(0xE0, 4, Dma(), "dma")
        m.memory.write(0x10000, code)
        m.memory.write(0x20000, b"\xb8\x01\x00\x00\x00\xc3")           # mov $1, %eax; ret
        m.run(entry_for(m.memory, 32, 0x10000), timeout=10)
    assert seen == [1, 2]


# the code descriptor is marked accessed already: QEMU TCG does not set the accessed bit when
# a far jump loads CS (the SDM says the processor does, and so does the emulator)
_INSPECT_GDT = (0, 0x00CF9B000000FFFF, 0x00CF92000000FFFF, 0x00CFF2000000FFFF,
                0x0000890200000067, 0x0000820210000037, 0x0000EC0000081234,
                0x00CFFE000000FFFF, 0x00CF12000000FFFF, 0x00CF98000000FFFF,
                0x0041920000002345)
_INSPECT_SELECTORS = (0x00, 0x08, 0x10, 0x13, 0x18, 0x1B, 0x20, 0x28, 0x30, 0x38, 0x3B,
                      0x40, 0x48, 0x50, 0x58)


def _inspect_guest() -> str:
    lines = ["mov $0x70000, %esp", "lgdt gdtr", "ljmp $0x08, $1f", "1: mov $0x10, %ax",
             "mov %ax, %ds", "mov %ax, %ss"]
    for sel in _INSPECT_SELECTORS:
        lines += [f"mov ${sel:#x}, %ecx"]
        for op in ("lar", "lsl"):
            lines += ["mov $0xdeadbeef, %eax", f"{op} %ecx, %eax", "setz %bl",
                      "out %eax, $0xe0", "movzbl %bl, %eax", "out %eax, $0xe0"]
        for op in ("verr", "verw"):
            lines += [f"{op} %cx", "setz %bl", "movzbl %bl, %eax", "out %eax, $0xe0"]
    lines += ["mov $0x10, %ax", "mov $0x13, %dx", "arpl %dx, %ax", "setz %bl",
              "out %eax, $0xe0", "movzbl %bl, %eax", "out %eax, $0xe0", "cli", "hlt",
              ".align 8", "gdt: .quad " + ", ".join(hex(d) for d in _INSPECT_GDT),
              f"gdtr: .word {8 * len(_INSPECT_GDT) - 1}", ".long gdt"]
    return "\n        ".join(lines)


INSPECT_GUEST = _inspect_guest()


def test_lar_lsl_verr_verw_arpl():
    # a few values worked out from the SDM (Vol. 2A: LAR, LSL, VERR/VERW, ARPL); QEMU checks
    # every one of them in test_cpu_qemu.py (this host's KVM cannot emulate LAR)
    code = assemble(INSPECT_GUEST, 32, 0x10000)
    result, port, _, _ = run_guest("emu", code, 32, 0x10000)
    values = [v for _, _, _, v in port.log]
    assert len(values) == 6 * len(_INSPECT_SELECTORS) + 2, result.reason
    per = {sel: values[6 * i:6 * i + 6] for i, sel in enumerate(_INSPECT_SELECTORS)}
    # lar value, ZF, lsl value, ZF, verr ZF, verw ZF; DS=0x10 was loaded: accessed (type 3)
    assert per[0x10] == [0x00C09300, 1, 0xFFFFFFFF, 1, 1, 1]
    assert per[0x20] == [0x00008900, 1, 0x67, 1, 0, 0]
    assert per[0x30][1] == 1 and per[0x30][3] == 0          # a call gate: LAR yes, LSL no
    assert per[0x50][2:4] == [0x12345, 1]                    # byte-granular limit
    assert per[0x58][1] == 0 and per[0x00][1] == 0          # beyond the GDT, null
    assert values[-2:] == [0x13, 1]                          # ARPL raised RPL 0 to 3


def test_pop_ss_steps_the_stack_pointer_with_the_old_stack_size(backend):
    """POP SS from a 16-bit stack (SS.B=0) into a 32-bit one: SP wraps as a 16-bit pointer
    and ESP's upper half stays (SDM Vol. 2B POP: the increment uses the stack address size
    in force when the pop starts). test386.asm's POST 09 checks the same."""
    code = assemble("""
        lgdt gdtr
        ljmp $0x08, $1f
    1:  mov $0x10, %ax
        mov %ax, %ds
        mov $0x18, %ax                /* a 16-bit stack segment (B=0) */
        mov %ax, %ss
        mov $0x20000, %esp
        push %ss                      /* 32-bit push: SP 0000 -> FFFC, ESP 0002FFFC */
        movl $0x10, 0xfffc            /* pop loads the 32-bit data segment */
        pop %ss
        mov %esp, %eax
        out %eax, $0xe0
        cli
        hlt
        .p2align 3
    gdt:
        .quad 0
        .quad 0x00cf9a000000ffff      /* 0x08: flat 32-bit code */
        .quad 0x00cf92000000ffff      /* 0x10: flat 32-bit data (B=1) */
        .quad 0x000092000000ffff      /* 0x18: 64 KiB 16-bit data (B=0) */
    gdtr:
        .word gdtr - gdt - 1
        .long gdt""", 32, 0x10000)
    result, port, _, _ = run_guest(backend, code, 32, 0x10000)
    assert [v for _, _, _, v in port.log] == [0x20000], result.reason
