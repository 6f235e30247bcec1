/*
 * fuzz.h - shared by the fuzz harnesses (tests/fuzz/fuzz_<name>.c).
 *
 * A harness states the decoder's contract with FUZZ_CHECK. A violation
 * prints the condition and aborts, so that libFuzzer saves the input as a
 * crash and the corpus driver (driver.c) fails its ctest entry.
 */
#ifndef HP_FUZZ_H
#define HP_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "%s:%d: contract violated: %s\n", __FILE__, __LINE__, #cond);                \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

/* The entry point libFuzzer calls; driver.c calls it too. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 1 if buf[0..cap) holds a NUL, i.e. the string ends inside its buffer. */
static inline int fuzz_terminated(const char *buf, size_t cap) {
  return memchr(buf, '\0', cap) != NULL;
}

/* A copy of data[0..size) with a NUL after it, for decoders taking C strings.
 * The allocation is exact so that AddressSanitizer sees any over-read. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);

  FUZZ_CHECK(s != NULL);
  if (size > 0)
    memcpy(s, data, size);
  s[size] = '\0';
  return s;
}

#endif
