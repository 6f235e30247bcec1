/*
 * whoami.c - GET /whoami with libcurl from a fixed local port.
 */
#include "whoami.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

struct hp__whoami {
  uv_work_t work;
  uv_loop_t *loop;
  hp__whoami_cb cb;
  void *data;
  atomic_int cancelled;
  char url[600];
  char *ca_file; /* owned copy or NULL */
  int local_port;
  long timeout_ms;
  int bind_errno; /* set by the socket callback when bind() failed */
  char body[HP_WHOAMI_BODY_MAX];
  size_t body_len;
  int body_overflow;
  hp__whoami_result res;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
}

int hp__whoami_parse(const char *body, size_t len, char *ip, size_t iplen, int *port, char *err,
                     size_t errlen) {
  json_error_t jerr;
  json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
  json_t *jip, *jport;
  unsigned char tmp[sizeof(struct in6_addr)];
  int result = -EPROTO;

  if (!root) {
    snprintf(err, errlen, "whoami reply is not JSON (line %d, column %d: %s)", jerr.line,
             jerr.column, jerr.text);
    return -EPROTO;
  }
  jip = json_object_get(root, "ip");
  jport = json_object_get(root, "port");
  if (!json_is_object(root) || !json_is_string(jip)) {
    snprintf(err, errlen, "whoami reply has no \"ip\" string");
    goto out;
  }
  if (json_string_length(jip) >= iplen || (inet_pton(AF_INET, json_string_value(jip), tmp) != 1 &&
                                           inet_pton(AF_INET6, json_string_value(jip), tmp) != 1)) {
    snprintf(err, errlen, "whoami reply has an invalid \"ip\"");
    goto out;
  }
  if (json_is_null(jport) || !jport) {
    *port = -1;
  } else if (json_is_integer(jport) && json_integer_value(jport) >= 1 &&
             json_integer_value(jport) <= 65535) {
    *port = (int)json_integer_value(jport);
  } else {
    snprintf(err, errlen, "whoami reply has an invalid \"port\" (want 1..65535 or null)");
    goto out;
  }
  snprintf(ip, iplen, "%s", json_string_value(jip));
  result = 0;
out:
  json_decref(root);
  return result;
}

/* The request's socket: bound to the punch port next to the listener. */
static curl_socket_t open_socket(void *clientp, curlsocktype purpose,
                                 struct curl_sockaddr *address) {
  hp__whoami *w = clientp;
  int one = 1;
  int fd;
  struct sockaddr_storage ss;
  socklen_t sl;

  (void)purpose;
  fd = socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
  if (fd < 0)
    return CURL_SOCKET_BAD;
  memset(&ss, 0, sizeof ss);
  if (address->family == AF_INET6) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)w->local_port);
    sl = sizeof *s6;
  } else {
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)w->local_port);
    sl = sizeof *s4;
  }
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
      bind(fd, (struct sockaddr *)&ss, sl) < 0) {
    w->bind_errno = errno;
    close(fd);
    return CURL_SOCKET_BAD;
  }
  return fd;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata) {
  hp__whoami *w = userdata;
  size_t n = size * nmemb;

  if (n > sizeof w->body - w->body_len) {
    w->body_overflow = 1;
    return 0; /* aborts the transfer */
  }
  memcpy(w->body + w->body_len, ptr, n);
  w->body_len += n;
  return n;
}

static int on_progress(void *clientp, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d) {
  hp__whoami *w = clientp;
  (void)a, (void)b, (void)c, (void)d;
  return atomic_load(&w->cancelled) ? 1 : 0;
}

static int curl_errno(CURLcode rc) {
  switch (rc) {
  case CURLE_OPERATION_TIMEDOUT:
    return -ETIMEDOUT;
  case CURLE_COULDNT_CONNECT:
    return -ECONNREFUSED;
  case CURLE_COULDNT_RESOLVE_HOST:
    return -EHOSTUNREACH;
  case CURLE_ABORTED_BY_CALLBACK:
    return -ECANCELED;
  default:
    return -EPROTO;
  }
}

