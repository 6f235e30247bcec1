/*
 * rooms_redis_int.h - what the two files of the Redis room store share:
 * rooms_redis.c (joins, leaves, connections, the function table) and
 * rooms_redis_sync.c (lease renewal and pub/sub notifications: keeping this
 * instance's members in step with Redis). Internal; see rooms_redis.h.
 */
#ifndef HP_ROOMS_REDIS_INT_H
#define HP_ROOMS_REDIS_INT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include <hiredis/hiredis.h>

#include "redis_conn.h"
#include "rooms_redis.h"

#define COMP "redis"
#define KEY_MAX 256
#define REFRESH_BATCH 128   /* members per refresh script call */
#define GRAVEYARD_MAX 10000 /* leaves kept while Redis is unreachable */
#define TOKEN_LEN 16

enum { S_JOIN = 0, S_LEAVE, S_REFRESH, S_COUNT };

typedef enum mstate {
  M_JOINING = 0,  /* join script in flight */
  M_JOINING_LEFT, /* ... and the connection closed: leave when it answers */
  M_WAITING,      /* alone in its room */
  M_REJOINING,    /* Redis forgot it; join script in flight again */
  M_PAIRED        /* has its peer; keeps its id until it leaves */
} mstate;

typedef struct rmember {
  hp__store_ref ref;
  hp__store_mid mid;
  mstate state;
  char tok[TOKEN_LEN + 1];
  char id[HP_ID_MAX + 1];
  char room[HP_ID_MAX + 1];
  void *payload; /* while joining or waiting: a rejoin needs it */
  size_t len;
  /* A pairing notification that came before the answer to its join (the
   * two arrive on two connections, in either order): kept, and handled
   * once the join's answer made the member wait. */
  char *early;
  size_t early_len;
} rmember;

typedef struct grave {
  char tok[TOKEN_LEN + 1];
  char id[HP_ID_MAX + 1];
  char room[HP_ID_MAX + 1];
} grave;

typedef struct rstore {
  hp__store base; /* first */
  uv_loop_t *loop;
  hp__redis_url url;
  char prefix[HP_STORE_REDIS_PREFIX_MAX + 1];
  char channel[HP_STORE_REDIS_PREFIX_MAX + HP_STORE_INSTANCE_MAX + 8];
  uint32_t ttl_ms;
  hp__rconn *cmd, *sub;
  int scripts_loaded; /* bit per script */
  char sha[S_COUNT][41];
  int subscribed;
  int available;
  int closing;
  int open_conns; /* rconns not yet closed */
  uv_timer_t refresh;
  int refresh_open;
  hp__slots slots;
  uint64_t waiting;
  grave *graves;
  size_t ngraves;
  hp__store_stats stats;   /* round trips are counted here by redis_conn.c */
  char (*keybuf)[KEY_MAX]; /* 2 * REFRESH_BATCH keys of one renewal call */
  void (*done)(void *arg);
  void *done_arg;
} rstore;

/* The argument of a command's answer. */
typedef struct rcall {
  rstore *s;
  int script;
  hp__store_mid mid; /* join */
  grave g;           /* leave */
  size_t n;          /* refresh: members in the batch */
  hp__store_mid mids[];
} rcall;

/* rooms_redis.c */
void hp__rr_set_mstate(rstore *s, rmember *m, mstate st);
void hp__rr_member_free(rstore *s, rmember *m);
rmember *hp__rr_member_get(rstore *s, hp__store_mid mid);
int hp__rr_keys_of(const rstore *s, const char *room, const char *id, char *wk, char *mk,
                   char *mprefix);
void hp__rr_update_available(rstore *s, const char *why);
rcall *hp__rr_call_new(rstore *s, int script, size_t n);
int hp__rr_send_script(rstore *s, int script, int eval, hp__rconn_reply_cb cb, rcall *call,
                       int nkeys, int nargs, const char **kv, const size_t *kvlen);
int hp__rr_is_noscript(const redisReply *r);
void hp__rr_load_scripts(rstore *s);
int hp__rr_elem_str(const redisReply *r, size_t i, const char **p, size_t *n);
int hp__rr_pairing_from(hp__store_pairing *p, char role, const char *pid, size_t pidn,
                        const char *pinst, size_t pinstn, const void *pl, size_t pln,
                        const char *ses, size_t sesn);
hp__store_mid hp__rr_mid_of_token(const char *p, size_t n);
void hp__rr_deliver_paired(rstore *s, rmember *m, const hp__store_pairing *p, int remote);
int hp__rr_send_join(rstore *s, rmember *m, int eval);

/* rooms_redis_sync.c */
void hp__rr_refresh_all(rstore *s);
void hp__rr_on_refresh_timer(uv_timer_t *t);
void hp__rr_on_sub_push(void *arg, redisReply *r);
void hp__rr_on_notification(rstore *s, const char *msg, size_t n);

#endif
