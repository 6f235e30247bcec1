/*
 * pipe.c - `holepunch pipe`: like `nc -N` between the two sides: stdin to
 * the peer, the peer's bytes to stdout, each direction half-closed on EOF;
 * exit 0 when both are done (src/lib/app/pipe.c does the work). A progress
 * line on stderr when stderr is a terminal.
 */
#include <unistd.h>

#include "app/pipe.h"
#include "log.h"
#include "run.h"

static void on_pipe_done(int status, const char *why, uint64_t sent, uint64_t received, void *ud) {
  hp__cli_run *r = ud;

  if (status == 0)
    HP_INFO("worker",
            json_pack("{s:I, s:I}", "sent", (json_int_t)sent, "received", (json_int_t)received),
            "pipe done: %llu bytes sent, %llu received", (unsigned long long)sent,
            (unsigned long long)received);
  else if (r->exit_code < 0)
    HP_ERROR("worker",
             json_pack("{s:I, s:I}", "sent", (json_int_t)sent, "received", (json_int_t)received),
             "pipe failed after %llu bytes sent, %llu received: %s", (unsigned long long)sent,
             (unsigned long long)received, why);
  r->app = NULL;
  hp__cli_run_end(r, status == 0 ? 0 : HP_STATUS_EXCHANGE);
}

static int pipe_start(hp__cli_run *r, hp_bs *chan) {
  hp__pipe *p;
  int rc = hp__pipe_start(&r->loop, chan, STDIN_FILENO, STDOUT_FILENO, isatty(STDERR_FILENO),
                          on_pipe_done, r, &p);

  if (rc < 0) {
    HP_ERROR("worker", NULL, "cannot start the pipe: %s", uv_strerror(rc));
    return HP_STATUS_EXCHANGE;
  }
  r->app = p;
  return 0;
}

static void pipe_stop(hp__cli_run *r) {
  hp__pipe_stop(r->app);
}

int hp__cli_pipe(int argc, char **argv) {
  static hp__cli_run r = {.name = "pipe", .start = pipe_start, .stop = pipe_stop};

  return hp__cli_run_main(
      &r, argc, argv, "holepunch pipe",
      "Like nc -N between the two sides: stdin goes to the peer, the peer's bytes to stdout; "
      "each direction half-closes on EOF.\nBoth sides: holepunch pipe --code CODE (holepunch "
      "code prints one).\nExit codes: 0 both directions done, 2 configuration, 3 rendezvous, 4 "
      "no peer, 5 no direct connection, 6 the secure channel or the transfer failed (wrong "
      "code), 130/143 SIGINT/SIGTERM.");
}
