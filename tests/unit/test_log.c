/* test_log.c - structured log lines, JSON and text, levels, threads. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static char *buf;
static size_t buflen;
static FILE *mem;

static int setup(void **state) {
  (void)state;
  buf = NULL;
  buflen = 0;
  mem = open_memstream(&buf, &buflen);
  hp__log_set_stream(mem);
  return mem == NULL;
}

static int teardown(void **state) {
  (void)state;
  hp__log_set_stream(NULL);
  hp__log_setup(HP_LOG_INFO, HP_LOG_JSON);
  fclose(mem);
  free(buf);
  return 0;
}

/* "2026-11-25T00:12:18.123Z" */
static void assert_rfc3339_ms(const char *t) {
  static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
  assert_int_equal(strlen(t), strlen(shape));
  for (size_t i = 0; shape[i] != '\0'; i++) {
    if (shape[i] == 'd')
      assert_true(t[i] >= '0' && t[i] <= '9');
    else
      assert_int_equal(t[i], shape[i]);
  }
}

static void test_json_line(void **state) {
  json_error_t jerr;
  json_t *o;
  (void)state;

  hp__log_setup(HP_LOG_DEBUG, HP_LOG_JSON);
  hp__log(HP_LOG_WARNING, "rooms",
          json_pack("{s:s, s:i, s:s, s:s}", "room", "lab", "elapsed_ms", 12, "severity", "FAKE",
                    "message", "fake"),
          "paired %s and %s", "a", "b");
  fflush(mem);
  assert_true(buflen > 0);
  assert_int_equal(buf[buflen - 1], '\n');
  assert_non_null(strchr(buf, '\n'));
  assert_true(strchr(buf, '\n') == buf + buflen - 1);
  o = json_loadb(buf, buflen, 0, &jerr);
  assert_non_null(o);
  assert_rfc3339_ms(json_string_value(json_object_get(o, "time")));
  assert_string_equal(json_string_value(json_object_get(o, "severity")), "WARNING");
  assert_string_equal(json_string_value(json_object_get(o, "message")), "paired a and b");
  assert_string_equal(json_string_value(json_object_get(o, "component")), "rooms");
  assert_string_equal(json_string_value(json_object_get(o, "room")), "lab");
  assert_int_equal(json_integer_value(json_object_get(o, "elapsed_ms")), 12);
  /* Keys in the documented order. */
  assert_true(strncmp(buf, "{\"time\":", 8) == 0);
  assert_true(strstr(buf, "\"severity\"") < strstr(buf, "\"message\""));
  assert_true(strstr(buf, "\"message\"") < strstr(buf, "\"component\""));
  json_decref(o);
}

static void test_levels(void **state) {
  (void)state;
  hp__log_setup(HP_LOG_WARNING, HP_LOG_JSON);
  assert_false(hp__log_enabled(HP_LOG_DEBUG));
  assert_false(hp__log_enabled(HP_LOG_INFO));
  assert_true(hp__log_enabled(HP_LOG_WARNING));
  assert_true(hp__log_enabled(HP_LOG_ERROR));
  HP_INFO("x", json_pack("{s:s}", "k", "v"), "hidden");
  /* Called directly below the level: nothing written, ctx still freed (ASan). */
  hp__log(HP_LOG_DEBUG, "x", json_pack("{s:s}", "k", "v"), "hidden");
  fflush(mem);
  assert_int_equal(buflen, 0);
  HP_ERROR("x", NULL, "shown");
  fflush(mem);
  assert_non_null(strstr(buf, "\"severity\":\"ERROR\""));
}

static void test_text_line(void **state) {
  (void)state;
  hp__log_setup(HP_LOG_INFO, HP_LOG_TEXT);
  HP_INFO("worker",
          json_pack("{s:s, s:i, s:s, s:b}", "room", "lab", "elapsed_ms", 7, "why", "two words",
                    "ok", 1),
          "connected\nto %s", "peer");
  fflush(mem);
  {
    char ts[25];
    memcpy(ts, buf, 24);
    ts[24] = '\0';
    assert_rfc3339_ms(ts);
  }
  assert_int_equal(buf[24], ' ');
  assert_string_equal(buf + 25, "INFO  [worker] connected to peer room=lab elapsed_ms=7 "
                                "why=\"two words\" ok=true\n");
}

static void test_invalid_utf8_kept(void **state) {
  json_t *o;
  (void)state;
  hp__log_setup(HP_LOG_INFO, HP_LOG_JSON);
  HP_INFO("c", NULL, "bytes \xff\xfe end");
  fflush(mem);
  o = json_loadb(buf, buflen, 0, NULL);
  assert_non_null(o);
  assert_string_equal(json_string_value(json_object_get(o, "message")), "bytes ?? end");
  json_decref(o);
}

static void test_long_message_cut(void **state) {
  char big[10000];
  json_t *o;
  (void)state;
  memset(big, 'm', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  hp__log_setup(HP_LOG_INFO, HP_LOG_JSON);
  HP_INFO("c", NULL, "%s", big);
  fflush(mem);
  o = json_loadb(buf, buflen, 0, NULL);
  assert_non_null(o);
  assert_true(strlen(json_string_value(json_object_get(o, "message"))) < 4096);
  json_decref(o);
}

#define THREADS 4
#define PER_THREAD 200

static void *logger(void *arg) {
  for (int i = 0; i < PER_THREAD; i++)
    HP_INFO("t", json_pack("{s:i, s:i}", "thread", (int)(intptr_t)arg, "i", i),
            "line from a thread with some padding to make it longer %d", i);
  return NULL;
}

/* Lines from several threads never interleave: every line is a whole object. */
static void test_threads(void **state) {
  pthread_t t[THREADS];
  size_t lines = 0;
  char *p, *nl;
  (void)state;

  hp__log_setup(HP_LOG_INFO, HP_LOG_JSON);
  for (intptr_t i = 0; i < THREADS; i++)
    assert_int_equal(pthread_create(&t[i], NULL, logger, (void *)i), 0);
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  fflush(mem);
  for (p = buf; (nl = memchr(p, '\n', buflen - (size_t)(p - buf))) != NULL; p = nl + 1) {
    json_t *o = json_loadb(p, (size_t)(nl - p), 0, NULL);
    assert_non_null(o);
    json_decref(o);
    lines++;
  }
  assert_int_equal(lines, THREADS * PER_THREAD);
  assert_true(p == buf + buflen);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_json_line, setup, teardown),
      cmocka_unit_test_setup_teardown(test_levels, setup, teardown),
      cmocka_unit_test_setup_teardown(test_text_line, setup, teardown),
      cmocka_unit_test_setup_teardown(test_invalid_utf8_kept, setup, teardown),
      cmocka_unit_test_setup_teardown(test_long_message_cut, setup, teardown),
      cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
