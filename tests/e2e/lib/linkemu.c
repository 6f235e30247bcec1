/*
 * linkemu.c - the NAT lab's link emulator: a point-to-point IP link between
 * two network namespaces made of two TUN devices, with a one-way delay,
 * jitter and loss in each direction. The kernel here has no netem and no
 * nfqueue; TUN it has. See docs/lab.md.
 *
 *   linkemu --a NETNS:IFNAME --b NETNS:IFNAME [--delay MS] [--jitter MS]
 *           [--loss PCT] [--order flow|link|none] [--queue PKTS]
 *           [--duration S] [--seed N]
 *
 * NETNS is a name under /run/netns (as `ip netns add` makes them) or "." for
 * the namespace linkemu was started in. The devices are created (IFF_TUN,
 * IFF_NO_PI: raw IPv4/IPv6 packets), not persistent: they vanish when
 * linkemu exits. Once both exist linkemu prints "ready" on stdout; the
 * caller then gives them addresses and brings them up (lab.sh does).
 *
 * Each packet read from one device is written to the other after
 * delay + U[0, jitter] ms (U uniform, drawn per packet). Order (--order):
 *   flow (default)  packets between the same two IP addresses never
 *                   overtake each other (a packet's due time is raised to
 *                   that of the one read before it between those addresses),
 *                   as on one internet path; packets to different addresses
 *                   are delayed independently, as on different paths. So a
 *                   far rendezvous' two `peer` messages to two workers arrive
 *                   up to `jitter` apart, while each TCP connection stays in
 *                   order and jitter shows as delay variation, not reordering;
 *   link            the whole link in order, like one wire;
 *   none            every packet keeps its own due time: jitter reorders.
 * Loss
 * drops a packet with probability PCT/100 before it is queued. Each
 * direction holds at most --queue packets (default 4096; beyond it new
 * packets are dropped and counted), so memory is bounded by
 * 2 x queue x 64 KiB in the worst case and by the traffic in practice.
 *
 * linkemu exits by itself after --duration seconds (default 600) and on
 * SIGTERM/SIGINT, printing its counters on stderr. Exit 0, or 1 with a
 * sentence on stderr when it could not start, 2 on a usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define PKT_MAX 65536
#define QUEUE_DEFAULT 4096
#define QUEUE_LIMIT 65536
#define FLOW_BUCKETS 256 /* in-order classes for --order flow (hashed address pairs) */

enum order { ORDER_FLOW, ORDER_LINK, ORDER_NONE };

typedef struct pkt {
  int64_t due_ns; /* CLOCK_MONOTONIC time to deliver */
  uint64_t seq;   /* tie-break: equal due times leave in arrival order */
  size_t len;
  unsigned char *data;
} pkt;

/* One direction: packets read from `in`, written to `out`, in a min-heap on
 * (due_ns, seq). */
typedef struct dir {
  const char *name;
  int in, out;
  pkt *heap;
  size_t n, cap;
  int64_t last_due[FLOW_BUCKETS]; /* per order class; [0] for ORDER_LINK */
  uint64_t seq;
  unsigned long fwd, lost, overflow, write_err;
} dir;

typedef struct opts {
  double delay_ms, jitter_ms, loss_pct, duration_s;
  enum order order;
  size_t queue;
  uint64_t seed;
  const char *a, *b;
} opts;

static volatile sig_atomic_t stop_signal;
static uint64_t rng_state;

