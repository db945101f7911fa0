/* CPU-bound workloads for bench/cpu.py: a bare-metal long-mode guest (the PVH entry of
 * tests/guests/long64), built with gcc -O2. The command line names the workload and its
 * size; the guest prints a checksum on COM1 and leaves through debug-exit. The last one takes
 * a page fault per page it touches (long mode, IDT, CR2, INVLPG). */
#include <stdint.h>
#include "../tests/guests/serial.h"

volatile uint32_t timer_ticks; /* common.S's timer handler counts here */
static uint8_t buf_a[65536], buf_b[65536];
static uint32_t words[16384];

static int starts_with(const char *s, const char *p)
{
    while (*p)
        if (*s++ != *p++)
            return 0;
    return 1;
}

static uint32_t parse_uint(const char *s)
{
    uint32_t v = 0;
    while (*s >= '0' && *s <= '9')
        v = v * 10 + (uint32_t)(*s++ - '0');
    return v;
}

static uint32_t sieve(uint32_t n)
{
    uint32_t count = 0;
    if (n > sizeof(buf_a))
        n = sizeof(buf_a);
    for (uint32_t i = 0; i < n; i++)
        buf_a[i] = 1;
    for (uint32_t i = 2; i < n; i++) {
        if (!buf_a[i])
            continue;
        count++;
        for (uint32_t j = 2 * i; j < n; j += i)
            buf_a[j] = 0;
    }
    return count;
}

