/* Long-mode test guest, entered through PVH (kind 0) or the Linux 64-bit protocol (kind 1).
 * Exercises port I/O of every width, string port I/O, MMIO of every width, HLT woken by the
 * timer, and (cmdline "triple") a triple fault. Everything it sees goes out on COM1.
 *
 * The test device is QEMU's pc-testdev: an I/O port at 0xe0 and a 64 KiB MMIO window at
 * 0xff000000 (the x86vm tests attach a Python model of the same device). */
#include <stdint.h>
#include "../serial.h"

#define TESTDEV_PORT 0xe0
#define TESTDEV_MMIO 0xff000000UL
#define UNCLAIMED_PORT 0x2e0
#define EXIT_CODE 0x21 /* process status (0x21 << 1) | 1 = 67 */

volatile uint32_t timer_ticks;
extern void timer_isr(void);

struct idt_gate {
    uint16_t offset0, selector;
    uint8_t ist, type;
    uint16_t offset1;
    uint32_t offset2, zero;
} __attribute__((packed));

struct table_pointer {
    uint16_t limit;
    uint64_t base;
} __attribute__((packed));

static struct idt_gate idt[256] __attribute__((aligned(16)));

static void mmio_write(uintptr_t addr, int size, uint64_t v)
{
    switch (size) {
    case 1: __asm__ volatile("movb %b0, (%1)" :: "q"(v), "r"(addr) : "memory"); break;
    case 2: __asm__ volatile("movw %w0, (%1)" :: "r"(v), "r"(addr) : "memory"); break;
    case 4: __asm__ volatile("movl %k0, (%1)" :: "r"(v), "r"(addr) : "memory"); break;
    default: __asm__ volatile("movq %0, (%1)" :: "r"(v), "r"(addr) : "memory"); break;
    }
}

static uint64_t mmio_read(uintptr_t addr, int size)
{
    uint64_t v = 0;
    switch (size) {
    case 1: { uint8_t b; __asm__ volatile("movb (%1), %0" : "=q"(b) : "r"(addr) : "memory"); v = b; break; }
    case 2: { uint16_t w; __asm__ volatile("movw (%1), %0" : "=r"(w) : "r"(addr) : "memory"); v = w; break; }
    case 4: { uint32_t l; __asm__ volatile("movl (%1), %0" : "=r"(l) : "r"(addr) : "memory"); v = l; break; }
    default: __asm__ volatile("movq (%1), %0" : "=r"(v) : "r"(addr) : "memory"); break;
    }
    return v;
}

static void show(const char *what, uint64_t v, int digits)
{
    puts_(what);
    puthex(v, digits);
    puts_("\n");
}

static int contains(const char *s, const char *word)
{
    for (; s && *s; s++) {
        const char *a = s, *b = word;
        while (*b && *a == *b)
            a++, b++;
        if (!*b)
            return 1;
    }
    return 0;
}

static void port_tests(void)
{
    outb(TESTDEV_PORT, 0xa5);
    show("inb after outb 0xa5: ", inb(TESTDEV_PORT), 2);
    outw(TESTDEV_PORT, 0xbeef);
    show("inw after outw 0xbeef: ", inw(TESTDEV_PORT), 4);
    outl(TESTDEV_PORT, 0xdeadbeef);
    show("inl after outl 0xdeadbeef: ", inl(TESTDEV_PORT), 8);
    show("inb unclaimed: ", inb(UNCLAIMED_PORT), 2);
    show("inw unclaimed: ", inw(UNCLAIMED_PORT), 4);
    show("inl unclaimed: ", inl(UNCLAIMED_PORT), 8);
}

