/*
 * driver.c - a tiny stand-in for libFuzzer, so that every harness runs in
 * every build (gcc included) and in the ASan CI run, not only when someone
 * runs tests/fuzz/run.sh with clang.
 *
 * It feeds LLVMFuzzerTestOneInput each seed file as is, then a bounded number
 * of mutations of them made with a fixed-seed PRNG, so a run is repeatable:
 * the same seed and count give the same inputs. Mutations are the usual
 * blind ones (bit flips, interesting bytes, inserts, deletes, chunk copies,
 * splices, truncation, growth); there is no coverage feedback here, which is
 * what run.sh is for.
 *
 * Usage: driver [-n MUTATIONS] [-s SEED] [-m MAX_LEN] PATH...
 *   PATH: a seed file, or a directory whose regular files are all seeds.
 * When a harness aborts, the input is written to ./crash-<program>.bin
 * (replay it with: driver -n 0 crash-<program>.bin).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

#define SEEDS_MAX 1024               /* more seed files than this is a mistake */
#define SEED_BYTES_MAX (1024 * 1024) /* a larger seed file is refused */

typedef struct seed {
  uint8_t *data;
  size_t len;
} seed;

static seed seeds[SEEDS_MAX];
static size_t nseeds;

/* The input being run, for the crash handler. */
static const uint8_t *volatile cur_data;
static volatile size_t cur_len;
static char crash_path[512];

