"""The Machine on KVM with tiny hand-assembled guests and recording devices.

Each guest is a few dozen instructions assembled at test time; expected values follow from
the instruction semantics (SDM Vol. 2: OUT/IN/OUTS/INS/MOV) and from KVM itself (CPUID, MSRs).
"""

import struct
import time
from dataclasses import replace

import pytest

from test_kvm_support import ExitDevice, Recorder, assemble, enter_long_mode, requires_kvm
from x86vm.machine.boot.state import TableRegister, real_mode
from x86vm.machine.kvm.system import Kvm
from x86vm.machine.runloop import STATUS_INTERNAL_ERROR, STATUS_TIMEOUT
from x86vm.machine.vm import Machine

pytestmark = requires_kvm()

EXIT_PORT = 0xF4
MMIO_BASE = 0xD000_0000


@pytest.fixture
def machine():
    m = Machine(memory_size=2 << 20)
    m.pio.register(EXIT_PORT, 1, ExitDevice(m), "debug-exit")
    yield m
    m.close()


def run_real(m, source, timeout=5.0, **gprs):
    m.memory.write(0x7C00, assemble(source, 0x7C00))
    return m.run(real_mode(0, 0x7C00).with_gprs(**gprs), timeout=timeout)


def run_long(m, source, timeout=5.0, **gprs):
    m.memory.write(0x10000, assemble(source, 0x10000, bits=64))
    return m.run(enter_long_mode(m.memory, 0x10000, **gprs), timeout=timeout)


PORT_IO_GUEST = """
    outb %al, $0x80
    outw %ax, $0x81
    outl %eax, $0x80
    inb $0x80, %al
    movb %al, res
    inw $0x82, %ax
    movw %ax, res+2
    inl $0x80, %eax
    movl %eax, res+4
    inw $0x99, %ax          # nobody claims port 0x99
    movw %ax, res+8
    movb $7, %al
    outb %al, $0xf4
res: .space 10
"""


def test_port_io_of_every_width_and_unclaimed_ports(machine):
    dev = Recorder(answers=[0xAB, 0xBEEF, 0xDEADBEEF])
    machine.pio.register(0x80, 4, dev, "recorder")
    result = run_real(machine, PORT_IO_GUEST, rax=0x11223344)
    assert (result.status, result.reason) == ((7 << 1) | 1, "debug-exit 0x7")
    assert dev.log == [("w", 0, 1, 0x44), ("w", 1, 2, 0x3344), ("w", 0, 4, 0x11223344),
                       ("r", 0, 1, 0xAB), ("r", 2, 2, 0xBEEF), ("r", 0, 4, 0xDEADBEEF)]
    res = 0x7C00 + len(assemble(PORT_IO_GUEST, 0x7C00)) - 10
    assert machine.memory.read(res, 10) == bytes.fromhex("ab00efbeefbeaddeffff")
    assert machine.pio.unclaimed[(0x99, False)] == 1
    assert result.exits == 8


def test_string_io_rep_outsb_and_rep_insw(machine):
    dev = Recorder(answers=[0x1111, 0x2222, 0x3333])
    machine.pio.register(0x80, 1, dev, "recorder")
    source = """
        cld
        mov $msg, %si
        mov $5, %cx
        mov $0x80, %dx
        rep outsb
        mov $buf, %di
        mov $3, %cx
        rep insw
        movb $1, %al
        outb %al, $0xf4
    msg: .ascii "hello"
    buf: .space 6
    """
    result = run_real(machine, source)
    assert result.status == 3
    assert dev.log == [("w", 0, 1, c) for c in b"hello"] + [
        ("r", 0, 2, 0x1111), ("r", 0, 2, 0x2222), ("r", 0, 2, 0x3333)]
    buf = 0x7C00 + len(assemble(source, 0x7C00)) - 6
    assert machine.memory.read(buf, 6) == bytes.fromhex("111122223333")


