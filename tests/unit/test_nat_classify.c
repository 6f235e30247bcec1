/* test_nat_classify.c - the NAT verdict from observations, table-driven:
 * one row per NAT situation of the lab and a few edge cases. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "nat_classify.h"

#define RDV "198.51.100.100:8080"
#define RDV2 "198.51.100.100:8081"
#define STUN "203.0.113.134:3478"

struct row {
  const char *what;
  const char *local;
  const char *obs[4][2]; /* {observer, mapped}; NULL ends */
  hp__nat_filtering inbound;
  int hairpin;
  /* expected */
  int rc;
  const char *public_ip;
  int port_preserved;
  int behind_nat;
  const char *mapping; /* NULL: unknown */
  int certain;
  int mapped_port;
  const char *summary_part;
};

static const struct row rows[] = {
    {"lab preserving NAT, three observers, drop",
     "10.0.1.10:8082",
     {{RDV, "198.51.100.6:8082"}, {RDV2, "198.51.100.6:8082"}, {STUN, "198.51.100.6:8082"}},
     HP_NAT_FILTER_DROP,
     0,
     0,
     "198.51.100.6",
     1,
     1,
     "endpoint-independent",
     1,
     8082,
     "dropped silently"},
    {"lab changing NAT (masquerade to :20000-30000), reset",
     "10.0.1.10:8082",
     {{RDV, "198.51.100.6:24001"}, {RDV2, "198.51.100.6:24001"}, {STUN, "198.51.100.6:24001"}},
     HP_NAT_FILTER_RESET,
     -1,
     0,
     "198.51.100.6",
     0,
     1,
     "endpoint-independent",
     1,
     24001,
     "answered with a reset"},
    {"lab random NAT (fully-random): a new port per destination",
     "10.0.1.10:8082",
     {{RDV, "198.51.100.6:40001"}, {RDV2, "198.51.100.6:51234"}, {STUN, "198.51.100.6:33333"}},
     HP_NAT_FILTER_DROP,
     -1,
     0,
     "198.51.100.6",
     0,
     1,
     "address-and-port-dependent",
     1,
     -1,
     "UPnP-IGD"},
    {"address-dependent: same port per address, new per address",
     "10.0.1.10:8082",
     {{RDV, "198.51.100.6:40001"}, {RDV2, "198.51.100.6:40001"}, {STUN, "198.51.100.6:40002"}},
     HP_NAT_FILTER_UNKNOWN,
     -1,
     0,
     "198.51.100.6",
     0,
     1,
     "address-dependent",
     1,
     -1,
     "new public port for each destination"},
    {"two addresses disagree, no same-address pair: address-dependent at least",
     "10.0.1.10:8082",
     {{RDV, "198.51.100.6:40001"}, {STUN, "198.51.100.6:40002"}},
     HP_NAT_FILTER_UNKNOWN,
     -1,
     0,
     "198.51.100.6",
     0,
     1,
     "address-dependent",
     0,
     -1,
     "at least"},
    {"one address, two ports, same mapping: EIM, not certain",
     "10.0.1.10:8082",
     {{RDV, "198.51.100.6:8082"}, {RDV2, "198.51.100.6:8082"}},
     HP_NAT_FILTER_UNKNOWN,
     -1,
     0,
     "198.51.100.6",
     1,
     1,
     "endpoint-independent",
     0,
     8082,
     "seen from one address only"},
    {"public host, connect-back works",
     "203.0.113.134:8082",
     {{RDV, "203.0.113.134:8082"}},
     HP_NAT_FILTER_OPEN,
     -1,
     0,
     "203.0.113.134",
     1,
     0,
     "endpoint-independent",
     1,
     8082,
     "any peer"},
    {"one observer behind a NAT: mapping unknown",
     "10.0.1.10:8082",
     {{RDV, "198.51.100.6:8082"}},
     HP_NAT_FILTER_UNKNOWN,
     1,
     0,
     "198.51.100.6",
     1,
     1,
     NULL,
     0,
     -1,
     "Hairpinning works"},
    {"the same observer twice says nothing",
     "10.0.1.10:8082",
     {{RDV, "198.51.100.6:1"}, {RDV, "198.51.100.6:2"}},
     HP_NAT_FILTER_UNKNOWN,
     -1,
     0,
     "198.51.100.6",
     0,
     1,
     NULL,
     0,
     -1,
     "unknown"},
    {"address pool: two public IPs",
     "10.0.1.10:8082",
     {{RDV, "198.51.100.6:8082"}, {STUN, "198.51.100.7:8082"}},
     HP_NAT_FILTER_UNKNOWN,
     -1,
     0,
     "198.51.100.6",
     1,
     1,
     "address-dependent",
     0,
     -1,
     "address pool"},
    {"IPv6 firewall, no NAT",
     "[2001:db8:1::10]:8082",
     {{"[2001:db8::100]:8080", "[2001:db8:1::10]:8082"},
      {"[2001:db8::101]:3478", "[2001:db8:1::10]:8082"}},
     HP_NAT_FILTER_DROP,
     -1,
     0,
     "2001:db8:1::10",
     1,
     0,
     "endpoint-independent",
     1,
     8082,
     "public address"},
    {"an IPv6 observation for an IPv4 port is ignored; none left",
     "10.0.1.10:8082",
     {{"[2001:db8::100]:8080", "[2001:db8:1::10]:8082"}},
     HP_NAT_FILTER_UNKNOWN,
     -1,
     -EINVAL,
     "",
     -1,
     -1,
     NULL,
     0,
     -1,
     "could not be classified"},
};

