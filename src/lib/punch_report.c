/*
 * punch_report.c - what punching saw, for the give-up summary (see
 * hp__pe_report in punch.h).
 */
#include <stdio.h>

#include "candidates.h"
#include "punch_int.h"

const char *hp__pe_err_name(int err) {
  switch (err) {
  case 0:
    return "none";
  case ERR_NO_ANSWER:
    return "no answer";
  case UV_ETIMEDOUT:
    return "timed out";
  case UV_ECONNREFUSED:
    return "refused";
  case UV_EHOSTUNREACH:
  case UV_ENETUNREACH:
    return "unreachable";
  case UV_ECONNRESET:
    return "reset";
  default:
    return uv_strerror(err);
  }
}

json_t *hp__pe_report(const hp__pe *pe, char *text, size_t textlen) {
  json_t *cands = json_array(), *inb = json_array();
  size_t off = 0;

  if (textlen)
    text[0] = '\0';
  for (size_t i = 0; i < pe->ncands; i++) {
    const cand *k = &pe->cands[i];
    const char *last = k->skip ? k->skip : hp__pe_err_name(k->last_err);
    json_t *o = json_pack("{s:s, s:s, s:i, s:i, s:s}", "kind", hp__cand_kind_name(k->c.kind),
                          "addr", k->c.addr, "attempts", (int)k->attempts, "syns", (int)k->syns,
                          "last_error", last);
    if (o && *k->last_why)
      json_object_set_new(o, "handshake", json_string(k->last_why));
    json_array_append_new(cands, o);
    if (off < textlen) {
      /* "attempts" are sockets: an unanswered SYN is retransmitted by the
       * kernel on the same socket, and those show only in the SYN count. */
      int w = snprintf(text + off, textlen - off, "%s%s %s: %u socket%s, %u SYN%s, last %s%s%s",
                       i ? "; " : "", hp__cand_kind_name(k->c.kind), k->c.addr, k->attempts,
                       k->attempts == 1 ? "" : "s", k->syns, k->syns == 1 ? "" : "s", last,
                       *k->last_why ? ", handshake: " : "", k->last_why);
      off += w > 0 ? (size_t)w : 0;
    }
  }
  if (pe->ncands == 0 && textlen)
    snprintf(text, textlen, "no usable peer candidates");
  for (size_t i = 0; i < pe->ninlog; i++)
    json_array_append_new(
        inb, json_pack("{s:s, s:s}", "addr", pe->inlog[i].addr, "why", pe->inlog[i].why));
  return json_pack("{s:o, s:o, s:i, s:i, s:i}", "candidates", cands, "inbound", inb, "inbound_seen",
                   (int)pe->res.inbound_seen, "rejected", (int)pe->res.rejected, "dropped",
                   (int)pe->res.dropped);
}
