/* The SIMD test guest (long mode, PVH entry): enables SSE the way an OS does (CR0.EM clear,
 * CR0.MP set, CR4.OSFXSR and CR4.OSXMMEXCPT set), runs work.c and prints its checksums on
 * COM1. This file is compiled without SSE so that nothing runs before SSE is enabled. */
#include <stdint.h>
#include "../serial.h"

volatile uint32_t timer_ticks; /* common.S's timer handler counts here */
void simd_work(uint64_t out[8]);

void main64(int kind, uintptr_t info)
{
    uint64_t out[8];
    uint64_t cr0, cr4;
    (void)kind, (void)info;
    serial_init();
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
    __asm__ volatile("mov %0, %%cr0" :: "r"((cr0 & ~4UL) | 2UL));
    __asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
    __asm__ volatile("mov %0, %%cr4" :: "r"(cr4 | 0x600UL));
    simd_work(out);
    for (int i = 0; i < 8; i++) {
        putdec((uint32_t)i);
        puts_(": ");
        puthex(out[i], 16);
        puts_("\n");
    }
    debug_exit(0);
}
