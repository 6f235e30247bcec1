/*
 * common.c - the settings and start-up helpers every subcommand shares
 * (see cli.h).
 */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "code.h"
#include "addr.h"
#include "log.h"
#include "url.h"
#include "wire.h"

static const char *const level_choices[] = {"debug", "info", "warning", "error", NULL};
static const char *const format_choices[] = {"auto", "json", "text", NULL};

const hp__cfg_spec hp__cli_common_specs[] = {
    {"RENDEZVOUS_SERVICE_URL", "rendezvous-url", HP_CFG_STRING, NULL, 0, 0, NULL,
     offsetof(hp__cli_cfg, url), "rendezvous base URL: http://, https://, ws:// or wss://"},
    {"INTERNAL_TCP_PORT", "internal-tcp-port", HP_CFG_INT, "8082", 1, 65535, NULL,
     offsetof(hp__cli_cfg, internal_port), "listen + punch port"},
    {"WS_OPEN_TIMEOUT", "ws-open-timeout", HP_CFG_SECONDS, "15.0", 0.1, 3600, NULL,
     offsetof(hp__cli_cfg, ws_open), "s to reach the rendezvous (whoami, WebSocket)"},
    {"WS_RECV_TIMEOUT", "ws-recv-timeout", HP_CFG_SECONDS, "120.0", 0.1, 86400, NULL,
     offsetof(hp__cli_cfg, ws_recv), "s to wait for a peer"},
    {"LISTENER_READY_TIMEOUT", "listener-ready-timeout", HP_CFG_SECONDS, "15.0", 0.1, 3600, NULL,
     offsetof(hp__cli_cfg, listener_ready),
     "s for the listener to get its port (retried while busy)"},
    {"P2P_CONNECT_TIMEOUT", "p2p-connect-timeout", HP_CFG_SECONDS, "30.0", 0.1, 3600, NULL,
     offsetof(hp__cli_cfg, p2p_connect), "s of punching before giving up"},
    {"ROOM", "room", HP_CFG_STRING, "default", 0, 0, NULL, offsetof(hp__cli_cfg, room),
     "room to meet the peer in (1-64 of A-Za-z0-9._-)"},
    {"WORKER_ID", "worker-id", HP_CFG_STRING, HP_CLI_ID_AUTO, 0, 0, NULL,
     offsetof(hp__cli_cfg, worker_id), "own id in the room; \"auto\" generates one"},
    {"CA_FILE", "ca-file", HP_CFG_STRING, HP_CLI_CA_SYSTEM, 0, 0, NULL,
     offsetof(hp__cli_cfg, ca_file), "CA bundle for https/wss; \"system\" uses the system store"},
    {"LOG_LEVEL", "log-level", HP_CFG_ENUM, "info", 0, 0, level_choices,
     offsetof(hp__cli_cfg, log_level), "debug, info, warning or error"},
    {"LOG_FORMAT", "log-format", HP_CFG_ENUM, "auto", 0, 0, format_choices,
     offsetof(hp__cli_cfg, log_format), "json, text, or auto (json unless stderr is a terminal)"},
    {"ALLOW_LOOPBACK_CANDIDATES", "allow-loopback-candidates", HP_CFG_BOOL, "0", 0, 0, NULL,
     offsetof(hp__cli_cfg, allow_loopback),
     "dial peer candidates on loopback/link-local addresses (both workers on one host)"},
    {"RELAY_AFTER", "relay-after", HP_CFG_STRING, "5", 0, 0, NULL,
     offsetof(hp__cli_cfg, relay_after),
     "s after pairing to try the rendezvous' relay alongside punching (0: at once, off: never)"},
    {"STUN_SERVERS", "stun-servers", HP_CFG_STRING, HP_CLI_NONE, 0, 0, NULL,
     offsetof(hp__cli_cfg, stun_servers),
     "STUN servers asked over TCP from the punch port: host:port list (commas; an IP, [v6] or "
     "a DNS name), at most 4; "
     "\"none\""},
    {"PORT_MAPPING", "port-mapping", HP_CFG_BOOL, "0", 0, 0, NULL,
     offsetof(hp__cli_cfg, port_mapping),
     "ask the router to map the punch port (UPnP-IGD, NAT-PMP); offered as a candidate"},
    {"LOW_TTL_SYN", "low-ttl-syn", HP_CFG_INT, "0", 0, 32, NULL, offsetof(hp__cli_cfg, low_ttl_syn),
     "role b's first SYN with this IP TTL (both workers; only paths without ICMP Time "
     "Exceeded); 0: off"},
};
const size_t hp__cli_ncommon_specs = sizeof hp__cli_common_specs / sizeof hp__cli_common_specs[0];

size_t hp__cli_specs(hp__cfg_spec *out, const hp__cfg_spec *extra, size_t nextra) {
  if (hp__cli_ncommon_specs + nextra > HP_CLI_SPECS_MAX)
    abort(); /* a programming error: raise HP_CLI_SPECS_MAX */
  memcpy(out, hp__cli_common_specs, sizeof hp__cli_common_specs);
  if (nextra > 0)
    memcpy(out + hp__cli_ncommon_specs, extra, nextra * sizeof *extra);
  return hp__cli_ncommon_specs + nextra;
}