def test_mmio_of_every_width_in_long_mode(machine):
    dev = Recorder(answers=[0x5A, 0xA55A, 0x12345678, 0x0102030405060708])
    machine.memory.add_mmio(MMIO_BASE, 0x1000, dev, "recorder")
    source = f"""
        mov ${MMIO_BASE:#x}, %rbx
        movb $0x11, (%rbx)
        movw $0x2233, 2(%rbx)
        movl $0x44556677, 4(%rbx)
        mov $0x8899aabbccddeeff, %rax
        mov %rax, 8(%rbx)
        movb 16(%rbx), %al
        movb %al, res
        movw 18(%rbx), %ax
        movw %ax, res+2
        movl 20(%rbx), %eax
        movl %eax, res+4
        mov 24(%rbx), %rax
        mov %rax, res+8
        movb $2, %al
        outb %al, $0xf4
    res: .space 16
    """
    result = run_long(machine, source)
    assert result.status == 5, result.reason
    assert dev.log == [("w", 0, 1, 0x11), ("w", 2, 2, 0x2233), ("w", 4, 4, 0x44556677),
                       ("w", 8, 8, 0x8899AABBCCDDEEFF), ("r", 16, 1, 0x5A),
                       ("r", 18, 2, 0xA55A), ("r", 20, 4, 0x12345678),
                       ("r", 24, 8, 0x0102030405060708)]
    res = 0x10000 + len(assemble(source, 0x10000, 64)) - 16
    assert machine.memory.read(res, 16) == bytes.fromhex("5a005aa5785634120807060504030201")


def test_unclaimed_mmio_reads_all_ones(machine):
    source = f"""
        mov ${MMIO_BASE:#x}, %rbx
        movl (%rbx), %eax
        movl %eax, res
        movb $0, %al
        outb %al, $0xf4
    res: .long 0
    """
    result = run_long(machine, source)
    assert result.status == 1
    res = 0x10000 + len(assemble(source, 0x10000, 64)) - 4
    assert machine.memory.read_u32(res) == 0xFFFFFFFF
    assert machine.mmio.unclaimed[(MMIO_BASE, False)] == 1


def test_hlt_exit_without_irqchip():
    with Machine(memory_size=1 << 20, irqchip=False) as m:
        result = run_real(m, "hlt")
        assert (result.status, result.exits) == (0, 1)
        assert "halted" in result.reason


def test_cli_hlt_is_noticed_with_the_in_kernel_lapic(machine):
    start = time.monotonic()
    result = run_real(machine, "cli\nhlt", timeout=10)
    assert result.status == 0 and "halted" in result.reason
    assert time.monotonic() - start < 2


def test_triple_fault_is_a_clean_shutdown(machine):
    result = run_long(machine, "ud2")  # no IDT: #UD → #DF → triple fault
    assert (result.status, result.reason) == (0, "guest shut down (triple fault)")


def test_timeout_stops_a_guest_that_never_exits(machine):
    start = time.monotonic()
    result = run_real(machine, "1: jmp 1b", timeout=0.3)
    elapsed = time.monotonic() - start
    assert result.status == STATUS_TIMEOUT and "timeout" in result.reason
    assert 0.3 <= elapsed < 1.5
    # and the machine runs again afterwards
    result = run_real(machine, "movb $4, %al\noutb %al, $0xf4")
    assert result.status == 9


def test_instruction_fetch_from_mmio_is_an_internal_error(machine):
    result = run_long(machine, f"mov ${MMIO_BASE:#x}, %rax\njmp *%rax")
    assert result.status == STATUS_INTERNAL_ERROR
    assert "emulation failure" in result.reason and f"{MMIO_BASE:#x}" in result.reason


