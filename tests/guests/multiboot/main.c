/* Multiboot 32-bit test guest: prints what the loader handed over, exits via debug-exit. */
#include <stdint.h>
#include "../serial.h"

struct mb_info {
    uint32_t flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr;
    uint32_t syms[4];
    uint32_t mmap_length, mmap_addr;
};

struct mb_module {
    uint32_t mod_start, mod_end, string, reserved;
};

#define EXIT_CODE 0x2a /* process status (0x2a << 1) | 1 = 85 */

void mb_main(uint32_t magic, const struct mb_info *mbi)
{
    serial_init();
    puts_("multiboot guest\n");
    puts_("magic: ");
    puthex(magic, 8);
    puts_(magic == 0x2BADB002 ? " ok\n" : " BAD\n");
    if (mbi->flags & 1) {
        puts_("mem_upper: ");
        putdec(mbi->mem_upper);
        puts_(" KiB\n");
    }
    if (mbi->flags & 4) {
        puts_("cmdline: ");
        puts_((const char *)(uintptr_t)mbi->cmdline);
        puts_("\n");
    }
    if (mbi->flags & 8) {
        const struct mb_module *m = (const void *)(uintptr_t)mbi->mods_addr;
        puts_("modules: ");
        putdec(mbi->mods_count);
        puts_("\n");
        for (uint32_t i = 0; i < mbi->mods_count; i++) {
            const char *data = (const char *)(uintptr_t)m[i].mod_start;
            uint32_t size = m[i].mod_end - m[i].mod_start;
            puts_("module ");
            putdec(i);
            puts_(": ");
            putdec(size);
            puts_(" bytes, page aligned: ");
            puts_(m[i].mod_start & 0xfff ? "no" : "yes");
            puts_(", first line: ");
            for (uint32_t j = 0; j < size && data[j] != '\n'; j++)
                putch(data[j]);
            puts_("\n");
        }
    }
    puts_("bye\n");
    debug_exit(EXIT_CODE);
}
