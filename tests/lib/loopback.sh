# shellcheck shell=bash disable=SC2034 # LO_* variables are read by the callers
# tests/lib/loopback.sh - sourced by the loopback tests (tests/deploy,
# tests/slow): start holepunch-rendezvous on 127.0.0.1 with a kernel-chosen
# port, pick free ports, stop processes. Every wait is bounded. Functions set
# variables instead of printing (they must run in the caller's shell, so that
# the processes they start are its children and `wait` works), and never exit:
# the caller decides how to fail (die, fail, bad, ...).
#
# A caller's EXIT trap should run `lo_stop "$LO_RDV_PID"`: LO_RDV_PID is set as
# soon as the rendezvous is started, so an interruption while it is polled
# for its port still leaves nothing running.

LO_PY=/usr/bin/python3 # Debian's, see TEAM-RULES.md
LO_RDV_PID=""          # the rendezvous started by lo_start_rendezvous
LO_RDV_PORT=""         # the port it logged
LO_START_TIMEOUT=${LO_START_TIMEOUT:-10} # s to wait for the logged port
LO_ERR=""              # why the last lo_* call failed
LO_RC=""               # exit status reaped by lo_wait / lo_stop

# lo_free_port: print a TCP port that is free on 127.0.0.1 right now.
lo_free_port() {
  "$LO_PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# lo_alive PID: PID runs (a zombie child that is not reaped yet does not).
lo_alive() {
  kill -0 "$1" 2>/dev/null && [[ "$(ps -o stat= -p "$1" 2>/dev/null)" != Z* ]]
}

# lo_wait PID SECONDS: wait at most SECONDS for PID (a child of this shell) to
# exit and set LO_RC to its exit status. Returns 1, and leaves PID running,
# if it still runs then.
lo_wait() {
  local pid=$1 n=$(($2 * 20))
  while ((n-- > 0)) && lo_alive "$pid"; do sleep 0.05; done
  if lo_alive "$pid"; then
    LO_ERR="process $pid did not exit within $2 s"
    return 1
  fi
  LO_RC=0
  wait "$pid" 2>/dev/null || LO_RC=$?
}

# lo_stop PID [SECONDS]: SIGTERM, wait at most SECONDS (default 10), then
# SIGKILL; reaps PID and sets LO_RC to its exit status (137 if it had to be
# killed). No-op for an empty PID.
lo_stop() {
  local pid=${1:-} secs=${2:-10}
  LO_RC=0
  [[ -n $pid ]] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  lo_wait "$pid" "$secs" && return 0
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || LO_RC=$?
  return 0
}

# lo_start_rendezvous LOGFILE [VAR=VALUE...]: start
# $HP_BUILD_DIR/holepunch-rendezvous in the background with PORT=0
# BIND=127.0.0.1 LOG_FORMAT=json plus the given variables (which may override
# these), stdout and stderr appended to LOGFILE, and wait (bounded by
# LO_START_TIMEOUT s) until it logs "listening on" with its port. Sets
# LO_RDV_PID and LO_RDV_PORT and returns 0; on failure sets LO_ERR, leaves
# nothing running (LO_RDV_PID empty) and returns 1.
lo_start_rendezvous() {
  local log=$1 bin=${HP_BUILD_DIR:-}/holepunch-rendezvous a n
  shift
  LO_RDV_PID="" LO_RDV_PORT="" LO_ERR=""
  [[ -n ${HP_BUILD_DIR:-} ]] || { LO_ERR="HP_BUILD_DIR is not set"; return 1; }
  [[ -x $bin ]] || { LO_ERR="$bin is not built"; return 1; }
  for a in "$@"; do
    [[ $a == [A-Za-z_]*=* ]] || { LO_ERR="lo_start_rendezvous: '$a' is not VAR=VALUE"; return 1; }
  done
  # The log exists before the first poll reads it: the background shell that
  # redirects into it may not have run yet.
  : >"$log"
  env PORT=0 BIND=127.0.0.1 LOG_FORMAT=json "$@" "$bin" >>"$log" 2>&1 </dev/null &
  LO_RDV_PID=$!
  # Port 0: the kernel picks a free port, which the service logs once it
  # really listens (no fixed port that another test could hold).
  n=$((LO_START_TIMEOUT * 20))
  while ((n-- > 0)); do
    LO_RDV_PORT=$(sed -n 's/.*"message":"listening on[^"]*".*"port":\([1-9][0-9]*\).*/\1/p' "$log" | head -n1)
    [[ -n $LO_RDV_PORT ]] && return 0
    if ! lo_alive "$LO_RDV_PID"; then
      lo_stop "$LO_RDV_PID" 0
      LO_ERR="the rendezvous exited at start (status $LO_RC)"
      LO_RDV_PID=""
      return 1
    fi
    sleep 0.05
  done
  lo_stop "$LO_RDV_PID"
  LO_ERR="the rendezvous did not log its port within $LO_START_TIMEOUT s"
  LO_RDV_PID=""
  return 1
}
