/* S1 anchor with lst's working set: one TCP stream over loopback, like
 * iperf3 -l SIZE, but each side cycles through NBUF buffers of SIZE bytes
 * instead of reusing one. lst brw write at concurrency N sends from N
 * source buffers and receives into up to N sink buffers; iperf3 sends
 * from and receives into one buffer that stays in the cache. With NBUF 1
 * this program is iperf3's shape; with NBUF N it is lst's.
 *
 * A receiver process and a sender process, TCP_NODELAY, default buffer
 * sizes. The sender writes whole buffers for SECS seconds. Every page of
 * every buffer is written before the run (no shared zero page).
 *
 * Prints "MiB/s cpu_s_per_GiB ctxsw_per_GiB": the receiver's rate over
 * the run, and both processes' CPU time and context switches per GiB
 * moved. Usage: tcp-copy NBUF SIZE SECS */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static char **buffers(int n, size_t size)
{
	char **b = calloc(n, sizeof(*b));

	for (int i = 0; b && i < n; i++) {
		if (posix_memalign((void **)&b[i], 4096, size))
			return NULL;
		memset(b[i], 0x5a, size);
	}
	return b;
}

static double cpu(const struct rusage *r)
{
	return r->ru_utime.tv_sec + r->ru_utime.tv_usec / 1e6 +
	       r->ru_stime.tv_sec + r->ru_stime.tv_usec / 1e6;
}

static int sender(struct sockaddr_in *a, int n, size_t size, double secs)
{
	char **b = buffers(n, size);
	int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	unsigned long i = 0;
	double t0;

	if (!b || s < 0 || connect(s, (struct sockaddr *)a, sizeof(*a)) ||
	    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one))) {
		perror("tcp-copy sender");
		return 1;
	}
	t0 = now();
	while (now() - t0 < secs) {
		char *p = b[i++ % n];

		for (size_t off = 0; off < size;) {
			ssize_t w = write(s, p + off, size - off);

			if (w <= 0) {
				perror("tcp-copy write");
				return 1;
			}
			off += w;
		}
	}
	close(s);
	return 0;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1;
	size_t size = argc > 2 ? strtoul(argv[2], NULL, 0) : 1 << 20;
	double secs = argc > 3 ? atof(argv[3]) : 5;
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0), s, status;
	unsigned long long total = 0;
	unsigned long i = 0;
	struct rusage self, kids;
	char **b;
	double t0, t;
	pid_t pid;

	if (n < 1 || size == 0 || secs <= 0) {
		fprintf(stderr, "usage: tcp-copy NBUF SIZE SECS\n");
		return 2;
	}
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) ||
	    getsockname(l, (struct sockaddr *)&a, &alen) || listen(l, 1)) {
		perror("tcp-copy listen");
		return 1;
	}
	pid = fork();
	if (pid < 0) {
		perror("tcp-copy fork");
		return 1;
	}
	if (pid == 0)
		_exit(sender(&a, n, size, secs));
	b = buffers(n, size);
	s = accept(l, NULL, NULL);
	if (!b || s < 0) {
		perror("tcp-copy receiver");
		return 1;
	}
	t0 = now();
	for (;;) {
		char *p = b[i++ % n];
		size_t off = 0;
		ssize_t r = 1;

		while (off < size && (r = read(s, p + off, size - off)) > 0)
			off += r;
		total += off;
		if (r <= 0)
			break;
	}
	t = now() - t0;
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "tcp-copy: the sender failed\n");
		return 1;
	}
	getrusage(RUSAGE_SELF, &self);
	getrusage(RUSAGE_CHILDREN, &kids);
	if (total == 0) {
		fprintf(stderr, "tcp-copy: nothing received\n");
		return 1;
	}
	{
		double gib = total / 1073741824.0;
		long cs = self.ru_nvcsw + self.ru_nivcsw + kids.ru_nvcsw + kids.ru_nivcsw;

		printf("%.2f %.3f %.1f\n", total / t / 1048576, (cpu(&self) + cpu(&kids)) / gib, cs / gib);
	}
	return 0;
}
