/* An anchor with the wire shape of `lst brw write`, without LNet: what the
 * protocol's four messages per RPC cost on a host, by themselves.
 *
 * One RPC, as lst brw write over the TCP LND makes it:
 *   client -> server  REQUEST  a 96-byte header (the TCP LND's and LNet's
 *                              headers are 24 + 72 bytes) and 128 bytes
 *   server -> client  GET      a header: "send me the bulk of RPC id"
 *   client -> server  REPLY    a header and SIZE bytes from the client's
 *                              buffer for that RPC
 *   server -> client  RESPONSE a header and 128 bytes; the RPC is done and
 *                              the client starts the next one on its slot
 * The client keeps CONC RPCs in flight on one TCP connection, each slot
 * with a source buffer of its own (lst's test units). The server takes a
 * sink buffer from a pool (a stack, as lst's) when a request comes and
 * gives it back when the bulk has arrived.
 *
 * Both sides are written the way a careful C programmer would write them:
 * one thread, non-blocking sockets with TCP_NODELAY, a read of everything
 * the socket holds before the answers go out in one writev, a bulk payload
 * read straight into its buffer. The server serves any number of clients
 * on one thread with epoll (S8 runs one client per namespace).
 *
 * Usage:
 *   tcp-rpc server ADDR PORT SIZE POOL   (runs until killed)
 *   tcp-rpc client ADDR PORT SIZE CONC SECS
 * The client runs one second of warm-up, then SECS seconds, and prints the
 * bulk it moved in the measured window in MiB/s. CPU time is the caller's
 * to measure (/proc for the server, rusage for the client).
 *
 * Two probes, by environment, for either side: TCP_RPC_SPIN=1 busy-polls
 * (poll and epoll_wait with no timeout: never sleeps, as UCX's progress
 * loop), TCP_RPC_ONEBUF=1 sends from one buffer and receives into one, for
 * every RPC (iperf3's and UCX tag_bw's working set, not lst's). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define HDR 96
#define SMALL 128
#define RXBUF (64 * 1024)
#define MAXCONC 256
#define MAXIOV 1024

enum { REQUEST = 1, GET, REPLY, RESPONSE };

struct hdr {
	uint32_t type, id, len;
	uint8_t pad[HDR - 12];
};

struct conn {
	int fd, server, want_out;
	/* receive: a staging buffer, then the message being read */
	char rx[RXBUF];
	size_t have, off;
	struct hdr cur;
	int in_payload;
	char *dst;
	size_t got;
	/* send: queued iovecs, headers stored beside them */
	struct hdr hb[MAXIOV / 2];
	int nhdr;
	struct iovec iov[MAXIOV];
	int head, niov;
	/* server: the sink buffer of each RPC id; client: its slots */
	char *slot[MAXCONC];
};

static size_t size;
static char scratch[SMALL];
static char **pool;
static int npool;
static unsigned long long done_bytes;
static int spin, onebuf;

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static void __attribute__((noreturn)) die(const char *what)
{
	perror(what);
	exit(1);
}

static char *buffer(void)
{
	char *b;

	if (posix_memalign((void **)&b, 4096, size))
		die("posix_memalign");
	memset(b, 0x5a, size);
	return b;
}

static void queue(struct conn *c, uint32_t type, uint32_t id, void *data,
		  size_t len)
{
	struct hdr *h;

	if (c->nhdr == MAXIOV / 2 || c->niov + 2 > MAXIOV) {
		fprintf(stderr, "tcp-rpc: send queue full\n");
		exit(1);
	}
	h = &c->hb[c->nhdr++];
	memset(h, 0, sizeof(*h));
	h->type = type;
	h->id = id;
	h->len = len;
	c->iov[c->niov++] = (struct iovec){ h, HDR };
	if (len)
		c->iov[c->niov++] = (struct iovec){ data, len };
}

/* Writes what is queued; returns 1 if some is left for POLLOUT, -1 if the
 * peer is gone. */
static int flush(struct conn *c)
{
	while (c->head < c->niov) {
		int n = c->niov - c->head;
		ssize_t w = writev(c->fd, c->iov + c->head, n > 64 ? 64 : n);

		if (w < 0) {
			if (errno == EAGAIN)
				return 1;
			if (errno == EPIPE || errno == ECONNRESET)
				return -1;
			die("writev");
		}
		while (w > 0) {
			struct iovec *v = &c->iov[c->head];

			if ((size_t)w >= v->iov_len) {
				w -= v->iov_len;
				c->head++;
			} else {
				v->iov_base = (char *)v->iov_base + w;
				v->iov_len -= w;
				w = 0;
			}
		}
	}
	c->head = c->niov = c->nhdr = 0;
	return 0;
}