/* Runs in the thread pool: blocking libcurl. Touches only w. */
static void work_cb(uv_work_t *req) {
  hp__whoami *w = req->data;
  hp__whoami_result *r = &w->res;
  char errbuf[CURL_ERROR_SIZE] = "";
  CURL *c = curl_easy_init();
  CURLcode rc;
  long code = 0;

  r->port = -1;
  if (!c) {
    r->status = -ENOMEM;
    snprintf(r->err, sizeof r->err, "cannot create a libcurl handle");
    return;
  }
  curl_easy_setopt(c, CURLOPT_URL, w->url);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, w->timeout_ms);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, w->timeout_ms);
  curl_easy_setopt(c, CURLOPT_IPRESOLVE, CURL_IPRESOLVE_V4); /* the punch port is IPv4 */
  curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_socket);
  curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, w);
  curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
  curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, w);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, w);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "holepunch/" HP_VERSION);
  if (w->ca_file)
    curl_easy_setopt(c, CURLOPT_CAINFO, w->ca_file);

  rc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(c);

  if (rc != CURLE_OK) {
    if (w->bind_errno) {
      r->status = -w->bind_errno;
      snprintf(r->err, sizeof r->err, "cannot bind the whoami request to local port %d: %s",
               w->local_port, strerror(w->bind_errno));
    } else if (w->body_overflow) {
      r->status = -EPROTO;
      snprintf(r->err, sizeof r->err, "GET %.120s: reply larger than %d bytes", w->url,
               HP_WHOAMI_BODY_MAX);
    } else {
      const char *e = *errbuf ? errbuf : curl_easy_strerror(rc);
      r->status = curl_errno(rc);
      if (rc == CURLE_SSL_CONNECT_ERROR &&
          (strstr(e, "wrong version number") || strstr(e, "packet length too long")))
        /* OpenSSL read a plain HTTP answer where a TLS record belongs. */
        snprintf(r->err, sizeof r->err,
                 "GET %.120s failed: the server does not speak TLS; use http:// (or ws://)",
                 w->url);
      else if (rc == CURLE_OPERATION_TIMEDOUT)
        snprintf(r->err, sizeof r->err, "GET %.120s got no answer within %.1f s (WS_OPEN_TIMEOUT)",
                 w->url, w->timeout_ms / 1000.0);
      else
        snprintf(r->err, sizeof r->err, "GET %.120s failed: %.120s", w->url, e);
    }
    return;
  }
  if (code != 200) {
    r->status = -EPROTO;
    snprintf(r->err, sizeof r->err, "GET %.120s answered HTTP %ld (want 200)%s", w->url, code,
             code == 404 ? "; give the rendezvous' base URL in RENDEZVOUS_SERVICE_URL (without "
                           "/ws or /whoami)"
                         : "");
    return;
  }
  r->status =
      hp__whoami_parse(w->body, w->body_len, r->ip, sizeof r->ip, &r->port, r->err, sizeof r->err);
  if (r->status == 0)
    hp__whoami_parse_probe(w->body, w->body_len, r->connect_back, sizeof r->connect_back,
                           &r->observer_port);
}

void hp__whoami_parse_probe(const char *body, size_t len, char *connect_back, size_t cblen,
                            int *observer_port) {
  json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
  json_t *v;

  connect_back[0] = '\0';
  *observer_port = -1;
  if (!root)
    return;
  v = json_object_get(root, "connect_back");
  if (json_is_string(v) &&
      (strcmp(json_string_value(v), "open") == 0 || strcmp(json_string_value(v), "drop") == 0 ||
       strcmp(json_string_value(v), "reset") == 0))
    snprintf(connect_back, cblen, "%s", json_string_value(v));
  v = json_object_get(root, "observer_port");
  if (json_is_integer(v) && json_integer_value(v) > 0 && json_integer_value(v) <= 65535)
    *observer_port = (int)json_integer_value(v);
  json_decref(root);
}

static void after_work_cb(uv_work_t *req, int status) {
  hp__whoami *w = req->data;

  if (!atomic_load(&w->cancelled)) {
    if (status == UV_ECANCELED) {
      w->res.status = -ECANCELED;
      snprintf(w->res.err, sizeof w->res.err, "whoami request cancelled");
    }
    w->cb(&w->res, w->data);
  }
  free(w->ca_file);
  free(w);
}

int hp__whoami_start(uv_loop_t *loop, const hp__url *url, int local_port, double timeout_s,
                     const char *ca_file, hp__whoami_cb cb, void *data, hp__whoami **out) {
  return hp__whoami_start_at(loop, url, "/whoami", 0, local_port, timeout_s, ca_file, cb, data,
                             out);
}

int hp__whoami_start_at(uv_loop_t *loop, const hp__url *url, const char *path, int port,
                        int local_port, double timeout_s, const char *ca_file, hp__whoami_cb cb,
                        void *data, hp__whoami **out) {
  hp__whoami *w;
  const int v6 = strchr(url->host, ':') != NULL;
  int r;

  pthread_once(&curl_once, curl_init_once);
  w = calloc(1, sizeof *w);
  if (!w)
    return -ENOMEM;
  snprintf(w->url, sizeof w->url, "%s://%s%s%s:%d%s%s", url->tls ? "https" : "http", v6 ? "[" : "",
           url->host, v6 ? "]" : "", port > 0 ? port : url->port, url->base, path);
  w->res.observer_port = -1;
  w->loop = loop;
  w->cb = cb;
  w->data = data;
  w->local_port = local_port;
  w->timeout_ms = (long)(timeout_s * 1000.0);
  if (w->timeout_ms < 1)
    w->timeout_ms = 1;
  if (ca_file && *ca_file && !(w->ca_file = strdup(ca_file))) {
    free(w);
    return -ENOMEM;
  }
  w->work.data = w;
  r = uv_queue_work(loop, &w->work, work_cb, after_work_cb);
  if (r < 0) {
    free(w->ca_file);
    free(w);
    return r;
  }
  HP_DEBUG("whoami", json_pack("{s:s, s:i}", "url", w->url, "local_port", local_port),
           "asking the rendezvous for our mapping");
  *out = w;
  return 0;
}

void hp__whoami_cancel(hp__whoami *w) {
  if (!w)
    return;
  atomic_store(&w->cancelled, 1);
  /* Not started yet: take it off the queue (after_work_cb runs with
   * UV_ECANCELED and frees it). Already running: the progress callback
   * aborts the transfer. */
  uv_cancel((uv_req_t *)&w->work);
}
