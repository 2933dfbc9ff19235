/* S6 anchor: how fast this machine copies SIZE bytes, over and over, for
 * SECS seconds (one thread). Prints "MiB/s cpu_s_per_GiB". The buffers are
 * touched first; the copy alternates between two destinations so the
 * compiler cannot drop it. Usage: memcpy SIZE SECS */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(clockid_t c)
{
	struct timespec t;

	clock_gettime(c, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	size_t size = argc > 1 ? strtoul(argv[1], NULL, 0) : 1 << 20;
	double secs = argc > 2 ? atof(argv[2]) : 5;
	char *src = malloc(size), *dst[2] = { malloc(size), malloc(size) };
	unsigned long n = 0;
	double t0, c0, t1, c1;
	volatile char sink = 0;

	if (!src || !dst[0] || !dst[1] || size == 0)
		return 1;
	memset(src, 0x5a, size);
	memset(dst[0], 0, size);
	memset(dst[1], 0, size);
	t0 = now(CLOCK_MONOTONIC);
	c0 = now(CLOCK_PROCESS_CPUTIME_ID);
	do {
		for (int i = 0; i < 64; i++, n++) {
			memcpy(dst[n & 1], src, size);
			sink ^= dst[n & 1][n % size];
		}
		t1 = now(CLOCK_MONOTONIC);
	} while (t1 - t0 < secs);
	c1 = now(CLOCK_PROCESS_CPUTIME_ID);
	double gib = (double)n * size / (1 << 30);
	printf("%.2f %.4f\n", gib * 1024 / (t1 - t0), (c1 - c0) / gib);
	return sink == 1 ? 0 : 0;
}