static int is_bool_word(const char *s) {
  static const char *const words[] = {"1", "0", "true", "false", "yes", "no", "on", "off", NULL};

  for (int i = 0; words[i]; i++)
    if (strcasecmp(words[i], s) == 0)
      return 1;
  return 0;
}

/* Mirrors hp__cfg_load's reading of argv: "--flag VALUE" takes the next
 * argument unless the flag is a boolean (which takes it only when it is a
 * boolean word) or written "--flag=VALUE". */
int hp__cli_next_positional(const hp__cfg_spec *specs, size_t n, int argc, char **argv, int from) {
  for (int i = from; i < argc; i++) {
    const char *a = argv[i], *name, *eq;
    size_t nlen;

    if (strcmp(a, "--") == 0)
      return i + 1 < argc ? i + 1 : argc;
    if (a[0] != '-' || a[1] == '\0')
      return i;
    if (a[1] != '-')
      continue;
    name = a + 2;
    eq = strchr(name, '=');
    if (eq)
      continue;
    nlen = strlen(name);
    for (size_t k = 0; k < n; k++) {
      if (!specs[k].flag || strlen(specs[k].flag) != nlen || strncmp(specs[k].flag, name, nlen))
        continue;
      if (i + 1 < argc && (specs[k].type != HP_CFG_BOOL || is_bool_word(argv[i + 1])))
        i++;
      break;
    }
  }
  return argc;
}

void hp__cli_remove_arg(int *argc, char **argv, int i) {
  if (i < 0 || i >= *argc)
    return;
  memmove(argv + i, argv + i + 1, (size_t)(*argc - i) * sizeof *argv); /* with the NULL */
  (*argc)--;
}

void hp__cli_early_log(int argc, char **argv) {
  const char *v = getenv("LOG_FORMAT");
  hp__log_format f;

  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--log-format") == 0 && i + 1 < argc)
      v = argv[i + 1];
    else if (strncmp(argv[i], "--log-format=", 13) == 0)
      v = argv[i] + 13;
  }
  if (v && strcasecmp(v, "json") == 0)
    f = HP_LOG_JSON;
  else if (v && strcasecmp(v, "text") == 0)
    f = HP_LOG_TEXT;
  else
    f = isatty(STDERR_FILENO) ? HP_LOG_TEXT : HP_LOG_JSON;
  hp__log_setup(HP_LOG_INFO, f);
}

void hp__cli_setup_log(const hp__cli_cfg *c) {
  hp__log_setup((hp__log_level)c->log_level, c->log_format == 2 || (c->log_format == 0 && isatty(2))
                                                 ? HP_LOG_TEXT
                                                 : HP_LOG_JSON);
}

void hp__cli_startup_error(const char *setting, const char *fmt, ...) {
  char msg[768];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  HP_ERROR("worker", setting ? json_pack("{s:s, s:i}", "setting", setting, "exit_code", 2) : NULL,
           "%s", msg);
}

/* RELAY_AFTER: "off" (-1) or seconds from 0 to 3600. 0 or -1. */
static int relay_after_value(const char *s, double *out) {
  char *end;
  double v;

  if (strcasecmp(s, "off") == 0) {
    *out = -1;
    return 0;
  }
  if (!*s || strspn(s, "0123456789.") != strlen(s) || strlen(s) > 16)
    return -1;
  v = strtod(s, &end);
  if (*end || v < 0 || v > 3600)
    return -1;
  *out = v;
  return 0;
}

int hp__cli_check_common(const hp__cli_cfg *c) {
  char err[256];
  hp__url url;
  double ra;

  if (relay_after_value(c->relay_after, &ra) < 0) {
    hp__cli_startup_error("RELAY_AFTER",
                          "RELAY_AFTER=\"%.64s\" is not valid: expected seconds from 0 to 3600 "
                          "(0: relay and punch at once) or \"off\" (never relay)",
                          c->relay_after);
    return -1;
  }
  if (!hp__wire_valid_name(c->room, strlen(c->room))) {
    hp__cli_startup_error(
        "ROOM", "ROOM=\"%.64s\" is not valid: expected 1 to 64 of A-Z a-z 0-9 . _ -", c->room);
    return -1;
  }
  if (strcmp(c->worker_id, HP_CLI_ID_AUTO) != 0 &&
      (!hp__wire_valid_name(c->worker_id, strlen(c->worker_id)) ||
       strcmp(c->worker_id, "use") == 0)) {
    hp__cli_startup_error("WORKER_ID",
                          "WORKER_ID=\"%.64s\" is not valid: expected 1 to 64 of A-Z a-z 0-9 . _ - "
                          "other than \"use\" (reserved), or \"auto\" to generate one",
                          c->worker_id);
    return -1;
  }
  if (hp__url_parse(c->url, &url, err, sizeof err) != 0) {
    hp__cli_startup_error("RENDEZVOUS_SERVICE_URL",
                          "RENDEZVOUS_SERVICE_URL=\"%.200s\" is not valid: %s", c->url, err);
    return -1;
  }
  {
    hp__hostport ss[4];
    char bad[96];
    int n = strcmp(c->stun_servers, HP_CLI_NONE) == 0
                ? 0
                : hp__hostport_list_parse(c->stun_servers, ss, 4, bad, sizeof bad);
    if (n < 0) {
      if (n == -E2BIG)
        hp__cli_startup_error("STUN_SERVERS", "STUN_SERVERS lists more than 4 servers");
      else
        hp__cli_startup_error("STUN_SERVERS",
                              "STUN_SERVERS entry \"%s\" is not host:port: expected ip:port, "
                              "[v6]:port or name:port (a DNS name: letters, digits, hyphens and "
                              "dots, at most 253 bytes; port 1-65535), separated by commas",
                              bad);
      return -1;
    }
  }
  if (strcmp(c->ca_file, HP_CLI_CA_SYSTEM) != 0 && access(c->ca_file, R_OK) != 0) {
    hp__cli_startup_error(
        "CA_FILE",
        "CA_FILE=\"%.200s\" cannot be read: %s (give a PEM bundle of CA certificates, "
        "or \"system\" for the system store)",
        c->ca_file, strerror(errno));
    return -1;
  }
  return 0;
}

