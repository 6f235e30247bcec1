/*
 * stun_tcp.c - STUN Binding over TCP from the punch port (see stun_tcp.h).
 *
 * One object, one state: CONNECTING -> WAITING (request written, reading)
 * -> DONE (callback fired or cancelled, handles closing). Two libuv handles
 * (the TCP socket and the timeout timer); the memory is freed in the close
 * callback of the second one to close.
 */
#include "stun_tcp.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "addr.h"
#include "log.h"
#include "stun_msg.h"

typedef enum { S_CONNECTING, S_WAITING, S_DONE } state;

struct hp__stun_tcp {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_connect_t creq;
  uv_write_t wreq;
  state st;
  int open_handles; /* freed when this drops to 0 */
  hp__stun_tcp_cb cb;
  void *data;
  uint64_t t_connect; /* uv_now at connect, ms */
  uint8_t txid[HP_STUN_TXID_LEN];
  uint8_t req[HP_STUN_REQUEST_LEN];
  uint8_t rbuf[HP_STUN_MAX];
  size_t rlen;
  hp__stun_tcp_result res;
};

static void on_close(uv_handle_t *h) {
  hp__stun_tcp *s = h->data;
  if (--s->open_handles == 0)
    free(s);
}

/* Close everything; the callback fires first unless cancelled. */
static void finish(hp__stun_tcp *s, int notify) {
  struct linger lg = {1, 0};
  uv_os_fd_t fd;

  if (s->st == S_DONE)
    return;
  s->st = S_DONE;
  if (notify && s->cb)
    s->cb(&s->res, s->data);
  /* A reset instead of a FIN: no TIME_WAIT on the punch port's 4-tuple. */
  if (uv_fileno((uv_handle_t *)&s->tcp, &fd) == 0)
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  uv_timer_stop(&s->timer);
  uv_close((uv_handle_t *)&s->timer, on_close);
  uv_close((uv_handle_t *)&s->tcp, on_close);
}

static void fail(hp__stun_tcp *s, int status, const char *fmt, const char *detail) {
  char srv[HP_ADDR_STRLEN] = "?";

  hp__addr_format((const struct sockaddr *)&s->res.server, srv, sizeof srv);
  s->res.status = status;
  snprintf(s->res.err, sizeof s->res.err, "STUN %s: ", srv);
  snprintf(s->res.err + strlen(s->res.err), sizeof s->res.err - strlen(s->res.err), fmt,
           detail ? detail : "");
  finish(s, 1);
}

static void on_timeout(uv_timer_t *t) {
  hp__stun_tcp *s = t->data;
  fail(s, -ETIMEDOUT,
       s->st == S_CONNECTING ? "no connection within the timeout%s"
                             : "no Binding response within the timeout%s",
       NULL);
}

