"""The ACPI PM1 register block of QEMU's PIIX4 power management function, at port 0x600.

===== ==== =========================================================================
port  size register (ACPI 6.4 §4.8.3)
===== ==== =========================================================================
0x600 2    PM1a_STS: status bits, write 1 to clear (TMR_STS bit 0, PWRBTN_STS bit 8,
           RTC_STS bit 10: the RTC alarm fired, WAK_STS bit 15: it woke the machine)
0x602 2    PM1a_EN: enables (stored; no SCI is raised here; RTC_EN bit 10 arms the wake)
0x604 2    PM1a_CNT: SCI_EN bit 0 reads 1 (the FADT has no SMI_CMD: always ACPI mode);
           SLP_TYP bits 12-10, SLP_EN bit 13 (write only): SLP_EN with the ``\\_S5``
           type (0, as QEMU's DSDT says) powers the machine off; with the ``\\_S3`` type
           (1, QEMU's) it suspends to RAM until the RTC alarm (with RTC_EN) wakes it
0x608 4    PM_TMR: 24-bit counter at 3.579545 MHz of guest time (§4.8.3.3)
===== ==== =========================================================================

Power-off ends the run with status 0 ("ACPI power-off (S5)"), the QEMU-compatible path a
Linux guest with ACPI takes for ``poweroff``. Suspend to RAM (S3) stops the vCPU
(``Machine.request_suspend``) and its wake-up restarts it at the FACS waking vector, as
SeaBIOS resumes a QEMU guest (kvm-unit-tests s3). Other sleep types are ignored (the DSDT
declares only ``\\_S5``). The firmware tables that point a kernel here are written by the
boot loader (``machine/boot/firmware.py``).
"""

from __future__ import annotations

from collections.abc import Callable

from x86vm.devices.ports import ByteRegisters

PM_TIMER_HZ = 3_579_545
SCI_EN = 1 << 0
SLP_TYP_SHIFT, SLP_TYP_MASK = 10, 7 << 10
SLP_EN = 1 << 13
S5_TYPE = 0
S3_TYPE = 1          # QEMU's DSDT: Name (_S3, Package (4) {1, 1, 0, 0})
RTC_STS = RTC_EN = 1 << 10
WAK_STS = 1 << 15
PM1_CNT_WRITABLE = 0x1C06 & ~SCI_EN  # BM_RLD, GBL_RLS, SLP_TYP (SLP_EN reads 0)


class AcpiPm(ByteRegisters):
    """PM1a event, control and timer registers (12 ports)."""

    span = 12

    def __init__(self, clock_ns: Callable[[], int],
                 power_off: Callable[[int, str], None], *,
                 suspend: Callable[[], None] | None = None,
                 wake: Callable[[], None] | None = None) -> None:
        self.clock_ns = clock_ns
        self.power_off = power_off
        self.suspend, self.wake = suspend, wake
        self.sleeping = False
        self.sts = 0
        self.en = 0
        self.cnt = SCI_EN

    def timer(self) -> int:
        return self.clock_ns() * PM_TIMER_HZ // 1_000_000_000 & 0xFFFFFF

    def read_byte(self, offset: int) -> int:
        if offset < 2:
            return self.sts >> (8 * offset) & 0xFF
        if offset < 4:
            return self.en >> (8 * (offset - 2)) & 0xFF
        if offset < 6:
            return self.cnt >> (8 * (offset - 4)) & 0xFF
        if 8 <= offset < 12:
            return self.timer() >> (8 * (offset - 8)) & 0xFF
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        """PM1_CNT is acted on as a whole 16-bit write (SLP_TYP and SLP_EN together)."""
        if offset == 4 and size >= 2:
            self._write_cnt(value & 0xFFFF)
            return
        super().write(offset, size, value)

    def write_byte(self, offset: int, value: int) -> None:
        if offset < 2:
            self.sts &= ~(value << (8 * offset))
        elif offset < 4:
            shift = 8 * (offset - 2)
            self.en = (self.en & ~(0xFF << shift)) | value << shift
        elif offset == 4:
            self._write_cnt((self.cnt & 0xFF00) | value)
        elif offset == 5:
            self._write_cnt((self.cnt & 0x00FF) | value << 8)

    def _write_cnt(self, value: int) -> None:
        self.cnt = SCI_EN | (value & PM1_CNT_WRITABLE)
        sleep_type = (value & SLP_TYP_MASK) >> SLP_TYP_SHIFT
        if value & SLP_EN and sleep_type == S5_TYPE:
            self.power_off(0, "ACPI power-off (S5)")
        elif value & SLP_EN and sleep_type == S3_TYPE and self.suspend is not None:
            self.sleeping = True
            self.suspend()

    def rtc_alarm(self) -> None:
        """The RTC's alarm fired (ACPI 6.4 §4.8.2.1.1): RTC_STS; with RTC_EN it wakes a
        sleeping machine (WAK_STS)."""
        self.sts |= RTC_STS
        if self.sleeping and self.en & RTC_EN:
            self.sleeping = False
            self.sts |= WAK_STS
            if self.wake is not None:
                self.wake()
