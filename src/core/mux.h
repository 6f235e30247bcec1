/*
 * mux.h - the stream multiplexer: many byte streams over one byte stream to
 * the peer (forward/expose), as a pure codec and per-stream state machine.
 * No I/O: the caller feeds the bytes it read from the carrier and writes the
 * frames this module encodes. Frame format: docs/PROTOCOL.md section 7.
 *
 * Bounds: frames carry at most HP_MUX_FRAME_MAX bytes; the decoder holds at
 * most one frame (HP_MUX_HDR + HP_MUX_FRAME_MAX bytes); at most max_streams
 * streams live at once; each stream's receive window (HP_MUX_WINDOW_INIT, the
 * credit the peer may send before we return some) bounds what one stream can
 * make the receiver hold, so one slow local connection never stalls the
 * others nor grows memory.
 *
 * Stream ids: the opener's parity (the initiator's streams are odd, the
 * responder's even), never reused, increasing per opener; a frame for an id
 * that existed and was closed is ignored (frames cross an RST on the way).
 */
#ifndef HP_MUX_H
#define HP_MUX_H

#include <stddef.h>
#include <stdint.h>

#define HP_MUX_HDR 8               /* type, flags, length (2), stream id (4) */
#define HP_MUX_FRAME_MAX 16384     /* payload bytes of one frame */
#define HP_MUX_WINDOW_INIT 262144u /* initial per-stream window, each direction */
#define HP_MUX_WINDOW_MAX (1u << 30)
#define HP_MUX_REASON_MAX 200      /* text of an RST */
#define HP_MUX_STREAMS_DEFAULT 256 /* streams at once */
#define HP_MUX_STREAMS_LIMIT 4096
/* Room for any frame but DATA: header + RST code + reason. */
#define HP_MUX_CTL_MAX (HP_MUX_HDR + 1 + HP_MUX_REASON_MAX)

typedef enum hp__mux_type {
  HP_MUX_OPEN = 1,   /* a new stream; no payload */
  HP_MUX_DATA = 2,   /* 1..HP_MUX_FRAME_MAX bytes of the stream */
  HP_MUX_WINDOW = 3, /* 4 bytes: credit returned to the sender */
  HP_MUX_FIN = 4,    /* the sender writes no more on this stream (half-close) */
  HP_MUX_RST = 5     /* 1 byte code + 0..HP_MUX_REASON_MAX bytes of text: stream gone */
} hp__mux_type;

/* Codes of an RST. */
typedef enum hp__mux_rst_code {
  HP_MUX_RST_OTHER = 0,
  HP_MUX_RST_REFUSED = 1,     /* the target refused the connection */
  HP_MUX_RST_UNREACHABLE = 2, /* the target could not be reached (or resolved) */
  HP_MUX_RST_TOO_MANY = 3,    /* over the receiver's stream limit */
  HP_MUX_RST_NOT_ALLOWED = 4, /* this side does not accept streams */
  HP_MUX_RST_ABORTED = 5,     /* the local connection broke or was reset */
  HP_MUX_RST_SHUTDOWN = 6     /* the program is stopping */
} hp__mux_rst_code;

/* One stream's state, from this side's view. A stream leaves the table once
 * both directions finished (FIN each way) or at an RST either way. */
typedef enum hp__mux_sstate {
  HP_MUX_S_FREE = 0,   /* slot unused */
  HP_MUX_S_OPEN,       /* both directions open */
  HP_MUX_S_LOCAL_FIN,  /* we sent FIN; the peer may still send */
  HP_MUX_S_REMOTE_FIN, /* the peer sent FIN; we may still send */
} hp__mux_sstate;

typedef enum hp__mux_ev_type {
  HP_MUX_EV_NONE = 0, /* no complete frame yet (or an ignored one) */
  HP_MUX_EV_OPEN,     /* the peer opened stream id */
  HP_MUX_EV_REFUSED,  /* the peer opened id over our limit: send RST TOO_MANY */
  HP_MUX_EV_DATA,     /* data, n bytes at p (valid until the next call) */
  HP_MUX_EV_FIN,      /* the peer finished writing on id; closed: the stream is gone */
  HP_MUX_EV_RST,      /* the peer reset id (code, reason); the stream is gone */
  HP_MUX_EV_WINDOW    /* more credit to send on id */
} hp__mux_ev_type;