void hp__cli_punch_config(const hp__cli_cfg *c, const char *kept_id, hp_config *out) {
  hp_config_init(out);
  out->rendezvous_url = c->url;
  out->room = c->room;
  out->worker_id = strcmp(c->worker_id, HP_CLI_ID_AUTO) == 0 ? NULL : c->worker_id;
  if (!out->worker_id && kept_id && *kept_id)
    out->worker_id = kept_id;
  out->internal_tcp_port = c->internal_port;
  out->ws_open_timeout = c->ws_open;
  out->ws_recv_timeout = c->ws_recv;
  out->listener_ready_timeout = c->listener_ready;
  out->p2p_connect_timeout = c->p2p_connect;
  out->ca_file = strcmp(c->ca_file, HP_CLI_CA_SYSTEM) == 0 ? NULL : c->ca_file;
  out->allow_loopback_candidates = c->allow_loopback;
  /* The engine runs the secure handshake with the code's key. */
  out->code = c->code && strcmp(c->code, HP_CLI_CODE_NONE) != 0 ? c->code : NULL;
  if (!c->relay_after || relay_after_value(c->relay_after, &out->relay_after) < 0)
    out->relay_after = 5.0; /* checked at start-up (hp__cli_check_common) */
  out->stun_servers = strcmp(c->stun_servers, HP_CLI_NONE) == 0 ? NULL : c->stun_servers;
  out->port_mapping = c->port_mapping;
  out->low_ttl_syn = c->low_ttl_syn;
}

int hp__cli_load(const hp__cfg_spec *specs, size_t n, hp__cli_cfg *c, int argc, char **argv,
                 const char *prog, const char *summary) {
  char err[512];
  hp__cfg_result cr;

  cr = hp__cfg_load(specs, n, c, argc, argv, err, sizeof err);
  if (cr == HP_CFG_HELP) {
    hp__cfg_usage(specs, n, prog, summary, stdout);
    return 0;
  }
  if (cr == HP_CFG_VERSION) {
    printf("holepunch %s\n", hp_version());
    return 0;
  }
  if (cr != HP_CFG_OK) {
    hp__cli_startup_error(NULL, "%s", err);
    return HP_STATUS_CONFIG;
  }
  hp__cli_setup_log(c);
  return -1;
}

const hp__cfg_spec hp__cli_code_spec = {
    "HOLEPUNCH_CODE",
    "code",
    HP_CFG_STRING,
    HP_CLI_CODE_NONE,
    0,
    0,
    NULL,
    offsetof(hp__cli_cfg, code),
    "the code both sides share (holepunch code prints one): the room comes from it and the "
    "peer must prove it knows it; \"none\": ROOM, peer unauthenticated"};

int hp__cli_apply_code(hp__cli_cfg *c, char *room_buf) {
  uint8_t secret[HP_CODE_SECRET_BYTES];
  char err[256], room[HP_CODE_ROOM_STRLEN];

  if (strcmp(c->code, HP_CLI_CODE_NONE) == 0)
    return 0;
  if (hp__code_parse(c->code, strlen(c->code), secret, err, sizeof err) != 0) {
    hp__cli_startup_error("HOLEPUNCH_CODE", "HOLEPUNCH_CODE is not valid: %s", err);
    return -1;
  }
  hp__code_room(secret, room);
  /* ROOM set explicitly wins (both sides must set it): a known room with a
   * code still authenticates the peer; the default room never is used with
   * a code. */
  if (strcmp(c->room, "default") == 0) {
    snprintf(room_buf, HP_ID_MAX + 1, "%s", room);
    c->room = room_buf;
  }
  memset(secret, 0, sizeof secret);
  return 1;
}
