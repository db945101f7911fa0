/* Crash-consistency guest for tests/test_virtio_crash_linux.py: appends numbered 512-byte
 * records to the raw disk (record k at byte 512 * k), fsync()s after each, and only after
 * fsync returned prints "x86vm-rec k" on the console. The host kills the monitor at a random
 * moment; every printed k must then be in the image.
 *
 *   appender DEVICE COUNT
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAGIC 0x21434552u /* "REC!" */

int main(int argc, char **argv)
{
	uint32_t rec[128];
	char line[64];
	int fd, k, count, i, n;

	if (argc != 3)
		return 2;
	count = atoi(argv[2]);
	fd = open(argv[1], O_RDWR);
	if (fd < 0) {
		perror("x86vm-rec: open");
		return 1;
	}
	for (k = 0; k < count; k++) {
		rec[0] = MAGIC;
		rec[1] = (uint32_t)k;
		for (i = 2; i < 128; i++)
			rec[i] = (uint32_t)k * 0x9E3779B9u + (uint32_t)i;
		if (pwrite(fd, rec, sizeof(rec), (off_t)k * 512) != sizeof(rec) || fsync(fd)) {
			perror("x86vm-rec: write");
			return 1;
		}
		n = snprintf(line, sizeof(line), "x86vm-rec %d\n", k);
		if (write(1, line, n) != n)
			return 1;
	}
	write(1, "x86vm-rec done\n", 15);
	return 0;
}
