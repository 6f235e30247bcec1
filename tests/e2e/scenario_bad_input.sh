#!/usr/bin/env bash
# e2e.bad_input: tests/tools/rdv_badinput.py throws malformed, oversized and
# out-of-order input at the rendezvous from a host behind a NAT (it exits
# non-zero on any answer that differs from the contract). Expected: it passes,
# the rendezvous is still alive and healthy, and a normal pairing through it
# still works afterwards (exit 0 for both workers, direct connection).
set -euo pipefail
# shellcheck source=lib/lab.sh
source "$(dirname "$0")/lib/lab.sh"

lab_create
lab_require_binaries
tool="$LAB_SOURCE_DIR/tests/tools/rdv_badinput.py"
[[ -f "$tool" ]] || lab_fail "$tool is missing"
lab_add_nat nata changing
lab_add_nat natb changing
lab_add_worker_host a nata
lab_add_worker_host b natb
lab_describe >&2
lab_start_rendezvous

lab_run badinput a "$LAB_PY" "$tool" "$LAB_RDV_URL"
lab_wait_exit badinput 60 || lab_fail "rdv_badinput.py did not finish within 60 s"
lab_expect_rc badinput 0
kill -0 "${LAB_PID[rendezvous]}" 2>/dev/null || lab_fail "the rendezvous died during the bad input"
lab_wait_http a "$LAB_RDV_URL/healthz" 5 || lab_fail "the rendezvous no longer answers /healthz after the bad input"
lab_log "ok: rendezvous alive and healthy after the bad input"

room="afterbad-$$"
lab_run_worker a a "$room"
lab_run_worker b b "$room"
lab_wait_exit a 30 || lab_fail "worker a did not finish within 30 s"
lab_wait_exit b 30 || lab_fail "worker b did not finish within 30 s"
lab_expect_direct a b "$(lab_worker_mapping b)"
lab_expect_direct b a "$(lab_worker_mapping a)"
lab_pass "bad_input: rendezvous survived, pairing still works"
