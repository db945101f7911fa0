/* The guest the gdb stub tests debug: entered in long mode by the Linux 64-bit boot protocol
 * (bzImage), it calls a function to break at, writes a variable to watch, says so on COM1 and
 * ends through the debug-exit port (status (0x11 << 1) | 1 = 35). */
#include <stdint.h>
#include "../serial.h"

volatile uint32_t timer_ticks; /* used by common.S's timer handler */
volatile uint64_t watched;

__attribute__((noinline)) uint64_t add_squares(uint64_t n)
{
    uint64_t sum = 0;
    for (uint64_t i = 1; i <= n; i++)
        sum += i * i;
    return sum;
}

void main64(int kind, uintptr_t info)
{
    (void)kind;
    (void)info;
    serial_init();
    puts_("gdb guest\n");
    watched = add_squares(10);
    puts_("done\n");
    outb(DEBUG_EXIT_PORT, 0x11);
    for (;;)
        __asm__ volatile("cli; hlt");
}