static void dispatch(struct conn *c)
{
	struct hdr *h = &c->cur;

	if (h->id >= MAXCONC) {
		fprintf(stderr, "tcp-rpc: bad id %u\n", h->id);
		exit(1);
	}
	switch (h->type) {
	case REQUEST: /* server: a sink for the bulk, then ask for it */
		if (!npool) {
			fprintf(stderr, "tcp-rpc: the pool is empty: raise POOL\n");
			exit(1);
		}
		if (c->slot[h->id]) {
			fprintf(stderr, "tcp-rpc: RPC %u is already in flight\n", h->id);
			exit(1);
		}
		c->slot[h->id] = pool[--npool];
		queue(c, GET, h->id, NULL, 0);
		break;
	case REPLY: /* server: the bulk is in; free the sink, answer */
		pool[npool++] = c->slot[h->id];
		c->slot[h->id] = NULL;
		queue(c, RESPONSE, h->id, scratch, SMALL);
		break;
	case GET: /* client: send the bulk from the slot's buffer */
		queue(c, REPLY, h->id, c->slot[h->id], size);
		break;
	case RESPONSE: /* client: the RPC is done; the slot starts the next */
		done_bytes += size;
		queue(c, REQUEST, h->id, scratch, SMALL);
		break;
	default:
		fprintf(stderr, "tcp-rpc: bad message type %u\n", h->type);
		exit(1);
	}
}

/* One recv: the bytes read, 0 when none are there, -1 when the peer is
 * gone. */
static ssize_t rx(int fd, char *buf, size_t len)
{
	ssize_t r = recv(fd, buf, len, 0);

	if (r > 0)
		return r;
	if (r == 0 || errno == ECONNRESET)
		return -1;
	if (errno == EAGAIN)
		return 0;
	die("recv");
}

/* Reads and handles everything the socket holds; returns -1 at EOF. */
static int pump(struct conn *c)
{
	for (;;) {
		size_t avail = c->have - c->off;

		if (!c->in_payload && avail >= HDR) {
			memcpy(&c->cur, c->rx + c->off, HDR);
			c->off += HDR;
			c->in_payload = 1;
			c->got = 0;
			c->dst = c->cur.type == REPLY && c->server ?
					 c->slot[c->cur.id % MAXCONC] :
					 scratch;
			if (c->cur.len > (c->cur.type == REPLY ? size : SMALL)) {
				fprintf(stderr, "tcp-rpc: bad length %u\n", c->cur.len);
				exit(1);
			}
			continue;
		}
		if (c->in_payload) {
			size_t need = c->cur.len - c->got;
			size_t take = avail < need ? avail : need;

			if (take) {
				if (c->dst != scratch)
					memcpy(c->dst + c->got, c->rx + c->off, take);
				c->off += take;
				c->got += take;
				need -= take;
			}
			if (!need) {
				c->in_payload = 0;
				dispatch(c);
				continue;
			}
			if (need >= RXBUF / 2 && c->dst != scratch) {
				/* A bulk payload: straight into its buffer. */
				ssize_t r = rx(c->fd, c->dst + c->got, need);

				if (r <= 0)
					return r;
				c->got += r;
				continue;
			}
		}
		/* Refill the staging buffer. */
		if (c->off == c->have) {
			c->off = c->have = 0;
		} else if (c->off > RXBUF / 2) {
			memmove(c->rx, c->rx + c->off, c->have - c->off);
			c->have -= c->off;
			c->off = 0;
		}
		ssize_t r = rx(c->fd, c->rx + c->have, RXBUF - c->have);

		if (r <= 0)
			return r;
		c->have += r;
	}
}

static void tune(int fd)
{
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)))
		die("TCP_NODELAY");
}

static struct sockaddr_in address(const char *addr, const char *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(atoi(port)) };

	if (inet_pton(AF_INET, addr, &a.sin_addr) != 1) {
		fprintf(stderr, "tcp-rpc: bad address %s\n", addr);
		exit(2);
	}
	return a;
}

