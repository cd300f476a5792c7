/*===- kiln.h - C API of models compiled as shared libraries --------------===*
 *
 *   kiln-compile model.kiln --emit=shared -o libmymodel.so
 *   cc app.c -I<kiln>/runtime/include -L. -lmymodel -Wl,-rpath,'$ORIGIN'
 *
 * The library holds the compiled model and the runtime; weights stay in the
 * model file, which is mapped (read-only) by kiln_load. A handle owns its
 * KV cache: use one handle per thread.
 *===----------------------------------------------------------------------===*/
#ifndef KILN_H
#define KILN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln_handle kiln_handle;

typedef struct kiln_params {
  int64_t
      n_predict; /* tokens to generate; -1: until EOS or the context is full */
  float temperature; /* 0: greedy */
  int64_t top_k;     /* 0: off */
  float top_p;       /* 1: off */
  uint64_t seed;
  int ignore_eos; /* nonzero: do not stop at EOS */
  /* llama.cpp's samplers, in its chain's order (docs/executable.md). */
  float min_p;             /* 0: off */
  float repeat_penalty;    /* 1: off */
  int64_t repeat_last_n;   /* tokens penalized; 0: off, -1: all */
  float presence_penalty;  /* 0: off */
  float frequency_penalty; /* 0: off */
} kiln_params;

/* The executable's defaults: n_predict 128, temperature 0.8, top_k 40,
 * top_p 0.95, seed 0, ignore_eos 0, min_p 0, repeat_penalty 1,
 * repeat_last_n 64, presence_penalty 0, frequency_penalty 0. */
kiln_params kiln_default_params(void);

/* Maps and validates the model file (NULL: the file the library was
 * compiled from) and allocates the KV cache. On failure returns NULL and
 * writes a message to err (if err_size > 0). */
kiln_handle *kiln_load(const char *model_path, char *err, size_t err_size);

/* Called for every generated token with the bytes it stands for (may be
 * empty, and a multi-byte character may span calls); return nonzero to
 * stop generating. */
typedef int (*kiln_token_callback)(int32_t token, const char *bytes,
                                   size_t size, void *user);

/* Generates from token ids; returns the number of tokens generated, or -1
 * on error (then kiln_last_error says why). Each call starts a new sequence.
 * For an encoder-decoder model the ids are the source: it is encoded once
 * and decoding starts from the model's BOS token. */
int64_t kiln_generate(kiln_handle *h, const int32_t *prompt, size_t n,
                      const kiln_params *params, kiln_token_callback cb,
                      void *user);

/* Encodes text with the model's tokenizer into ids (at most cap); returns
 * the number of ids (which may exceed cap: call again with more room), or
 * -1 on error. Control tokens written in the text (<s>, <|im_end|>, ...)
 * become their ids, as in the executable's prompts. */
int64_t kiln_tokenize(kiln_handle *h, const char *text, int32_t *ids,
                      size_t cap);

int64_t kiln_vocab_size(const kiln_handle *h);
int64_t kiln_context_length(const kiln_handle *h);
const char *kiln_last_error(const kiln_handle *h);
void kiln_free(kiln_handle *h);

#ifdef __cplusplus
}
#endif

#endif /* KILN_H */