static void parse(const char *s, struct sockaddr_storage *ss) {
  assert_int_equal(hp__addr_parse(s, strlen(s), ss, NULL), 0);
}

static void test_table(void **state) {
  size_t r, i;
  (void)state;
  for (r = 0; r < sizeof rows / sizeof rows[0]; r++) {
    const struct row *w = &rows[r];
    hp__nat_input in;
    hp__nat_verdict v;
    const char *m;
    int rc;

    memset(&in, 0, sizeof in);
    parse(w->local, &in.local);
    for (i = 0; i < 4 && w->obs[i][0]; i++) {
      parse(w->obs[i][0], &in.obs[i].observer);
      parse(w->obs[i][1], &in.obs[i].mapped);
    }
    in.n_obs = i;
    in.inbound = w->inbound;
    in.hairpin = w->hairpin;
    rc = hp__nat_classify(&in, &v);
    m = hp__nat_mapping_name(v.mapping);
    if (rc != w->rc || strcmp(v.public_ip, w->public_ip) != 0 ||
        v.port_preserved != w->port_preserved || v.behind_nat != w->behind_nat ||
        (m == NULL) != (w->mapping == NULL) || (m && strcmp(m, w->mapping) != 0) ||
        (w->mapping && v.mapping_certain != w->certain) || v.mapped_port != w->mapped_port ||
        v.filtering != w->inbound || !strstr(v.summary, w->summary_part))
      fail_msg("%s: rc %d ip '%s' preserved %d nat %d mapping %s certain %d port %d: %s", w->what,
               rc, v.public_ip, v.port_preserved, v.behind_nat, m ? m : "null", v.mapping_certain,
               v.mapped_port, v.summary);
  }
}

static void test_json(void **state) {
  hp__nat_input in;
  hp__nat_verdict v;
  json_t *j;
  char *text;
  (void)state;
  memset(&in, 0, sizeof in);
  parse("10.0.1.10:8082", &in.local);
  parse(RDV, &in.obs[0].observer);
  parse("198.51.100.6:24001", &in.obs[0].mapped);
  parse(STUN, &in.obs[1].observer);
  parse("198.51.100.6:24001", &in.obs[1].mapped);
  in.n_obs = 2;
  in.inbound = HP_NAT_FILTER_RESET;
  in.hairpin = -1;
  assert_int_equal(hp__nat_classify(&in, &v), 0);
  j = hp__nat_verdict_json(&v);
  assert_non_null(j);
  assert_string_equal(json_string_value(json_object_get(j, "public_addr")), "198.51.100.6");
  assert_true(json_is_false(json_object_get(j, "port_preserved")));
  assert_string_equal(json_string_value(json_object_get(j, "mapping")), "endpoint-independent");
  assert_string_equal(json_string_value(json_object_get(j, "filtering")), "reset");
  assert_true(json_is_null(json_object_get(j, "hairpin")));
  assert_int_equal(json_integer_value(json_object_get(j, "mapped_port")), 24001);
  text = json_dumps(j, JSON_COMPACT);
  assert_non_null(text);
  free(text);
  json_decref(j);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_table),
      cmocka_unit_test(test_json),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