static void string_port_tests(void)
{
    static const uint8_t src8[4] = {0x11, 0x22, 0x33, 0x44};
    static const uint16_t src16[3] = {0x1234, 0x5678, 0x9abc};
    static const uint32_t src32[2] = {0xcafef00d, 0x8badf00d};
    uint8_t dst8[4] = {0};
    uint16_t dst16[3] = {0};
    uint32_t dst32[2] = {0};
    const void *s;
    void *d;
    uint64_t n;

    s = src8, n = 4;
    __asm__ volatile("rep outsb" : "+S"(s), "+c"(n) : "d"(TESTDEV_PORT) : "memory");
    d = dst8, n = 4;
    __asm__ volatile("rep insb" : "+D"(d), "+c"(n) : "d"(TESTDEV_PORT) : "memory");
    puts_("rep outsb/insb:");
    for (int i = 0; i < 4; i++) { puts_(" "); puthex(dst8[i], 2); }
    puts_("\n");

    s = src16, n = 3;
    __asm__ volatile("rep outsw" : "+S"(s), "+c"(n) : "d"(TESTDEV_PORT) : "memory");
    d = dst16, n = 3;
    __asm__ volatile("rep insw" : "+D"(d), "+c"(n) : "d"(TESTDEV_PORT) : "memory");
    puts_("rep outsw/insw:");
    for (int i = 0; i < 3; i++) { puts_(" "); puthex(dst16[i], 4); }
    puts_("\n");

    s = src32, n = 2;
    __asm__ volatile("rep outsl" : "+S"(s), "+c"(n) : "d"(TESTDEV_PORT) : "memory");
    d = dst32, n = 2;
    __asm__ volatile("rep insl" : "+D"(d), "+c"(n) : "d"(TESTDEV_PORT) : "memory");
    puts_("rep outsl/insl:");
    for (int i = 0; i < 2; i++) { puts_(" "); puthex(dst32[i], 8); }
    puts_("\n");
}

static void mmio_tests(void)
{
    static const uint64_t values[4] = {0x5a, 0xbeef, 0xdeadbeef, 0x0123456789abcdefULL};
    for (int i = 0; i < 4; i++) {
        int size = 1 << i;
        mmio_write(TESTDEV_MMIO + 0x10 * i, size, values[i]);
    }
    for (int i = 0; i < 4; i++) {
        int size = 1 << i;
        puts_("mmio read");
        putdec(8 * size);
        puts_(": ");
        puthex(mmio_read(TESTDEV_MMIO + 0x10 * i, size), 2 * size);
        puts_("\n");
    }
    show("mmio read8 inside the 64-bit value: ", mmio_read(TESTDEV_MMIO + 0x33, 1), 2);
    show("mmio read32 upper half: ", mmio_read(TESTDEV_MMIO + 0x34, 4), 8);
}

static void hlt_test(void)
{
    uint16_t cs;
    uintptr_t isr = (uintptr_t)timer_isr;
    struct table_pointer idtr = {sizeof(idt) - 1, (uintptr_t)idt};

    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    idt[0x20] = (struct idt_gate){(uint16_t)isr, cs, 0, 0x8e, (uint16_t)(isr >> 16),
                                  (uint32_t)(isr >> 32), 0};
    __asm__ volatile("lidt %0" :: "m"(idtr));
    /* 8259 pair: vectors 0x20/0x28, cascade on IRQ 2, 8086 mode; only IRQ 0 unmasked. */
    outb(0x20, 0x11); outb(0x21, 0x20); outb(0x21, 0x04); outb(0x21, 0x01);
    outb(0xa0, 0x11); outb(0xa1, 0x28); outb(0xa1, 0x02); outb(0xa1, 0x01);
    outb(0x21, 0xfe); outb(0xa1, 0xff);
    /* 8254 channel 0, mode 2, divisor 11932: about 100 Hz. */
    outb(0x43, 0x34); outb(0x40, 11932 & 0xff); outb(0x40, 11932 >> 8);
    __asm__ volatile("sti; hlt; cli" ::: "memory");
    puts_(timer_ticks ? "hlt: woken by the timer interrupt\n" : "hlt: woke without an interrupt\n");
    outb(0x21, 0xff); /* mask the timer again */
}

static void triple_fault(void)
{
    struct table_pointer empty = {0, 0};
    puts_("triple fault next\n");
    __asm__ volatile("lidt %0; ud2" :: "m"(empty));
}

void main64(int kind, uintptr_t info)
{
    const char *cmdline;
    serial_init();
    if (kind == 0) {
        puts_("long-mode guest via PVH\n");
        cmdline = (const char *)*(const uint64_t *)(info + 24);      /* cmdline_paddr */
        show("start_info magic: ", *(const uint32_t *)info, 8);
    } else {
        puts_("long-mode guest via the Linux 64-bit boot protocol\n");
        cmdline = (const char *)(uintptr_t)*(const uint32_t *)(info + 0x228); /* cmd_line_ptr */
        show("boot_params header: ", *(const uint32_t *)(info + 0x202), 8);
    }
    puts_("cmdline: ");
    puts_(cmdline ? cmdline : "(none)");
    puts_("\n");
    if (contains(cmdline, "triple"))
        triple_fault();
    port_tests();
    string_port_tests();
    mmio_tests();
    hlt_test();
    puts_("all done\n");
    debug_exit(EXIT_CODE);
}
