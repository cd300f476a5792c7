/* generate.c - use a model compiled as a shared library through kiln.h.
 *
 *   kiln-compile model.kiln --emit=shared -o libmodel.so
 *   cc generate.c -I<kiln>/runtime/include -L. -lmodel -Wl,-rpath,'$ORIGIN' -o generate
 *   ./generate "And God said" 64            # greedy, text prompt
 *   ./generate --tokens 3,5,7 16            # token ids; prints the ids
 */
#include "kiln.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int print_piece(int32_t token, const char *bytes, size_t size, void *user) {
  (void)token;
  (void)user;
  fwrite(bytes, 1, size, stdout);
  fflush(stdout);
  return 0; /* keep going */
}

static int print_id(int32_t token, const char *bytes, size_t size, void *user) {
  (void)bytes;
  (void)size;
  int *count = user;
  printf("%s%d", (*count)++ ? "," : "", token);
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 3 && argc != 4) {
    fprintf(stderr, "usage: %s [--tokens] PROMPT N\n", argv[0]);
    return 1;
  }
  int ids_mode = argc == 4 && strcmp(argv[1], "--tokens") == 0;
  const char *prompt = argv[argc - 2];
  char err[256];
  kiln_handle *h = kiln_load(NULL, err, sizeof err);
  if (!h) {
    fprintf(stderr, "kiln_load: %s\n", err);
    return 2;
  }
  int32_t ids[4096];
  int64_t n = 0;
  if (ids_mode) {
    for (const char *p = prompt; *p && n < 4096; ++n) {
      ids[n] = (int32_t)strtol(p, (char **)&p, 10);
      if (*p == ',')
        ++p;
    }
  } else {
    n = kiln_tokenize(h, prompt, ids, 4096);
    if (n < 0 || n > 4096) {
      fprintf(stderr, "kiln_tokenize: %s\n", kiln_last_error(h));
      kiln_free(h);
      return 3;
    }
  }
  kiln_params params = kiln_default_params();
  params.n_predict = atoi(argv[argc - 1]);
  params.temperature = 0; /* greedy */
  int count = 0;
  int64_t generated = kiln_generate(h, ids, (size_t)n, &params,
                                    ids_mode ? print_id : print_piece, &count);
  printf("\n");
  if (generated < 0) {
    fprintf(stderr, "kiln_generate: %s\n", kiln_last_error(h));
    kiln_free(h);
    return 4;
  }
  kiln_free(h);
  return 0;
}