static void __attribute__((noreturn)) server(struct sockaddr_in *a, int n)
{
	int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL }, evs[64];

	pool = calloc(n, sizeof(*pool));
	if (!pool)
		die("calloc");
	for (npool = 0; npool < n; npool++)
		pool[npool] = onebuf && npool ? pool[0] : buffer();
	if (l < 0 || ep < 0 ||
	    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(l, (struct sockaddr *)a, sizeof(*a)) || listen(l, 64) ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev))
		die("listen");
	for (;;) {
		int k = epoll_wait(ep, evs, 64, spin ? 0 : -1);

		if (k < 0 && errno != EINTR)
			die("epoll_wait");
		for (int i = 0; i < k; i++) {
			struct conn *c = evs[i].data.ptr;

			if (!c) {
				int fd = accept4(l, NULL, NULL, SOCK_NONBLOCK);

				if (fd < 0)
					continue;
				tune(fd);
				c = calloc(1, sizeof(*c));
				if (!c)
					die("calloc");
				c->fd = fd;
				c->server = 1;
				ev = (struct epoll_event){ .events = EPOLLIN,
							   .data.ptr = c };
				if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev))
					die("epoll_ctl");
				continue;
			}
			int out = pump(c) < 0 ? -1 : flush(c);

			if (out < 0) {
				/* A client left: its sinks go back to the pool. */
				for (int s = 0; s < MAXCONC; s++)
					if (c->slot[s])
						pool[npool++] = c->slot[s];
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				close(c->fd);
				free(c);
				continue;
			}
			if (out != c->want_out) {
				c->want_out = out;
				ev = (struct epoll_event){
					.events = EPOLLIN | (out ? EPOLLOUT : 0),
					.data.ptr = c
				};
				epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
			}
		}
	}
}

static int client(struct sockaddr_in *a, int conc, double secs)
{
	struct conn *c = calloc(1, sizeof(*c));
	double t0, start = 0;
	unsigned long long base = 0;

	if (!c)
		die("calloc");
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)a, sizeof(*a)))
		die("connect");
	tune(c->fd);
	if (fcntl(c->fd, F_SETFL, O_NONBLOCK))
		die("O_NONBLOCK");
	for (int s = 0; s < conc; s++) {
		c->slot[s] = onebuf && s ? c->slot[0] : buffer();
		queue(c, REQUEST, s, scratch, SMALL);
	}
	c->want_out = flush(c);
	t0 = now();
	for (;;) {
		struct pollfd p = { c->fd, POLLIN | (c->want_out ? POLLOUT : 0), 0 };
		double t;

		if (poll(&p, 1, spin ? 0 : 1000) < 0 && errno != EINTR)
			die("poll");
		if (pump(c) < 0) {
			fprintf(stderr, "tcp-rpc: the server closed the connection\n");
			return 1;
		}
		c->want_out = flush(c);
		if (c->want_out < 0) {
			fprintf(stderr, "tcp-rpc: the server closed the connection\n");
			return 1;
		}
		t = now();
		if (!start && t - t0 >= 1) {
			start = t;
			base = done_bytes;
		}
		if (start && t - start >= secs) {
			printf("%.2f\n", (done_bytes - base) / (t - start) / 1048576);
			return 0;
		}
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_in a;

	signal(SIGPIPE, SIG_IGN);
	spin = getenv("TCP_RPC_SPIN") && atoi(getenv("TCP_RPC_SPIN"));
	onebuf = getenv("TCP_RPC_ONEBUF") && atoi(getenv("TCP_RPC_ONEBUF"));
	if (argc == 6 && !strcmp(argv[1], "server")) {
		a = address(argv[2], argv[3]);
		size = strtoul(argv[4], NULL, 0);
		server(&a, atoi(argv[5]));
	}
	if (argc == 7 && !strcmp(argv[1], "client")) {
		int conc = atoi(argv[5]);

		a = address(argv[2], argv[3]);
		size = strtoul(argv[4], NULL, 0);
		if (conc < 1 || conc > MAXCONC) {
			fprintf(stderr, "tcp-rpc: CONC is 1 to %d\n", MAXCONC);
			return 2;
		}
		return client(&a, conc, atof(argv[6]));
	}
	fprintf(stderr, "usage: tcp-rpc server ADDR PORT SIZE POOL\n"
			"       tcp-rpc client ADDR PORT SIZE CONC SECS\n");
	return 2;
}
