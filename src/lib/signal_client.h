/*
 * signal_client.h - the WebSocket to the rendezvous (<base>/ws), on
 * src/net's WebSocket client (ws_client.h) on the caller's libuv loop.
 *
 * Every callback fires on the loop, never from inside hp__sig_* calls.
 * After hp__sig_close no callback but the close callback fires.
 */
#ifndef HP_SIGNAL_CLIENT_H
#define HP_SIGNAL_CLIENT_H

#include <uv.h>

#include "url.h"
#include "wire.h"

typedef struct hp__sig hp__sig;

typedef struct hp__sig_cbs {
  /* The WebSocket is open: send the hello now. */
  void (*opened)(void *data);
  /* One valid message from the rendezvous. */
  void (*message)(void *data, const hp__msg *m);
  /* Connecting failed, the rendezvous closed the connection, or it sent
   * something that is not a valid protocol message. reason is a sentence.
   * No other callback follows; the caller still calls hp__sig_close. */
  void (*failed)(void *data, const char *reason);
} hp__sig_cbs;

/* Start connecting. ca_file NULL = system CA store. Returns 0 or -errno. */
int hp__sig_open(uv_loop_t *loop, const hp__url *url, const char *ca_file, const hp__sig_cbs *cbs,
                 void *data, hp__sig **out);

/* Send a message (at most 256 KiB wait in the queue). Returns 0, -ENOTCONN,
 * -ENOBUFS or -ENOMEM. */
int hp__sig_send(hp__sig *s, const hp__msg *m);

/*
 * Close politely: flush what is queued, send a close frame, wait for the
 * close (bounded, 2 s), then call done(done_data) (done may be NULL) and free
 * everything. The loop must keep running until then. After a failure the
 * connection is over already: done is then called (and s freed) at once.
 */
void hp__sig_close(hp__sig *s, void (*done)(void *done_data), void *done_data);

#endif