static void on_signal(int sig) {
  stop_signal = sig;
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* xorshift64*: fast, and repeatable with --seed. */
static uint64_t rng_next(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [0, 1). */
static double rng_unit(void) {
  return (double)(rng_next() >> 11) / 9007199254740992.0;
}

static int heap_less(const pkt *x, const pkt *y) {
  return x->due_ns < y->due_ns || (x->due_ns == y->due_ns && x->seq < y->seq);
}

static void heap_push(dir *d, pkt p) {
  size_t i = d->n++;

  d->heap[i] = p;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    pkt t;

    if (!heap_less(&d->heap[i], &d->heap[parent]))
      break;
    t = d->heap[i];
    d->heap[i] = d->heap[parent];
    d->heap[parent] = t;
    i = parent;
  }
}

static pkt heap_pop(dir *d) {
  pkt top = d->heap[0];
  size_t i = 0;

  d->heap[0] = d->heap[--d->n];
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    pkt t;

    if (l < d->n && heap_less(&d->heap[l], &d->heap[m]))
      m = l;
    if (r < d->n && heap_less(&d->heap[r], &d->heap[m]))
      m = r;
    if (m == i)
      break;
    t = d->heap[i];
    d->heap[i] = d->heap[m];
    d->heap[m] = t;
    i = m;
  }
  return top;
}

/* Open a TUN device IFNAME inside the namespace NETNS ("." = ours). The fd
 * stays attached to that namespace's device after we switch back. */
static int open_tun(const char *spec, char *ifname, size_t iflen) {
  char nsname[256], path[300];
  const char *colon = strrchr(spec, ':');
  int self = -1, nsfd = -1, fd = -1, result = -1;
  struct ifreq ifr;

  if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof nsname || !colon[1] ||
      strlen(colon + 1) >= IFNAMSIZ || strlen(colon + 1) >= iflen) {
    fprintf(stderr, "linkemu: bad endpoint '%s': want NETNS:IFNAME\n", spec);
    return -1;
  }
  memcpy(nsname, spec, (size_t)(colon - spec));
  nsname[colon - spec] = '\0';
  snprintf(ifname, iflen, "%s", colon + 1);
  if (strcmp(nsname, ".") != 0) {
    if (strchr(nsname, '/')) {
      fprintf(stderr, "linkemu: namespace name '%s' must not contain '/'\n", nsname);
      return -1;
    }
    snprintf(path, sizeof path, "/run/netns/%s", nsname);
    self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    nsfd = open(path, O_RDONLY | O_CLOEXEC);
    if (self < 0 || nsfd < 0 || setns(nsfd, CLONE_NEWNET) < 0) {
      fprintf(stderr, "linkemu: cannot enter namespace %s: %s\n", path, strerror(errno));
      goto out;
    }
  }
  fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    fprintf(stderr, "linkemu: cannot open /dev/net/tun: %s\n", strerror(errno));
    goto out;
  }
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    fprintf(stderr, "linkemu: cannot create TUN device %s in %s: %s\n", ifname, nsname,
            strerror(errno));
    close(fd);
    fd = -1;
    goto out;
  }
  result = fd;
out:
  if (self >= 0 && setns(self, CLONE_NEWNET) < 0 && result >= 0) {
    fprintf(stderr, "linkemu: cannot return to the first namespace: %s\n", strerror(errno));
    close(result);
    result = -1;
  }
  if (self >= 0)
    close(self);
  if (nsfd >= 0)
    close(nsfd);
  return result;
}

/* The in-order class of a packet under --order flow: a hash of its source
 * and destination addresses (IPv4 or IPv6; anything else: class 0). */
static unsigned flow_bucket(const unsigned char *p, size_t len) {
  uint32_t h = 2166136261u; /* FNV-1a */
  size_t off = 0, n = 0, i;

  if (len >= 20 && p[0] >> 4 == 4)
    off = 12, n = 8;
  else if (len >= 40 && p[0] >> 4 == 6)
    off = 8, n = 32;
  for (i = 0; i < n; i++)
    h = (h ^ p[off + i]) * 16777619u;
  return h % FLOW_BUCKETS;
}

