/* Why the lo LND's copy threads each keep their own destination buffers
 * (lnetd/src/lo.rs, "lanes"). NBUF pairs of 1 MiB buffers (source, destination)
 * are copied for SECS seconds by THREADS threads, either each thread on its
 * own buffers (thread t copies pairs t, t + THREADS, ...: "own") or every
 * thread taking the next pair in turn ("turns"), so that a destination is
 * written by one CPU, then by another. Prints MiB/s copied by all threads.
 * Usage: copy-lanes THREADS own|turns SECS [NBUF] (NBUF at most 64). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SIZE (1 << 20)
#define MAXBUF 64

static int threads, turns, nbuf = 8;
static char *src[MAXBUF], *dst[MAXBUF];
static atomic_ulong next_pair, copied;
static atomic_int stop;

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static void *run(void *arg)
{
	unsigned long id = (unsigned long)arg, n = 0;

	while (!atomic_load(&stop)) {
		unsigned long k = turns ? atomic_fetch_add(&next_pair, 1) : n++ * threads + id;

		memcpy(dst[k % nbuf], src[k % nbuf], SIZE);
		atomic_fetch_add(&copied, 1);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t[MAXBUF];
	double secs, t0;

	if (argc < 4) {
		fprintf(stderr, "usage: copy-lanes THREADS own|turns SECS [NBUF]\n");
		return 2;
	}
	threads = atoi(argv[1]);
	turns = strcmp(argv[2], "turns") == 0;
	secs = atof(argv[3]);
	if (argc > 4)
		nbuf = atoi(argv[4]);
	if (threads < 1 || threads > MAXBUF || nbuf < threads || nbuf > MAXBUF)
		return 2;
	for (int i = 0; i < nbuf; i++) {
		src[i] = aligned_alloc(4096, SIZE);
		dst[i] = aligned_alloc(4096, SIZE);
		if (!src[i] || !dst[i])
			return 1;
		memset(src[i], 0x5a, SIZE);
		memset(dst[i], 0, SIZE);
	}
	t0 = now();
	for (long i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, run, (void *)i);
	while (now() - t0 < secs) {
		struct timespec ten_ms = { 0, 10000000 };

		nanosleep(&ten_ms, NULL);
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	printf("%d threads, %s: %.0f MiB/s\n", threads, turns ? "turns" : "own",
	       atomic_load(&copied) / (now() - t0));
	return 0;
}