/* A complete message is in rbuf[0..n): check it is our answer. */
static void handle_message(hp__stun_tcp *s, size_t n) {
  hp__stun_msg m;
  char err[160];
  const struct sockaddr *sa;
  int r = hp__stun_decode(s->rbuf, n, &m, err, sizeof err);

  if (r < 0) {
    fail(s, -EPROTO, "bad response: %s", err);
    return;
  }
  if (memcmp(m.txid, s->txid, sizeof s->txid) != 0 || m.method != HP_STUN_BINDING ||
      (m.cls != HP_STUN_SUCCESS && m.cls != HP_STUN_ERROR)) {
    /* Not ours (an indication, another transaction): skip it. */
    memmove(s->rbuf, s->rbuf + n, s->rlen - n);
    s->rlen -= n;
    return;
  }
  s->res.rtt_ms = (double)(uv_now(s->tcp.loop) - s->t_connect);
  if (m.cls == HP_STUN_ERROR) {
    char what[HP_STUN_REASON_MAX + 16];
    s->res.error_code = m.error_code;
    snprintf(what, sizeof what, "%d %s", m.error_code, m.reason);
    fail(s, -EPROTO, "error response %s", what);
    return;
  }
  if (m.unknown_required) {
    fail(s, -EPROTO, "response with unknown comprehension-required attributes%s", NULL);
    return;
  }
  sa = hp__stun_mapped(&m);
  if (!sa) {
    fail(s, -EPROTO, "success response without XOR-MAPPED-ADDRESS or MAPPED-ADDRESS%s", NULL);
    return;
  }
  memcpy(&s->res.mapped, sa,
         sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
  s->res.status = 0;
  finish(s, 1);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  hp__stun_tcp *s = h->data;
  (void)suggested;
  *buf = uv_buf_init((char *)s->rbuf + s->rlen, (unsigned)(sizeof s->rbuf - s->rlen));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  hp__stun_tcp *s = st->data;
  (void)buf;

  if (s->st != S_WAITING || nread == 0)
    return;
  if (nread < 0) {
    fail(s, nread == UV_EOF ? -ECONNRESET : (int)nread, "connection ended before a response: %s",
         nread == UV_EOF ? "closed" : uv_strerror((int)nread));
    return;
  }
  s->rlen += (size_t)nread;
  while (s->st == S_WAITING) {
    long f = hp__stun_frame(s->rbuf, s->rlen);
    if (f < 0) {
      fail(s, -EPROTO, "the server does not speak STUN over TCP%s", NULL);
      return;
    }
    if (f == 0 || (size_t)f > s->rlen) {
      if (s->rlen == sizeof s->rbuf)
        fail(s, -EPROTO, "response larger than its buffer%s", NULL);
      return; /* need more */
    }
    handle_message(s, (size_t)f);
  }
}

static void on_written(uv_write_t *w, int status) {
  hp__stun_tcp *s = w->data;
  if (status < 0 && status != UV_ECANCELED && s->st == S_WAITING)
    fail(s, status, "cannot send the request: %s", uv_strerror(status));
}

static void on_connect(uv_connect_t *req, int status) {
  hp__stun_tcp *s = req->data;
  uv_buf_t b;
  int r;

  if (s->st != S_CONNECTING)
    return;
  if (status < 0) {
    fail(s, status == UV_ECONNREFUSED ? -ECONNREFUSED : status, "cannot connect: %s",
         uv_strerror(status));
    return;
  }
  s->st = S_WAITING;
  s->t_connect = uv_now(s->tcp.loop);
  {
    int sl = sizeof s->res.local;
    uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&s->res.local, &sl);
  }
  b = uv_buf_init((char *)s->req, sizeof s->req);
  s->wreq.data = s;
  r = uv_write(&s->wreq, (uv_stream_t *)&s->tcp, &b, 1, on_written);
  if (r == 0)
    r = uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
  if (r < 0)
    fail(s, r, "cannot send the request: %s", uv_strerror(r));
}

/* A socket for server's family bound to local_port next to the listener.
 * Not hp__pe_bound_socket (punch_listen.c): that one sets IPV6_V6ONLY and
 * always binds; this one leaves AF_INET6 dual-stack and does not bind for
 * local_port 0. */
static int bound_socket(int family, int local_port) {
  struct sockaddr_storage ss;
  socklen_t sl;
  int one = 1, fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

  if (fd < 0)
    return -errno;
  if (local_port <= 0)
    return fd;
  memset(&ss, 0, sizeof ss);
  if (family == AF_INET6) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)local_port);
    sl = sizeof *s6;
  } else {
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)local_port);
    sl = sizeof *s4;
  }
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
      bind(fd, (struct sockaddr *)&ss, sl) < 0) {
    int err = -errno;
    close(fd);
    return err;
  }
  return fd;
}

int hp__stun_tcp_start(uv_loop_t *loop, const struct sockaddr *server, int local_port,
                       unsigned timeout_ms, hp__stun_tcp_cb cb, void *data, hp__stun_tcp **out) {
  hp__stun_tcp *s;
  int fd, r;

  if ((server->sa_family != AF_INET && server->sa_family != AF_INET6) || local_port < 0 ||
      local_port > 65535 || timeout_ms == 0 || !cb)
    return -EINVAL;
  s = calloc(1, sizeof *s);
  if (!s)
    return -ENOMEM;
  if (getrandom(s->txid, sizeof s->txid, 0) != (ssize_t)sizeof s->txid) {
    free(s);
    return -EIO;
  }
  hp__stun_binding_request(s->req, sizeof s->req, s->txid);
  memcpy(&s->res.server, server,
         server->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
  s->cb = cb;
  s->data = data;
  fd = bound_socket(server->sa_family, local_port);
  if (fd < 0) {
    free(s);
    return fd;
  }
  /* From here on the handles own the memory: errors go through finish(). */
  uv_tcp_init(loop, &s->tcp);
  uv_timer_init(loop, &s->timer);
  s->tcp.data = s->timer.data = s->creq.data = s;
  s->open_handles = 2;
  s->st = S_CONNECTING;
  r = uv_tcp_open(&s->tcp, fd);
  if (r < 0)
    close(fd);
  if (r == 0)
    r = uv_tcp_connect(&s->creq, &s->tcp, server, on_connect);
  if (r < 0) {
    s->cb = NULL;
    finish(s, 0);
    return r;
  }
  uv_timer_start(&s->timer, on_timeout, timeout_ms, 0);
  *out = s;
  return 0;
}

void hp__stun_tcp_cancel(hp__stun_tcp *s) {
  if (s)
    finish(s, 0);
}
