/*
 * code.c - `holepunch code`: print a fresh code (src/core/code.h) on one
 * line. Give it to the other side (pipe, forward, expose take --code CODE
 * or HOLEPUNCH_CODE); the room and the key both come from it.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "code.h"

int hp__cli_code(int argc, char **argv) {
  char code[HP_CODE_STRLEN];
  int r;

  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      printf("usage: holepunch code\n\nPrint a fresh code on one line (128 random bits and a "
             "check, base32 in groups). Both sides use it:\n  holepunch pipe --code CODE   "
             "(or HOLEPUNCH_CODE=CODE)\nThe room sent to the rendezvous is derived from it; "
             "the rendezvous never learns the code.\n");
      return 0;
    }
    if (!strcmp(argv[i], "--version") || !strcmp(argv[i], "-V")) {
      printf("holepunch %s\n", hp_version());
      return 0;
    }
    hp__cli_startup_error(NULL, "unexpected argument \"%.64s\": holepunch code takes none",
                          argv[i]);
    return HP_STATUS_CONFIG;
  }
  r = hp__code_generate(code, sizeof code);
  if (r < 0) {
    hp__cli_startup_error(NULL, "cannot make a code: %s", strerror(-r));
    return 1;
  }
  printf("%s\n", code);
  return 0;
}
