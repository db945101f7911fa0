"""The device probes as real guests on the KVM Machine, against QEMU 7.2 running the same
image: identical port reads (over a debug console at 0xe9), COM1 output and exit status.

The probe image is a 64 KiB real-mode "BIOS" (dev_probe.py); on x86vm it is copied to
0xf0000 and entered at f000:fff0 like a reset vector. Needs the kvm, qemu and binutils
oracles (tests/support/oracles.py).
"""

from __future__ import annotations

import calendar

import pytest

from dev_probe import apply_masks, asm, build_image, out, run_under_qemu
from dev_scenarios import SCENARIOS, cmos_dump
from x86vm.devices.console import BufferConsole
from x86vm.devices.pc import attach_pc_devices
from x86vm.machine import vm
from x86vm.machine.boot import state as boot_state

pytestmark = [pytest.mark.oracle("qemu", "binutils"), pytest.mark.kvm]

RTC_EPOCH = calendar.timegm((2020, 1, 2, 15, 4, 5, 0, 0, 0))
RTC_ARGS = ("-rtc", "base=2020-01-02T15:04:05,clock=vm")


class DebugCon:
    """Bochs/QEMU debug console port: bytes written are recorded."""

    def __init__(self) -> None:
        self.data = bytearray()

    def read(self, offset: int, size: int) -> int:
        return 0xE9

    def write(self, offset: int, size: int, value: int) -> None:
        self.data += (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")


def run_on_kvm(image: bytes, timeout: float = 30, host_input: bytes = b""):
    machine = vm.Machine(memory_size=128 << 20, backend="kvm")
    try:
        console = BufferConsole()
        attach_pc_devices(machine, console, rtc_start=RTC_EPOCH)
        debugcon = DebugCon()
        machine.pio.register(0xE9, 1, debugcon, "debugcon")
        machine.memory.write(0xF0000, image)
        if host_input:
            console.send(host_input)
        result = machine.run(boot_state.real_mode(0xF000, 0xFFF0), timeout=timeout)
        return result, bytes(debugcon.data), bytes(console.output)
    finally:
        machine.close()


@pytest.mark.parametrize("name", sorted(SCENARIOS) + ["cmos_dump"])
def test_probe_guest_on_kvm_matches_qemu(tmp_path, name):
    # Both RTCs start at RTC_EPOCH (x86vm's when the devices are attached); each probe ends
    # within milliseconds, long before either clock reaches the next second.
    ops = cmos_dump() if name == "cmos_dump" else SCENARIOS[name]()
    qemu_reads, qemu_serial = run_under_qemu(ops, tmp_path, extra=RTC_ARGS)
    image = build_image(ops, tmp_path).read_bytes()
    result, reads, serial = run_on_kvm(image)
    assert (result.status, result.reason) == (1, "debug-exit: guest wrote 0x0")
    assert apply_masks(ops, reads).hex(" ") == qemu_reads.hex(" ")
    assert serial == qemu_serial


def test_exit_status_and_reset_on_kvm(tmp_path):
    image = build_image([], tmp_path, exit_value=0x2A).read_bytes()
    result, _, _ = run_on_kvm(image)
    assert result.status == (0x2A << 1) | 1
    image = build_image([out(0x64, 0xFE), out(0xF4, 0x01)], tmp_path).read_bytes()
    result, _, _ = run_on_kvm(image)
    assert result.status == 0 and "i8042" in result.reason


# IRQ 4 end to end: the UART's IrqLine → the interrupt controller → the guest's handler.
# Real mode: IVT entry 0x24 (PIC base 0x20 + IRQ 4), master PIC initialised with only IRQ 4
# unmasked, the LAPIC in virtual wire mode; the handler copies IIR (and any received bytes)
# to the debug console.
IRQ4_SETUP = """
  cli
  xor %ax, %ax
  mov %ax, %ds
  mov %ax, %ss
  mov $0x7000, %sp
  movw $irq4, 0x24*4
  movw $0xf000, 0x24*4+2
  movb $0, 0x500
  lgdtl %cs:gdtr                                      # "unreal" FS with a 4 GiB limit to
  mov %cr0, %eax                                      # reach the LAPIC registers
  or $1, %al
  mov %eax, %cr0
  mov $8, %bx
  mov %bx, %fs
  and $0xfe, %al
  mov %eax, %cr0
  xor %bx, %bx
  mov %bx, %fs
  addr32 movl $0x1ff, %fs:0xfee000f0                  # SVR: LAPIC software-enabled
  addr32 movl $0x700, %fs:0xfee00350                  # LVT0: ExtINT, virtual wire mode
  mov $0x11, %al; out %al, $0x20
  mov $0x20, %al; out %al, $0x21
  mov $0x04, %al; out %al, $0x21
  mov $0x01, %al; out %al, $0x21
  mov $0xef, %al; out %al, $0x21
  mov $0x3fc, %dx; mov $0x08, %al; out %al, %dx     # MCR.OUT2: IRQ buffer enabled
  mov $0x3f9, %dx; mov ${ier:#x}, %al; out %al, %dx
wait: cli
  cmpb $0, 0x500
  jne done
  sti                                                 # STI's one-instruction shadow: the
  hlt                                                 # interrupt cannot slip in before HLT
  jmp wait
irq4:
  push %ax
  push %dx
  mov $0x3fa, %dx; in %dx, %al
  mov $0xe9, %dx; out %al, %dx
1: mov $0x3fd, %dx; in %dx, %al                      # drain the receiver
  test $1, %al
  jz 2f
  mov $0x3f8, %dx; in %dx, %al
  mov $0xe9, %dx; out %al, %dx
  jmp 1b
2: mov $0x3f9, %dx; xor %al, %al; out %al, %dx       # IER = 0: one interrupt is enough
  mov $0x20, %al; out %al, $0x20                      # EOI
  movb $1, 0x500
  pop %dx
  pop %ax
  iret
gdtr: .word 15
  .long 0xf0000 + gdt
  .balign 8
gdt: .quad 0
  .quad 0x00cf92000000ffff
done: cli
"""


def test_thre_interrupt_reaches_the_guest_like_qemu(tmp_path):
    ops = [asm(IRQ4_SETUP.format(ier=0x02))]
    qemu_reads, _ = run_under_qemu(ops, tmp_path, extra=RTC_ARGS, timeout=20)
    assert qemu_reads == b"\x02"  # QEMU: the handler ran and saw IIR = THRE
    result, reads, _ = run_on_kvm(build_image(ops, tmp_path).read_bytes(), timeout=10)
    assert result.status == 1 and reads == qemu_reads


def test_received_data_interrupt_delivers_host_input(tmp_path):
    ops = [asm(IRQ4_SETUP.format(ier=0x01))]
    result, reads, _ = run_on_kvm(build_image(ops, tmp_path).read_bytes(), timeout=10,
                                  host_input=b"hi!")
    assert result.status == 1 and reads == b"\x04hi!"  # IIR = RDA, then the bytes in order
