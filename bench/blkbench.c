/* In-guest block benchmark for bench/virtio_blk.py: runs inside the Linux guest (static,
 * as a second initramfs archive), on the raw disk /dev/vda with O_DIRECT so every request
 * reaches the virtio-blk device instead of the page cache.
 *
 *   blkbench SEQ_MIB RAND_OPS
 *
 * Phases: sequential read and write in 64 KiB requests over SEQ_MIB MiB, then RAND_OPS
 * random 4 KiB reads and writes (a fixed LCG, so both VMMs issue the same offsets). A write
 * phase ends with fdatasync (a virtio-blk FLUSH). Each phase prints a "BENCH <name> start"
 * line before it and a "BENCH <name> end bytes=N ops=N guest_ns=N" line after it: the host
 * times the lines (wall clock), the guest_ns figure is the guest's own clock.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SEQ_CHUNK (64 * 1024)
#define RAND_CHUNK 4096

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

static uint64_t lcg(uint64_t *state)
{
	*state = *state * 6364136223846793005ull + 1442695040888963407ull;
	return *state >> 33;
}

static int phase(int fd, const char *name, int write, int random, uint64_t total_ops,
		 uint64_t chunk, uint64_t disk_chunks, unsigned char *buf)
{
	uint64_t state = 12345, start, ops;

	printf("BENCH %s start\n", name);
	fflush(stdout);
	start = now_ns();
	for (ops = 0; ops < total_ops; ops++) {
		uint64_t index = random ? lcg(&state) % disk_chunks : ops % disk_chunks;
		off_t offset = (off_t)(index * chunk);
		ssize_t done;

		if (write) {
			memset(buf, (int)(ops & 0xFF), 16);
			done = pwrite(fd, buf, chunk, offset);
		} else {
			done = pread(fd, buf, chunk, offset);
		}
		if (done != (ssize_t)chunk) {
			printf("BENCH %s failed at op %llu\n", name, (unsigned long long)ops);
			return 1;
		}
	}
	if (write && fdatasync(fd) != 0) {
		printf("BENCH %s fdatasync failed\n", name);
		return 1;
	}
	printf("BENCH %s end bytes=%llu ops=%llu guest_ns=%llu\n", name,
	       (unsigned long long)(total_ops * chunk), (unsigned long long)total_ops,
	       (unsigned long long)(now_ns() - start));
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t seq_mib = argc > 1 ? strtoull(argv[1], NULL, 0) : 8;
	uint64_t rand_ops = argc > 2 ? strtoull(argv[2], NULL, 0) : 256;
	uint64_t seq_ops = seq_mib * 1024 * 1024 / SEQ_CHUNK;
	unsigned char *buf;
	off_t size;
	int fd = open("/dev/vda", O_RDWR | O_DIRECT);

	if (fd < 0 || posix_memalign((void **)&buf, 4096, SEQ_CHUNK) != 0) {
		printf("BENCH failed: cannot open /dev/vda\n");
		return 1;
	}
	memset(buf, 0xA5, SEQ_CHUNK);
	size = lseek(fd, 0, SEEK_END);
	if (size < (off_t)(seq_mib * 1024 * 1024)) {
		printf("BENCH failed: disk of %lld bytes is smaller than %llu MiB\n",
		       (long long)size, (unsigned long long)seq_mib);
		return 1;
	}
	if (phase(fd, "seq-read", 0, 0, seq_ops, SEQ_CHUNK, seq_ops, buf) ||
	    phase(fd, "seq-write", 1, 0, seq_ops, SEQ_CHUNK, seq_ops, buf) ||
	    phase(fd, "rand-read", 0, 1, rand_ops, RAND_CHUNK, size / RAND_CHUNK, buf) ||
	    phase(fd, "rand-write", 1, 1, rand_ops, RAND_CHUNK, size / RAND_CHUNK, buf))
		return 1;
	printf("BENCH done\n");
	return 0;
}