def test_coalesced_mmio_writes_arrive_in_order_at_the_next_exit(machine):
    log = []

    class Shared(Recorder):
        def __init__(self, tag):
            super().__init__()
            self.log = log
            self.tag = tag

        def write(self, offset, size, value):
            log.append((self.tag, offset, size, value))

    machine.memory.add_mmio(MMIO_BASE, 0x1000, Shared("mmio"), "fb")
    machine.pio.register(0x80, 1, Shared("pio"), "port")
    machine.coalesce_writes(MMIO_BASE, 0x1000)
    result = run_long(machine, f"""
        mov ${MMIO_BASE:#x}, %rbx
        movl $1, (%rbx)
        movl $2, 4(%rbx)
        movw $3, 8(%rbx)
        outb %al, $0x80
        movl $5, 12(%rbx)
        movb $0, %al
        outb %al, $0xf4
    """, rax=0x77)
    assert result.status == 1
    assert log == [("mmio", 0, 4, 1), ("mmio", 4, 4, 2), ("mmio", 8, 2, 3), ("pio", 0, 1, 0x77),
                   ("mmio", 12, 4, 5)]
    assert result.exits == 2  # only the two port writes exited


def test_irq_line_raises_an_interrupt_through_the_in_kernel_pic(machine):
    line = machine.irq_line(5)

    class Trigger:
        def read(self, offset, size):
            return 0

        def write(self, offset, size, value):
            line.set_level(True)

    report = Recorder()
    machine.pio.register(0x81, 1, report, "report")
    machine.pio.register(0x82, 1, Trigger(), "trigger")
    result = run_real(machine, """
        cli
        xor %ax, %ax
        mov %ax, %ds
        mov %ax, %ss
        mov $0x7000, %sp
        movw $isr, 0x25*4
        movw $0, 0x25*4+2
        mov $0x11, %al          # ICW1: edge, cascade, ICW4 follows
        out %al, $0x20
        mov $0x20, %al          # ICW2: vectors 0x20-0x27
        out %al, $0x21
        mov $0x04, %al          # ICW3: slave on IRQ2
        out %al, $0x21
        mov $0x01, %al          # ICW4: 8086 mode
        out %al, $0x21
        mov $0xdf, %al          # unmask IRQ 5 only
        out %al, $0x21
        sti
        out %al, $0x82          # the device raises IRQ 5
    1:  hlt
        jmp 1b
    isr:
        mov $0x20, %al          # EOI
        out %al, $0x20
        mov $0x55, %al
        out %al, $0x81
        mov $3, %al
        out %al, $0xf4
    """)
    assert result.status == 7, result.reason
    assert report.log == [("w", 0, 1, 0x55)]


def test_msrs_and_cpuid_as_the_guest_sees_them(machine):
    vcpu = machine.backend.vcpu
    assert vcpu.get_msrs([0x1A0])[0x1A0] & 1  # IA32_MISC_ENABLE: fast strings, as at reset
    vcpu.set_msrs({0x174: 0x10})  # IA32_SYSENTER_CS
    assert vcpu.get_msrs([0x174]) == {0x174: 0x10}
    dev = Recorder()
    machine.pio.register(0x80, 1, dev, "recorder")
    result = run_real(machine, """
        mov $0x174, %ecx
        rdmsr
        outl %eax, $0x80
        xor %eax, %eax
        cpuid
        mov %ecx, %esi
        mov %ebx, %eax
        outl %eax, $0x80
        mov %edx, %eax
        outl %eax, $0x80
        mov %esi, %eax
        outl %eax, $0x80
        mov $0, %al
        out %al, $0xf4
    """)
    assert result.status == 1
    values = [v for _, _, _, v in dev.log]
    assert values[0] == 0x10
    vendor = b"".join(v.to_bytes(4, "little") for v in values[1:])
    kvm = Kvm()
    try:
        leaf0 = next(e for e in kvm.supported_cpuid().entries if e.function == 0)
    finally:
        kvm.close()
    expected = b"".join(v.to_bytes(4, "little") for v in (leaf0.ebx, leaf0.edx, leaf0.ecx))
    assert vendor == expected and len(vendor.strip(b"\0")) == 12


