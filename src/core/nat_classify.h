/*
 * nat_classify.h - the NAT verdict of `holepunch diagnose` (issue 9),
 * computed from observations, with no I/O.
 *
 * The caller (src/lib/discover/, later a natdiag.c) gathers:
 *   - the mapping of ONE local port (the punch port) as seen by several
 *     observers: the rendezvous' /whoami, a second rendezvous port or
 *     address, STUN servers (hp__stun_* over TCP);
 *   - optionally the result of a connect-back test (an observer connects to
 *     the mapping without us connecting first) and of a hairpin test (we
 *     connect to our own mapping);
 * and this module says what that means (RFC 4787 terms): mapping behaviour,
 * filtering, port preservation, and a sentence for people.
 */
#ifndef HP_NAT_CLASSIFY_H
#define HP_NAT_CLASSIFY_H

#include <jansson.h>
#include <sys/socket.h>

#include "addr.h"

#define HP_NAT_OBS_MAX 8
#define HP_NAT_SUMMARY_MAX 512

typedef enum hp__nat_mapping {
  HP_NAT_MAP_UNKNOWN = 0, /* fewer than two usable observations */
  HP_NAT_MAP_EIM,         /* endpoint-independent: one mapping for every destination */
  HP_NAT_MAP_ADM,         /* address-dependent: a mapping per destination address */
  HP_NAT_MAP_APDM,        /* address-and-port-dependent: per destination address and port */
} hp__nat_mapping;

typedef enum hp__nat_filtering {
  HP_NAT_FILTER_UNKNOWN = 0, /* not tested */
  HP_NAT_FILTER_OPEN,        /* the connect-back connected */
  HP_NAT_FILTER_DROP,        /* the connect-back timed out: unsolicited SYNs are dropped */
  HP_NAT_FILTER_RESET,       /* the connect-back was refused: unsolicited SYNs get a reset */
} hp__nat_filtering;

/* One observer's view of our local port. */
typedef struct hp__nat_obs {
  struct sockaddr_storage observer; /* the observer's address and port (as we dialed it) */
  struct sockaddr_storage mapped;   /* what it saw as our address and port */
} hp__nat_obs;

typedef struct hp__nat_input {
  struct sockaddr_storage local; /* our local address and the punch port */
  hp__nat_obs obs[HP_NAT_OBS_MAX];
  size_t n_obs;
  hp__nat_filtering inbound; /* the connect-back result */
  int hairpin;               /* 1 worked, 0 failed, -1 not tested */
} hp__nat_input;

typedef struct hp__nat_verdict {
  char public_ip[HP_ADDR_STRLEN]; /* "" when no observation */
  int mapped_port;                /* the one mapped port (EIM), else -1 */
  int behind_nat;                 /* 1, 0 (public address on the host), -1 unknown */
  int port_preserved;             /* 1, 0, -1 unknown */
  hp__nat_mapping mapping;
  int mapping_certain; /* 0: the observers could not tell EIM from ADM, or ADM from APDM */
  hp__nat_filtering filtering;
  int hairpin;                      /* 1, 0, -1 untested */
  int several_ips;                  /* observers saw different public IPs (address pooling) */
  char summary[HP_NAT_SUMMARY_MAX]; /* what it means, in plain words */
} hp__nat_verdict;

/*
 * Classify. Observations with a family other than the local address's, or
 * without an address, are ignored. Returns 0, or -EINVAL when no usable
 * observation is given (the verdict then says so in its summary).
 *
 * Mapping (one local port, mappings compared as ip:port):
 *   - two observers on the same IP but different ports saw different
 *     mappings: address-and-port-dependent (certain);
 *   - two observers on different IPs saw the same mapping: endpoint-
 *     independent (certain);
 *   - different IPs gave different mappings while same-IP observers agreed:
 *     address-dependent (certain); with no same-IP pair to compare:
 *     address-dependent at least (not certain);
 *   - only same-IP observers, all agreeing: endpoint-independent (not
 *     certain: address-dependent looks the same from one address).
 */
int hp__nat_classify(const hp__nat_input *in, hp__nat_verdict *v);

/* "endpoint-independent", "address-dependent", "address-and-port-dependent", or NULL. */
const char *hp__nat_mapping_name(hp__nat_mapping m);
/* "open", "drop", "reset", or NULL. */
const char *hp__nat_filtering_name(hp__nat_filtering f);

/*
 * The verdict as the JSON object of `holepunch diagnose --json`:
 * {"public_addr", "port_preserved", "mapping", "filtering", "hairpin",
 *  "mapping_certain", "mapped_port", "behind_nat", "summary"}; unknown
 * values are null. New reference, NULL on allocation failure.
 */
json_t *hp__nat_verdict_json(const hp__nat_verdict *v);

#endif
