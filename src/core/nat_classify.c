/*
 * nat_classify.c - the NAT verdict from observations (see nat_classify.h).
 */
#include "nat_classify.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static int port_of(const struct sockaddr_storage *ss) {
  if (ss->ss_family == AF_INET)
    return ntohs(((const struct sockaddr_in *)ss)->sin_port);
  if (ss->ss_family == AF_INET6)
    return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
  return -1;
}

/* Same IP (ports not compared). */
static int same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
  if (a->ss_family != b->ss_family)
    return 0;
  if (a->ss_family == AF_INET)
    return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
                  &((const struct sockaddr_in *)b)->sin_addr, sizeof(struct in_addr)) == 0;
  if (a->ss_family == AF_INET6)
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
  return 0;
}

static int same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
  return same_ip(a, b) && port_of(a) == port_of(b);
}

const char *hp__nat_mapping_name(hp__nat_mapping m) {
  switch (m) {
  case HP_NAT_MAP_EIM:
    return "endpoint-independent";
  case HP_NAT_MAP_ADM:
    return "address-dependent";
  case HP_NAT_MAP_APDM:
    return "address-and-port-dependent";
  default:
    return NULL;
  }
}

const char *hp__nat_filtering_name(hp__nat_filtering f) {
  switch (f) {
  case HP_NAT_FILTER_OPEN:
    return "open";
  case HP_NAT_FILTER_DROP:
    return "drop";
  case HP_NAT_FILTER_RESET:
    return "reset";
  default:
    return NULL;
  }
}

/* Mapping behaviour from the usable observations (indexes in use[]). */
static void classify_mapping(const hp__nat_input *in, const size_t *use, size_t n,
                             hp__nat_verdict *v) {
  int same_ip_pair = 0, same_ip_differs = 0, diff_ip_pair = 0, diff_ip_same_map = 0,
      diff_ip_differs = 0;
  size_t i, j;

  for (i = 0; i < n; i++)
    for (j = i + 1; j < n; j++) {
      const hp__nat_obs *a = &in->obs[use[i]], *b = &in->obs[use[j]];
      int eq = same_addr(&a->mapped, &b->mapped);

      if (same_addr(&a->observer, &b->observer))
        continue; /* the same observer twice says nothing about mapping */
      if (same_ip(&a->observer, &b->observer)) {
        same_ip_pair = 1;
        same_ip_differs |= !eq;
      } else {
        diff_ip_pair = 1;
        diff_ip_same_map |= eq;
        diff_ip_differs |= !eq;
      }
    }
  if (same_ip_differs) {
    v->mapping = HP_NAT_MAP_APDM;
    v->mapping_certain = 1;
  } else if (diff_ip_pair && diff_ip_same_map && !diff_ip_differs) {
    v->mapping = HP_NAT_MAP_EIM;
    v->mapping_certain = 1;
  } else if (diff_ip_differs) {
    v->mapping = HP_NAT_MAP_ADM;
    v->mapping_certain = same_ip_pair;
  } else if (same_ip_pair) {
    v->mapping = HP_NAT_MAP_EIM;
    v->mapping_certain = 0;
  } else {
    v->mapping = HP_NAT_MAP_UNKNOWN; /* one observer only (or one, asked twice) */
  }
}

static void write_summary(hp__nat_verdict *v) {
  char *s = v->summary;
  size_t cap = sizeof v->summary, len = 0;

#define ADD(...)                                                                                   \
  do {                                                                                             \
    int n = snprintf(s + len, cap - len, __VA_ARGS__);                                             \
    if (n > 0)                                                                                     \
      len = (size_t)n < cap - len ? len + (size_t)n : cap - 1;                                     \
  } while (0)

  if (v->behind_nat == 0)
    ADD("This host has a public address (%s), no NAT. ", v->public_ip);
  else if (v->mapping == HP_NAT_MAP_EIM)
    ADD("Your NAT keeps one public mapping per local port%s (%s:%d, port %s): a peer can dial it "
        "once your SYN has opened it. ",
        v->mapping_certain ? " for every destination" : " (seen from one address only)",
        v->public_ip, v->mapped_port, v->port_preserved == 1 ? "preserved" : "changed");
  else if (v->mapping == HP_NAT_MAP_ADM || v->mapping == HP_NAT_MAP_APDM)
    ADD("Your NAT picks a new public port for each destination (%s%s): the mapping an observer "
        "sees is not the one a peer would see. ",
        hp__nat_mapping_name(v->mapping), v->mapping_certain ? "" : " at least");
  else
    ADD("The mapping behaviour is unknown (fewer than two observers answered). ");
  if (v->several_ips)
    ADD("Observers saw different public addresses (the NAT uses an address pool). ");
  if (v->filtering == HP_NAT_FILTER_RESET)
    ADD("Unsolicited inbound connections are answered with a reset: both sides must send their "
        "SYNs at nearly the same time. ");
  else if (v->filtering == HP_NAT_FILTER_DROP)
    ADD("Unsolicited inbound connections are dropped silently. ");
  else if (v->filtering == HP_NAT_FILTER_OPEN)
    ADD("Unsolicited inbound connections reach this host. ");
  if (v->hairpin == 1)
    ADD("Hairpinning works (peers behind the same NAT can use the public mapping). ");
  else if (v->hairpin == 0)
    ADD("No hairpinning (peers behind the same NAT connect over the LAN). ");

  if (v->behind_nat == 0 && v->filtering == HP_NAT_FILTER_OPEN)
    ADD("Direct TCP will work with any peer.");
  else if (v->mapping == HP_NAT_MAP_EIM || v->behind_nat == 0)
    ADD("Direct TCP will work with peers on public addresses and behind endpoint-independent "
        "NATs; otherwise the relay is used.");
  else if (v->mapping == HP_NAT_MAP_ADM || v->mapping == HP_NAT_MAP_APDM)
    ADD("Direct TCP will work only with peers on public addresses, or when the router maps the "
        "port (UPnP-IGD, NAT-PMP); otherwise the relay is used.");
#undef ADD
}