/* Read every packet waiting on d->in and queue it. */
static void dir_read(dir *d, const opts *o, unsigned char *buf) {
  for (;;) {
    ssize_t n = read(d->in, buf, PKT_MAX);
    int64_t due;
    pkt p;

    if (n <= 0)
      return; /* EAGAIN (drained) or an error: poll tells us again */
    if (o->loss_pct > 0 && rng_unit() * 100.0 < o->loss_pct) {
      d->lost++;
      continue;
    }
    if (d->n >= d->cap) {
      d->overflow++;
      continue;
    }
    due = now_ns() + (int64_t)((o->delay_ms + o->jitter_ms * rng_unit()) * 1e6);
    if (o->order != ORDER_NONE) {
      unsigned b = o->order == ORDER_FLOW ? flow_bucket(buf, (size_t)n) : 0;

      if (due < d->last_due[b])
        due = d->last_due[b];
      d->last_due[b] = due;
    }
    p.data = malloc((size_t)n);
    if (!p.data) {
      d->overflow++;
      continue;
    }
    memcpy(p.data, buf, (size_t)n);
    p.len = (size_t)n;
    p.due_ns = due;
    p.seq = d->seq++;
    heap_push(d, p);
  }
}

/* Deliver every packet that is due. A full TUN queue on the far side drops
 * the packet, as a real link would. */
static void dir_deliver(dir *d, int64_t now) {
  while (d->n > 0 && d->heap[0].due_ns <= now) {
    pkt p = heap_pop(d);

    if (write(d->out, p.data, p.len) == (ssize_t)p.len)
      d->fwd++;
    else
      d->write_err++;
    free(p.data);
  }
}

static void usage(void) {
  fprintf(stderr, "usage: linkemu --a NETNS:IFNAME --b NETNS:IFNAME [--delay MS] [--jitter MS]\n"
                  "               [--loss PCT] [--order flow|link|none] [--queue PKTS]\n"
                  "               [--duration S] [--seed N]\n");
}

/* A number in [lo, hi] from text, whole string. */
static int num_arg(const char *name, const char *text, double lo, double hi, double *out) {
  char *end;
  double v;

  errno = 0;
  v = strtod(text, &end);
  if (errno || end == text || *end || !(v >= lo && v <= hi)) {
    fprintf(stderr, "linkemu: %s '%s' is not a number in %g..%g\n", name, text, lo, hi);
    return -1;
  }
  *out = v;
  return 0;
}