def test_entry_state_registers_reach_the_guest(machine):
    dev = Recorder()
    machine.pio.register(0x80, 1, dev, "recorder")
    result = run_long(machine, """
        mov %r15, %rax
        outl %eax, $0x80
        shr $32, %rax
        outl %eax, $0x80
        mov %rsi, %rax
        outl %eax, $0x80
        mov $0, %al
        out %al, $0xf4
    """, r15=0x0123456789ABCDEF, rsi=0xCAFE)
    assert result.status == 1
    assert [v for *_, v in dev.log] == [0x89ABCDEF, 0x01234567, 0xCAFE]
    regs = machine.backend.vcpu.get_regs()
    assert regs.r15 == 0x0123456789ABCDEF


def test_a_failing_device_ends_the_run_not_the_monitor(machine):
    class Broken:
        def read(self, offset, size):
            raise ZeroDivisionError("bug in a device model")

        def write(self, offset, size, value):
            pass

    machine.pio.register(0x80, 1, Broken(), "broken")
    result = run_real(machine, "inb $0x80, %al\nhlt")
    assert result.status == STATUS_INTERNAL_ERROR
    assert "ZeroDivisionError" in result.reason


def test_timeout_and_stop_work_when_the_vcpu_runs_on_another_thread(machine):
    import threading

    machine.memory.write(0x7C00, assemble("1: jmp 1b", 0x7C00))
    results = []
    worker = threading.Thread(
        target=lambda: results.append(machine.run(real_mode(0, 0x7C00), timeout=0.3)))
    start = time.monotonic()
    worker.start()
    worker.join(5)
    assert not worker.is_alive() and time.monotonic() - start < 2
    assert results[0].status == STATUS_TIMEOUT
    # a stop requested from the main thread while the guest spins on the worker
    worker = threading.Thread(target=lambda: results.append(machine.run(real_mode(0, 0x7C00))))
    worker.start()
    time.sleep(0.2)
    machine.request_stop(42, "stopped by the host")
    worker.join(5)
    assert not worker.is_alive()
    assert (results[1].status, results[1].reason) == (42, "stopped by the host")


def test_coalesced_port_writes(machine):
    dev = Recorder()
    machine.pio.register(0x90, 1, dev, "buffered-port")
    machine.coalesce_writes(0x90, 1, pio=True)
    result = run_real(machine, """
        mov $1, %al
        out %al, $0x90
        inc %al
        out %al, $0x90
        inc %al
        out %al, $0x90
        mov $0, %al
        out %al, $0xf4
    """)
    assert result.status == 1
    assert dev.log == [("w", 0, 1, 1), ("w", 0, 1, 2), ("w", 0, 1, 3)]
    assert result.exits == 1  # only the debug-exit write left the guest


def test_int3_traps_to_the_guest_handler_with_the_next_rip(machine):
    """#BP is a trap: the handler sees the address after the ``int3`` (SDM Vol. 2, INT3).
    On hosts whose KVM cannot deliver it, the backend does (KvmVcpu._deliver_int3)."""
    report = Recorder()
    machine.pio.register(0x80, 4, report, "report")
    source = """
        mov $0x80000, %rsp
    at: int3
    after:
        mov $1, %al
        out %al, $0xf4
    handler:
        mov (%rsp), %rax        # the saved RIP
        outl %eax, $0x80
        mov $after, %eax
        outl %eax, $0x80
        mov $7, %al
        out %al, $0xf4
    """
    code = assemble(source, 0x10000, 64)
    handler = 0x10000 + code.index(bytes.fromhex("488b0424"))  # mov (%rsp), %rax
    idt = 0x30000
    gate = ((handler & 0xFFFF) | (0x10 << 16) | (0x8E00 << 32)  # present, DPL 0, 64-bit
            | (((handler >> 16) & 0xFFFF) << 48))                # interrupt gate, CS 0x10
    machine.memory.write(idt + 16 * 3, struct.pack("<QQ", gate, handler >> 32))
    machine.memory.write(0x10000, code)
    entry = replace(enter_long_mode(machine.memory, 0x10000), idt=TableRegister(idt, 0xFFF))
    result = machine.run(entry, timeout=5)
    assert result.status == 15, result.reason
    saved, after = [v for *_, v in report.log]
    assert saved == after == 0x10008  # int3 at 0x10007 (after a 7-byte mov)