int hp__nat_classify(const hp__nat_input *in, hp__nat_verdict *v) {
  size_t use[HP_NAT_OBS_MAX], n = 0, i;
  int fam = in->local.ss_family;

  memset(v, 0, sizeof *v);
  v->mapped_port = -1;
  v->behind_nat = -1;
  v->port_preserved = -1;
  v->hairpin = in->hairpin < 0 ? -1 : in->hairpin ? 1 : 0;
  v->filtering = in->inbound;
  for (i = 0; i < in->n_obs && i < HP_NAT_OBS_MAX; i++) {
    const hp__nat_obs *o = &in->obs[i];
    if ((o->mapped.ss_family == AF_INET || o->mapped.ss_family == AF_INET6) &&
        (!fam || o->mapped.ss_family == fam) && port_of(&o->mapped) > 0)
      use[n++] = i;
  }
  if (n == 0) {
    snprintf(v->summary, sizeof v->summary,
             "No observer reported our mapping: the NAT could not be classified.");
    return -EINVAL;
  }
  {
    char text[HP_ADDR_STRLEN];
    const hp__nat_obs *first = &in->obs[use[0]];

    if (hp__addr_format((const struct sockaddr *)&first->mapped, text, sizeof text) > 0) {
      /* "ip:port" or "[v6]:port" -> the IP alone. */
      char *colon = strrchr(text, ':');
      if (colon)
        *colon = '\0';
      if (text[0] == '[') {
        size_t l = strlen(text);
        memmove(text, text + 1, l);
        if (l >= 2 && text[l - 2] == ']')
          text[l - 2] = '\0';
      }
      snprintf(v->public_ip, sizeof v->public_ip, "%s", text);
    }
  }
  v->port_preserved = 1;
  for (i = 0; i < n; i++) {
    const hp__nat_obs *o = &in->obs[use[i]];
    if (fam && port_of(&o->mapped) != port_of(&in->local))
      v->port_preserved = 0;
    if (!same_ip(&o->mapped, &in->obs[use[0]].mapped))
      v->several_ips = 1;
  }
  if (!fam)
    v->port_preserved = -1;
  if (fam)
    v->behind_nat = same_ip(&in->obs[use[0]].mapped, &in->local) ? 0 : 1;
  classify_mapping(in, use, n, v);
  if (v->behind_nat == 0 && v->mapping == HP_NAT_MAP_UNKNOWN) {
    v->mapping = HP_NAT_MAP_EIM; /* no NAT: nothing maps */
    v->mapping_certain = 1;
  }
  if (v->mapping == HP_NAT_MAP_EIM)
    v->mapped_port = port_of(&in->obs[use[0]].mapped);
  write_summary(v);
  return 0;
}

json_t *hp__nat_verdict_json(const hp__nat_verdict *v) {
  const char *m = hp__nat_mapping_name(v->mapping), *f = hp__nat_filtering_name(v->filtering);

  return json_pack("{s:o, s:o, s:o, s:o, s:o, s:b, s:o, s:o, s:s}", "public_addr",
                   v->public_ip[0] ? json_string(v->public_ip) : json_null(), "port_preserved",
                   v->port_preserved < 0 ? json_null() : json_boolean(v->port_preserved), "mapping",
                   m ? json_string(m) : json_null(), "filtering", f ? json_string(f) : json_null(),
                   "hairpin", v->hairpin < 0 ? json_null() : json_boolean(v->hairpin),
                   "mapping_certain", v->mapping_certain, "mapped_port",
                   v->mapped_port < 0 ? json_null() : json_integer(v->mapped_port), "behind_nat",
                   v->behind_nat < 0 ? json_null() : json_boolean(v->behind_nat), "summary",
                   v->summary);
}