static int parse_args(int argc, char **argv, opts *o) {
  double v;
  int i;

  for (i = 1; i < argc; i++) {
    const char *k = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

    if (!val) {
      usage();
      return -1;
    }
    i++;
    if (strcmp(k, "--a") == 0)
      o->a = val;
    else if (strcmp(k, "--b") == 0)
      o->b = val;
    else if (strcmp(k, "--order") == 0) {
      if (strcmp(val, "flow") == 0)
        o->order = ORDER_FLOW;
      else if (strcmp(val, "link") == 0)
        o->order = ORDER_LINK;
      else if (strcmp(val, "none") == 0)
        o->order = ORDER_NONE;
      else {
        fprintf(stderr, "linkemu: --order must be flow, link or none, not '%s'\n", val);
        return -1;
      }
    } else if (strcmp(k, "--delay") == 0) {
      if (num_arg(k, val, 0, 10000, &o->delay_ms) < 0)
        return -1;
    } else if (strcmp(k, "--jitter") == 0) {
      if (num_arg(k, val, 0, 10000, &o->jitter_ms) < 0)
        return -1;
    } else if (strcmp(k, "--loss") == 0) {
      if (num_arg(k, val, 0, 100, &o->loss_pct) < 0)
        return -1;
    } else if (strcmp(k, "--duration") == 0) {
      if (num_arg(k, val, 0.1, 86400, &o->duration_s) < 0)
        return -1;
    } else if (strcmp(k, "--queue") == 0) {
      if (num_arg(k, val, 1, QUEUE_LIMIT, &v) < 0)
        return -1;
      o->queue = (size_t)v;
    } else if (strcmp(k, "--seed") == 0) {
      if (num_arg(k, val, 1, 1e15, &v) < 0)
        return -1;
      o->seed = (uint64_t)v;
    } else {
      usage();
      return -1;
    }
  }
  if (!o->a || !o->b) {
    usage();
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  opts o = {.duration_s = 600, .queue = QUEUE_DEFAULT};
  char ifa[IFNAMSIZ], ifb[IFNAMSIZ];
  unsigned char *buf = NULL;
  dir d[2];
  int fa = -1, fb = -1, rc = 1, i;
  int64_t end_ns;
  struct sigaction sa;

  memset(d, 0, sizeof d);
  if (parse_args(argc, argv, &o) < 0)
    return 2;
  if (o.seed)
    rng_state = o.seed;
  else if (getrandom(&rng_state, sizeof rng_state, 0) != sizeof rng_state || !rng_state)
    rng_state = (uint64_t)now_ns() | 1;

  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  fa = open_tun(o.a, ifa, sizeof ifa);
  if (fa < 0)
    goto out;
  fb = open_tun(o.b, ifb, sizeof ifb);
  if (fb < 0)
    goto out;
  buf = malloc(PKT_MAX);
  d[0] = (dir){.name = "a->b", .in = fa, .out = fb, .cap = o.queue};
  d[1] = (dir){.name = "b->a", .in = fb, .out = fa, .cap = o.queue};
  d[0].heap = calloc(o.queue, sizeof(pkt));
  d[1].heap = calloc(o.queue, sizeof(pkt));
  if (!buf || !d[0].heap || !d[1].heap) {
    fprintf(stderr, "linkemu: out of memory\n");
    goto out;
  }
  printf("ready %s %s delay=%gms jitter=%gms loss=%g%% order=%s\n", o.a, o.b, o.delay_ms,
         o.jitter_ms, o.loss_pct,
         o.order == ORDER_FLOW   ? "flow"
         : o.order == ORDER_LINK ? "link"
                                 : "none");
  fflush(stdout);

  end_ns = now_ns() + (int64_t)(o.duration_s * 1e9);
  while (!stop_signal) {
    struct pollfd pfd[2] = {{.fd = fa, .events = POLLIN}, {.fd = fb, .events = POLLIN}};
    int64_t now = now_ns(), next = end_ns, wait;
    struct timespec ts;

    if (now >= end_ns)
      break;
    for (i = 0; i < 2; i++)
      if (d[i].n > 0 && d[i].heap[0].due_ns < next)
        next = d[i].heap[0].due_ns;
    wait = next > now ? next - now : 0;
    ts.tv_sec = (time_t)(wait / 1000000000);
    ts.tv_nsec = (long)(wait % 1000000000);
    if (ppoll(pfd, 2, &ts, NULL) < 0 && errno != EINTR) {
      fprintf(stderr, "linkemu: poll: %s\n", strerror(errno));
      goto out;
    }
    if (pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL) ||
        pfd[1].revents & (POLLERR | POLLHUP | POLLNVAL)) {
      fprintf(stderr, "linkemu: a TUN device went away\n");
      break;
    }
    if (pfd[0].revents & POLLIN)
      dir_read(&d[0], &o, buf);
    if (pfd[1].revents & POLLIN)
      dir_read(&d[1], &o, buf);
    now = now_ns();
    dir_deliver(&d[0], now);
    dir_deliver(&d[1], now);
  }
  rc = 0;
  for (i = 0; i < 2; i++)
    fprintf(stderr, "linkemu: %s forwarded %lu, lost %lu, queue-full %lu, write errors %lu%s\n",
            d[i].name, d[i].fwd, d[i].lost, d[i].overflow, d[i].write_err,
            d[i].n ? " (packets still queued at exit dropped)" : "");
  fprintf(stderr, "linkemu: stopped (%s)\n", stop_signal ? "signal" : "duration reached");
out:
  for (i = 0; i < 2; i++) {
    while (d[i].heap && d[i].n > 0)
      free(heap_pop(&d[i]).data);
    free(d[i].heap);
  }
  free(buf);
  if (fa >= 0)
    close(fa);
  if (fb >= 0)
    close(fb);
  return rc;
}
