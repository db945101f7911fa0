#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PORT 0x3f8          /* COM1 */
#define QEMU_EXIT_PORT 0xf4 /* -device isa-debug-exit,iobase=0xf4,iosize=0x04 */

typedef struct multiboot_info {
	uint32_t flags;
	uint32_t mem_lower;
	uint32_t mem_upper;
	uint32_t boot_device;
	uint32_t cmdline;
} multiboot_info_t;

static inline void outb(uint16_t port, uint8_t val)
{
	asm volatile ( "outb %b0, %w1" : : "a"(val), "Nd"(port) : "memory");
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t ret;
	asm volatile ( "inb %w1, %b0" : "=a"(ret) : "Nd"(port) : "memory");
	return ret;
}

static int init_serial(void)
{
	outb(PORT + 1, 0x00);    // Disable all interrupts
	outb(PORT + 3, 0x80);    // Enable DLAB (set baud rate divisor)
	outb(PORT + 0, 0x03);    // Set divisor to 3 (lo byte) 38400 baud
	outb(PORT + 1, 0x00);    //                  (hi byte)
	outb(PORT + 3, 0x03);    // 8 bits, no parity, one stop bit
	outb(PORT + 2, 0xC7);    // Enable FIFO, clear them, with 14-byte threshold
	outb(PORT + 4, 0x0B);    // IRQs enabled, RTS/DSR set
	outb(PORT + 4, 0x1E);    // Set in loopback mode, test the serial chip
	outb(PORT + 0, 0xAE);    // Test serial chip (send byte 0xAE and check if serial returns same byte)

	// Check if serial is faulty (i.e: not same byte as sent)
	if(inb(PORT + 0) != 0xAE) {
		return 1;
	}

	// If serial is not faulty set it in normal operation mode
	// (not-loopback with IRQs enabled and OUT#1 and OUT#2 bits enabled)
	outb(PORT + 4, 0x0F);
	return 0;
}

static int is_transmit_empty(void)
{
	return inb(PORT + 5) & 0x20;
}

static void write_serial(char a)
{
	while (is_transmit_empty() == 0);

	outb(PORT, a);
}

static size_t strlen(const char* str)
{
	size_t len = 0;
	while (str[len])
		len++;
	return len;
}

static void terminal_write(const char* data, size_t size)
{
	for (size_t i = 0; i < size; i++)
		write_serial(data[i]);
}

static void terminal_writestring(const char* data)
{
	terminal_write(data, strlen(data));
}

static void terminal_writeuint(uint32_t n)
{
	char buf[12];
	int i = 11;
	buf[i] = '\0';
	do {
		buf[--i] = '0' + n % 10;
		n /= 10;
	} while (n);
	terminal_writestring(&buf[i]);
}

static void exit_qemu(uint8_t code)
{
	outb(QEMU_EXIT_PORT, code);
}

void kernel_main(uint32_t magic, multiboot_info_t* mbi)
{
	if (init_serial() != 0) {
		exit_qemu(0x7f);
	}
	terminal_writestring("Hello, kernel World!\n");
	if (magic != 0x2BADB002) {
		terminal_writestring("Invalid magic number!\n");
		exit_qemu(0x7e);
	}
	if (mbi->flags & 0x1) {
		terminal_writestring("Upper memory: ");
		terminal_writeuint(mbi->mem_upper / 1024);
		terminal_writestring(" MiB\n");
	}
	terminal_writestring("Shutting down.\n");
	exit_qemu(0x31);
}
