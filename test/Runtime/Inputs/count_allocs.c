/* Counts heap allocations while a compiled model generates (no-alloc.test).
 * The program interposes malloc and its relatives over the whole process
 * (the model's shared library, libstdc++, libomp), links the model through
 * the C API, and counts the calls made between the second token and the
 * last: decode steps plus the runtime's sampling and bookkeeping.
 * Usage: count_allocs MODEL.kiln N_TOKENS */
#include <stdio.h>
#include <stdlib.h>

#include "kiln.h"

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static volatile int counting;
static volatile long allocations;

static void note(void) {
  if (counting)
    allocations++;
}
void *malloc(size_t n) { note(); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { note(); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { note(); return __libc_realloc(p, n); }
void *memalign(size_t a, size_t n) { note(); return __libc_memalign(a, n); }
void *aligned_alloc(size_t a, size_t n) { note(); return __libc_memalign(a, n); }
int posix_memalign(void **out, size_t a, size_t n) {
  note();
  *out = __libc_memalign(a, n);
  return *out ? 0 : 12;
}
void free(void *p) { __libc_free(p); }

static int tokens, total;
static long loadAllocations;

static int onToken(int32_t token, const char *bytes, size_t n, void *user) {
  (void)token, (void)bytes, (void)n, (void)user;
  ++tokens;
  if (tokens == 2) {
    allocations = 0;
    counting = 1;
  } else if (tokens == total) {
    counting = 0;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 3)
    return 2;
  total = atoi(argv[2]);
  char err[256];
  counting = 1;
  kiln_handle *h = kiln_load(argv[1], err, sizeof err);
  counting = 0;
  loadAllocations = allocations;
  if (!h) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  kiln_params p = kiln_default_params();
  p.n_predict = total;
  p.ignore_eos = 1;
  p.seed = 7; /* sampled: top-k and top-p run every step */
  int32_t prompt[3] = {1, 2, 3};
  int64_t n = kiln_generate(h, prompt, 3, &p, onToken, NULL);
  printf("load: %ld allocations\n", loadAllocations);
  printf("generated %lld tokens; %d decode steps: %ld allocations\n",
         (long long)n, total - 2, allocations);
  kiln_free(h);
  return n == total ? 0 : 1;
}
