/* Crash-consistency guest for tests/test_virtio_crash_linux.py: appends numbered 512-byte
 * records to the raw disk (record k at byte 512 * k), fsync()s after each, and only after
 * fsync returned prints "x86vm-rec k" on the console. The host kills the monitor at a random
 * moment; every printed k must then be in the image.
 *
 *   appender DEVICE COUNT     from a shell
 *   rdinit=/appender          as the kernel's first process: mounts devtmpfs on /dev, opens
 *                             /dev/console, appends to /dev/vda until killed (or 1,000,000
 *                             records), then powers off. No shell, no busybox: the initramfs
 *                             holds this one file, so the boot is as short as it can be.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC 0x21434552u /* "REC!" */

static void say(const char *s)
{
	if (write(1, s, strlen(s)) < 0)
		_exit(1);
}

int main(int argc, char **argv)
{
	uint32_t rec[128];
	char line[64];
	const char *device = "/dev/vda";
	int fd, k, count = 1000000, i, n, as_init = argc == 1;

	if (as_init) {
		mkdir("/dev", 0755);
		mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
		fd = open("/dev/console", O_RDWR);
		if (fd >= 0 && fd != 1)
			dup2(fd, 1);
		say("x86vm-rec start\n");
	} else if (argc == 3) {
		device = argv[1];
		count = atoi(argv[2]);
	} else {
		return 2;
	}
	fd = open(device, O_RDWR);
	if (fd < 0) {
		say("x86vm-rec: open failed\n");
		return 1;
	}
	for (k = 0; k < count; k++) {
		rec[0] = MAGIC;
		rec[1] = (uint32_t)k;
		for (i = 2; i < 128; i++)
			rec[i] = (uint32_t)k * 0x9E3779B9u + (uint32_t)i;
		if (pwrite(fd, rec, sizeof(rec), (off_t)k * 512) != sizeof(rec) || fsync(fd)) {
			say("x86vm-rec: write failed\n");
			break;
		}
		n = snprintf(line, sizeof(line), "x86vm-rec %d\n", k);
		if (write(1, line, n) != n)
			return 1;
	}
	say("x86vm-rec done\n");
	if (as_init)
		reboot(RB_POWER_OFF);
	return 0;
}