static uint32_t crc32(uint32_t rounds)
{
    uint32_t table[256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
    for (uint32_t i = 0; i < 4096; i++)
        buf_a[i] = (uint8_t)(i * 7 + 3);
    uint32_t crc = 0xFFFFFFFFu;
    for (uint32_t r = 0; r < rounds; r++)
        for (uint32_t i = 0; i < 4096; i++)
            crc = table[(crc ^ buf_a[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

static void quicksort(uint32_t *v, long lo, long hi)
{
    while (lo < hi) {
        uint32_t pivot = v[(lo + hi) / 2];
        long i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot)
                i++;
            while (v[j] > pivot)
                j--;
            if (i <= j) {
                uint32_t t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++, j--;
            }
        }
        if (j - lo < hi - i) {
            quicksort(v, lo, j);
            lo = i;
        } else {
            quicksort(v, i, hi);
            hi = j;
        }
    }
}

static uint32_t qsort_bench(uint32_t n)
{
    uint32_t x = 12345;
    if (n > sizeof(words) / sizeof(words[0]))
        n = sizeof(words) / sizeof(words[0]);
    for (uint32_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        words[i] = x >> 8;
    }
    quicksort(words, 0, (long)n - 1);
    uint32_t sum = 0;
    for (uint32_t i = 0; i < n; i++)
        sum = sum * 31 + words[i];
    for (uint32_t i = 1; i < n; i++)
        if (words[i - 1] > words[i])
            return 0;
    return sum;
}

static void *copy(void *dst, const void *src, unsigned long n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    while (n >= 8) {
        *(uint64_t *)d = *(const uint64_t *)s;
        d += 8, s += 8, n -= 8;
    }
    while (n--)
        *d++ = *s++;
    return dst;
}

static unsigned long length(const char *s)
{
    const char *p = s;
    while (*p)
        p++;
    return (unsigned long)(p - s);
}

static uint32_t memcpy_strlen(uint32_t rounds)
{
    uint32_t total = 0;
    for (uint32_t i = 0; i < 4095; i++)
        buf_a[i] = (uint8_t)('a' + i % 26);
    buf_a[4095] = 0;
    for (uint32_t r = 0; r < rounds; r++) {
        unsigned long n = 1000 + (r * 37) % 3000;
        copy(buf_b, buf_a + (r % 8), n);
        buf_b[n] = 0;
        total += (uint32_t)length((const char *)buf_b);
    }
    return total;
}

/* Demand paging: a 2 MiB window at 1 GiB mapped through a page table whose entries start
 * not present; each first touch of a page is a #PF whose handler maps it. */
#define WINDOW 0x40000000UL
static uint64_t window_pt[512] __attribute__((aligned(4096)));
static uint8_t frames[16][4096] __attribute__((aligned(4096)));
static uint32_t faults;

struct gate {
    uint16_t offset0, selector;
    uint8_t ist, type;
    uint16_t offset1;
    uint32_t offset2, zero;
} __attribute__((packed));
static struct gate idt[32] __attribute__((aligned(16)));

void pf_handler(uint64_t addr)
{
    window_pt[(addr >> 12) & 511] = (uint64_t)(uintptr_t)frames[(addr >> 12) & 15] | 3;
    faults++;
}

extern void pf_isr(void);
__asm__(".globl pf_isr\n"
        "pf_isr:\n"
        "  push %rax\n push %rcx\n push %rdx\n push %rsi\n push %rdi\n"
        "  push %r8\n push %r9\n push %r10\n push %r11\n"
        "  mov %cr2, %rdi\n"
        "  call pf_handler\n"
        "  pop %r11\n pop %r10\n pop %r9\n pop %r8\n"
        "  pop %rdi\n pop %rsi\n pop %rdx\n pop %rcx\n pop %rax\n"
        "  add $8, %rsp\n"               /* the error code */
        "  iretq\n");

static uint32_t pagefault(uint32_t rounds)
{
    uint64_t cr3, *pml4, *pdpt, *pd;
    uint16_t cs;
    uintptr_t isr = (uintptr_t)pf_isr;
    struct { uint16_t limit; uint64_t base; } __attribute__((packed)) idtr =
        {sizeof(idt) - 1, (uintptr_t)idt};
    uint32_t sum = 0;

    __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    pml4 = (uint64_t *)(uintptr_t)(cr3 & ~0xFFFUL);
    pdpt = (uint64_t *)(uintptr_t)(pml4[0] & ~0xFFFUL);
    pd = (uint64_t *)(uintptr_t)(pdpt[1] & ~0xFFFUL);
    pd[0] = (uint64_t)(uintptr_t)window_pt | 3;
    idt[14] = (struct gate){(uint16_t)isr, cs, 0, 0x8e, (uint16_t)(isr >> 16),
                            (uint32_t)(isr >> 32), 0};
    __asm__ volatile("lidt %0; mov %%cr3, %%rax; mov %%rax, %%cr3" :: "m"(idtr) : "rax", "memory");
    for (uint32_t r = 0; r < rounds; r++) {
        for (uint32_t i = 0; i < 512; i++) {
            volatile uint32_t *p = (volatile uint32_t *)(WINDOW + i * 4096UL + (r & 63) * 4);
            *p = i + r;
            sum += *p;
        }
        for (uint32_t i = 0; i < 512; i++) {
            window_pt[i] = 0;
            __asm__ volatile("invlpg (%0)" :: "r"(WINDOW + i * 4096UL) : "memory");
        }
    }
    return sum + faults;
}

void main64(int kind, uintptr_t info)
{
    const char *cmdline = (const char *)*(const uint64_t *)(info + 24);
    uint32_t result = 0;
    const char *arg;
    (void)kind;
    serial_init();
    for (arg = cmdline; *arg && *arg != ' '; arg++)
        ;
    uint32_t n = parse_uint(arg + (*arg == ' '));
    if (starts_with(cmdline, "sieve"))
        result = sieve(n);
    else if (starts_with(cmdline, "crc32"))
        result = crc32(n);
    else if (starts_with(cmdline, "qsort"))
        result = qsort_bench(n);
    else if (starts_with(cmdline, "memcpy"))
        result = memcpy_strlen(n);
    else if (starts_with(cmdline, "pagefault"))
        result = pagefault(n);
    puts_(cmdline);
    puts_(": ");
    puthex(result, 8);
    puts_("\n");
    debug_exit(0);
}