static void on_crash(int sig) {
  static const char msg1[] = "driver: harness crashed; input saved to ";
  int fd;

  fd = open(crash_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    if (cur_data != NULL && cur_len > 0 && write(fd, (const void *)cur_data, cur_len) < 0)
      (void)0; /* nothing more can be done inside a signal handler */
    close(fd);
    if (write(STDERR_FILENO, msg1, sizeof(msg1) - 1) < 0 ||
        write(STDERR_FILENO, crash_path, strlen(crash_path)) < 0 ||
        write(STDERR_FILENO, "\n", 1) < 0)
      (void)0;
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

/* splitmix64: tiny, fast, and good enough to pick mutations. */
static uint64_t rng_state;

static uint64_t rnd(void) {
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Uniform-enough integer in [0, n); n > 0. */
static size_t below(size_t n) {
  return (size_t)(rnd() % n);
}

static int add_seed_file(const char *path) {
  struct stat st;
  FILE *f;
  uint8_t *buf;
  size_t got;

  if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
    return 0; /* directories inside a corpus, sockets...: not seeds */
  if (st.st_size > SEED_BYTES_MAX || nseeds >= SEEDS_MAX) {
    fprintf(stderr, "driver: %s: too large or too many seeds\n", path);
    return -1;
  }
  f = fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "driver: %s: %s\n", path, strerror(errno));
    return -1;
  }
  buf = malloc((size_t)st.st_size + 1);
  if (buf == NULL) {
    fclose(f);
    return -1;
  }
  got = fread(buf, 1, (size_t)st.st_size, f);
  fclose(f);
  seeds[nseeds].data = buf;
  seeds[nseeds].len = got;
  nseeds++;
  return 0;
}

static int add_path(const char *path) {
  struct stat st;
  struct dirent **names;
  int n, i, result = 0;

  if (stat(path, &st) < 0) {
    fprintf(stderr, "driver: %s: %s\n", path, strerror(errno));
    return -1;
  }
  if (!S_ISDIR(st.st_mode))
    return add_seed_file(path);
  /* Sorted, so that the seed indexes and thus the mutations are repeatable. */
  n = scandir(path, &names, NULL, alphasort);
  if (n < 0) {
    fprintf(stderr, "driver: %s: %s\n", path, strerror(errno));
    return -1;
  }
  for (i = 0; i < n; i++) {
    if (result == 0 && names[i]->d_name[0] != '.') {
      char full[4096];

      snprintf(full, sizeof(full), "%s/%s", path, names[i]->d_name);
      result = add_seed_file(full);
    }
    free(names[i]);
  }
  free(names);
  return result;
}

/* Bytes that parsers of this project branch on. */
static const uint8_t interesting[] = {0,   0xff, 0x80, 0x7f, '\n', '\r', ' ', '"', '\\', '{', '}',
                                      '[', ']',  ':',  ',',  '.',  '-',  '%', '0', '9',  'a', 'u'};

/*
 * Mutate buf[0..*len) in place; cap is both the buffer size and the largest
 * input the harness wants.
 */
static void mutate(uint8_t *buf, size_t *len, size_t cap) {
  size_t n = *len, pos, k;

  switch (below(11)) {
  case 0: /* flip a bit */
    if (n > 0)
      buf[below(n)] ^= (uint8_t)(1u << below(8));
    break;
  case 1: /* overwrite a byte with an interesting one */
    if (n > 0)
      buf[below(n)] = interesting[below(sizeof(interesting))];
    break;
  case 2: /* insert a byte */
    if (n < cap) {
      pos = below(n + 1);
      memmove(buf + pos + 1, buf + pos, n - pos);
      buf[pos] = below(2) ? interesting[below(sizeof(interesting))] : (uint8_t)rnd();
      n++;
    }
    break;
  case 3: /* delete a short range */
    if (n > 0) {
      pos = below(n);
      k = 1 + below(n - pos < 16 ? n - pos : 16);
      memmove(buf + pos, buf + pos + k, n - pos - k);
      n -= k;
    }
    break;
  case 4: /* copy a chunk of the input to another place (insert) */
    if (n > 0 && n < cap) {
      size_t from = below(n);
      k = 1 + below(n - from < 32 ? n - from : 32);
      if (k > cap - n)
        k = cap - n;
      pos = below(n + 1);
      {
        uint8_t tmp[32];
        memcpy(tmp, buf + from, k);
        memmove(buf + pos + k, buf + pos, n - pos);
        memcpy(buf + pos, tmp, k);
      }
      n += k;
    }
    break;
  case 5: /* splice: keep our head, take another seed's tail */
  {
    const seed *o = &seeds[below(nseeds)];
    size_t from = o->len > 0 ? below(o->len) : 0;
    pos = below(n + 1);
    k = o->len - from;
    if (k > cap - pos)
      k = cap - pos;
    memcpy(buf + pos, o->data + from, k);
    n = pos + k;
    break;
  }
  case 6: /* truncate */
    n = below(n + 1);
    break;
  case 7: /* overwrite a byte with a random printable one */
    if (n > 0)
      buf[below(n)] = (uint8_t)(' ' + below(95));
    break;
  case 8: /* swap two bytes */
    if (n > 1) {
      size_t a = below(n), b = below(n);
      uint8_t t = buf[a];
      buf[a] = buf[b];
      buf[b] = t;
    }
    break;
  case 9: /* overwrite a byte with a random one */
    if (n > 0)
      buf[below(n)] = (uint8_t)rnd();
    break;
  default: /* rarely: grow by repeating the last bytes, to reach size limits */
    if (below(8) == 0 && n > 0) {
      size_t target = n + below(cap - n + 1);
      for (; n < target; n++)
        buf[n] = buf[n - 1 - below(n < 8 ? n : 8)];
    }
    break;
  }
  *len = n;
}

static void run_one(const uint8_t *data, size_t len) {
  /* An exact-size copy: reading one byte too far is an ASan report. */
  uint8_t *copy = malloc(len ? len : 1);

  FUZZ_CHECK(copy != NULL);
  if (len > 0)
    memcpy(copy, data, len);
  cur_data = copy;
  cur_len = len;
  LLVMFuzzerTestOneInput(copy, len);
  cur_data = NULL;
  free(copy);
}

int main(int argc, char **argv) {
  unsigned long mutations = 4000, i;
  unsigned long long seedval = 1;
  size_t maxlen = 4096, s;
  const char *prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
  uint8_t *buf;
  int opt, result = 1;

  while ((opt = getopt(argc, argv, "n:s:m:")) != -1) {
    switch (opt) {
    case 'n':
      mutations = strtoul(optarg, NULL, 10);
      break;
    case 's':
      seedval = strtoull(optarg, NULL, 10);
      break;
    case 'm':
      maxlen = strtoul(optarg, NULL, 10);
      break;
    default:
      fprintf(stderr, "usage: %s [-n MUTATIONS] [-s SEED] [-m MAX_LEN] PATH...\n", prog);
      return 2;
    }
  }
  if (optind >= argc || maxlen == 0 || maxlen > SEED_BYTES_MAX) {
    fprintf(stderr, "usage: %s [-n MUTATIONS] [-s SEED] [-m MAX_LEN] PATH...\n", prog);
    return 2;
  }
  for (; optind < argc; optind++)
    if (add_path(argv[optind]) < 0)
      goto out;
  /* An empty corpus would make this test pass without testing anything. */
  if (nseeds == 0) {
    fprintf(stderr, "driver: no seed files found\n");
    goto out;
  }
  snprintf(crash_path, sizeof(crash_path), "crash-%s.bin", prog);
  signal(SIGABRT, on_crash);
  signal(SIGSEGV, on_crash);
  signal(SIGBUS, on_crash);
  signal(SIGFPE, on_crash);
  signal(SIGILL, on_crash);

  for (s = 0; s < nseeds; s++)
    run_one(seeds[s].data, seeds[s].len);

  rng_state = seedval;
  buf = malloc(maxlen);
  FUZZ_CHECK(buf != NULL);
  for (i = 0; i < mutations; i++) {
    const seed *base = &seeds[below(nseeds)];
    size_t len = base->len < maxlen ? base->len : maxlen;
    unsigned rounds = 1 + (unsigned)below(4), j;

    memcpy(buf, base->data, len);
    for (j = 0; j < rounds; j++)
      mutate(buf, &len, maxlen);
    run_one(buf, len);
  }
  free(buf);
  printf("driver: %s: %zu seed files and %lu mutations (seed %llu, max length %zu): all "
         "contracts held\n",
         prog, nseeds, mutations, seedval, maxlen);
  result = 0;
out:
  for (s = 0; s < nseeds; s++)
    free(seeds[s].data);
  return result;
}