typedef struct hp__mux_ev {
  hp__mux_ev_type type;
  uint32_t id;
  void *ud;         /* the stream's user pointer (NULL for OPEN, REFUSED) */
  const uint8_t *p; /* DATA: the bytes; RST: the reason text (not terminated) */
  size_t n;
  int code;   /* RST: hp__mux_rst_code (any 0..255 from the peer) */
  int closed; /* FIN: the stream is gone (both directions finished) */
} hp__mux_ev;

typedef struct hp__mux hp__mux;

/* A multiplexer; initiator 1 opens odd ids, 0 even ones (the two ends must
 * differ). max_streams 1..HP_MUX_STREAMS_LIMIT (0: the default). NULL when
 * out of memory or the arguments are wrong. */
hp__mux *hp__mux_new(int initiator, unsigned max_streams);
void hp__mux_free(hp__mux *m);

/*
 * Decode from p[0..n): returns the bytes consumed (0..n) and fills *ev (type
 * NONE when no frame completed), or -EPROTO when the peer broke the
 * protocol (a sentence in hp__mux_error()); every later call fails too.
 * Call again with the rest while it consumes bytes or returns an event.
 */
long hp__mux_decode(hp__mux *m, const uint8_t *p, size_t n, hp__mux_ev *ev);
const char *hp__mux_error(const hp__mux *m);

/* Open a stream: *id gets its id; the OPEN frame goes to out (HP_MUX_HDR
 * bytes). -EAGAIN at the stream limit, -EPROTO after a protocol error. */
int hp__mux_open(hp__mux *m, void *ud, uint32_t *id, uint8_t out[HP_MUX_HDR]);

/* How many bytes may go out on id now (credit, at most HP_MUX_FRAME_MAX per
 * frame); 0 for an unknown or finished stream. */
size_t hp__mux_credit(const hp__mux *m, uint32_t id);

/* The header of a DATA frame of n bytes (1..min(credit, HP_MUX_FRAME_MAX))
 * to out; the n bytes follow it on the carrier. 0 or -EINVAL. */
int hp__mux_data(hp__mux *m, uint32_t id, size_t n, uint8_t out[HP_MUX_HDR]);

/* FIN on id to out (HP_MUX_HDR bytes). Returns 1 when the stream is gone
 * now (the peer had finished too), 0 when it lives on, -EINVAL. */
int hp__mux_fin(hp__mux *m, uint32_t id, uint8_t out[HP_MUX_HDR]);

/* RST on id (removes it); the frame to out (HP_MUX_CTL_MAX bytes); returns
 * its length, or -EINVAL for an unknown stream. reason may be NULL. */
int hp__mux_rst(hp__mux *m, uint32_t id, int code, const char *reason, uint8_t out[HP_MUX_CTL_MAX]);

/* The application consumed n bytes received on id (wrote them on). Returns
 * the length of a WINDOW frame put in out (HP_MUX_HDR + 4 bytes) when
 * enough credit accumulated to be worth a frame, 0 otherwise, -EINVAL for
 * more than was received or an unknown stream. */
int hp__mux_consumed(hp__mux *m, uint32_t id, size_t n, uint8_t out[HP_MUX_HDR + 4]);

/* An RST frame for a stream we do not hold (the reply to EV_REFUSED). */
int hp__mux_rst_frame(uint32_t id, int code, const char *reason, uint8_t out[HP_MUX_CTL_MAX]);

hp__mux_sstate hp__mux_state(const hp__mux *m, uint32_t id);
void *hp__mux_ud(const hp__mux *m, uint32_t id);
int hp__mux_set_ud(hp__mux *m, uint32_t id, void *ud);
/* Streams alive now. */
unsigned hp__mux_count(const hp__mux *m);
/* Call f for every live stream (e.g. to reset them all at shutdown); f may
 * call hp__mux_rst on that stream. */
void hp__mux_foreach(hp__mux *m, void (*f)(hp__mux *m, uint32_t id, void *ud, void *arg),
                     void *arg);

#endif
