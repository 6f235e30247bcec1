/*
 * tunnel_cfg.c - a tunnel's configuration before anything runs: parsing
 * forward's [BIND:]PORT and expose's HOST:PORT, resolving them, and checking
 * (before punching) that the target resolves or the port can be bound. Split
 * from tunnel.c (the running tunnel) to keep one concern per file.
 */
#include "tunnel.h"
#include "tunnel_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addr.h"
#include "log.h"

int hp__tunnel_parse(hp__tunnel_mode mode, const char *arg, hp__tunnel_cfg *out, char *err,
                     size_t errlen) {
  const char *colon, *port_s, *what = mode == HP_TUNNEL_FORWARD ? "[BIND:]PORT" : "HOST:PORT";
  size_t hlen;
  char *end;
  long port;

  memset(out, 0, sizeof *out);
  out->mode = mode;
  if (!arg || !*arg) {
    snprintf(err, errlen, "missing %s", what);
    return -EINVAL;
  }
  colon = strrchr(arg, ':');
  if (!colon && mode == HP_TUNNEL_EXPOSE) {
    snprintf(err, errlen, "\"%.64s\" is not HOST:PORT (e.g. 127.0.0.1:22)", arg);
    return -EINVAL;
  }
  port_s = colon ? colon + 1 : arg;
  hlen = colon ? (size_t)(colon - arg) : 0;
  if (hlen >= 2 && arg[0] == '[' && arg[hlen - 1] == ']') {
    arg++;
    hlen -= 2;
  }
  errno = 0;
  port = strtol(port_s, &end, 10);
  if (*port_s < '1' || *port_s > '9' || *end || errno || port < 1 || port > 65535) {
    snprintf(err, errlen, "\"%.64s\": the port must be 1..65535 (%s)", port_s, what);
    return -EINVAL;
  }
  if (colon && hlen == 0) {
    snprintf(err, errlen, "\"%.64s\": empty host before the port (%s)", arg, what);
    return -EINVAL;
  }
  if (hlen > HP_TUNNEL_HOST_MAX) {
    snprintf(err, errlen, "the host is longer than %d characters", HP_TUNNEL_HOST_MAX);
    return -EINVAL;
  }
  if (hlen)
    memcpy(out->host, arg, hlen);
  else
    snprintf(out->host, sizeof out->host, "127.0.0.1");
  out->host[hlen ? hlen : strlen(out->host)] = '\0';
  out->port = (int)port;
  if (mode == HP_TUNNEL_FORWARD) {
    unsigned char tmp[16];
    if (inet_pton(AF_INET, out->host, tmp) != 1 && inet_pton(AF_INET6, out->host, tmp) != 1) {
      snprintf(err, errlen, "\"%.64s\" is not an IP address to listen on (%s)", out->host, what);
      return -EINVAL;
    }
  }
  return 0;
}

int hp__tunnel_resolve(const hp__tunnel_cfg *cfg, struct sockaddr_storage *out, char *err,
                       size_t errlen) {
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res = NULL,
                  *ai;
  char port[8];
  int r;

  snprintf(port, sizeof port, "%d", cfg->port);
  if (cfg->mode == HP_TUNNEL_FORWARD)
    hints.ai_flags |= AI_NUMERICHOST | AI_PASSIVE;
  r = getaddrinfo(cfg->host, port, &hints, &res);
  if (r != 0 || !res) {
    snprintf(err, errlen, "cannot resolve \"%s\": %s", cfg->host, gai_strerror(r));
    return -EINVAL;
  }
  /* One address, fixed for the tunnel's life: the first IPv4 one if any
   * ("localhost" often resolves to ::1 first, where many services do not
   * listen), else the first. */
  for (ai = res; ai && ai->ai_family != AF_INET; ai = ai->ai_next)
    ;
  if (!ai)
    ai = res;
  memcpy(out, ai->ai_addr, ai->ai_addrlen);
  freeaddrinfo(res);
  return 0;
}

int hp__tunnel_check(const hp__tunnel_cfg *cfg, char *err, size_t errlen) {
  struct sockaddr_storage a;
  int fd, r, one = 1;

  if ((r = hp__tunnel_resolve(cfg, &a, err, errlen)) < 0 || cfg->mode != HP_TUNNEL_FORWARD)
    return r;
  fd = socket(a.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    snprintf(err, errlen, "cannot make a socket: %s", strerror(errno));
    return -errno;
  }
  /* As libuv's listener will: SO_REUSEADDR, so a TIME_WAIT does not count. */
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  r = bind(fd, (struct sockaddr *)&a,
           a.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
  if (r < 0) {
    char txt[64];
    r = -errno;
    hp__addr_format((struct sockaddr *)&a, txt, sizeof txt);
    snprintf(err, errlen, "cannot listen on %s: %s", txt, strerror(-r));
  }
  close(fd);
  return r;
}
