/*===- kiln_runtime.h - The C ABI between compiled models and the runtime -===*
 *
 * Kiln's compiler emits an object file that defines the entry points and the
 * model-info record declared below; the runtime library (libkiln_runtime.a)
 * defines everything else, including main(). This header is the contract: the
 * compiler includes it (to keep the ABI version in one place), the runtime
 * never includes anything from LLVM or MLIR.
 *
 * Entry points use MLIR's C interface for memrefs (`_mlir_ciface_<name>`):
 * each buffer is passed as a pointer to a strided memref descriptor. All
 * buffers are row-major with unit innermost stride.
 *===----------------------------------------------------------------------===*/
#ifndef KILN_RUNTIME_H
#define KILN_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever an entry-point signature or kiln_model_info changes. */
#define KILN_ABI_VERSION 4

#define KILN_DEFINE_MEMREF(RANK)                                               \
  typedef struct kiln_memref_##RANK##d {                                       \
    void *allocated;                                                           \
    void *aligned;                                                             \
    int64_t offset;                                                            \
    int64_t sizes[RANK];                                                       \
    int64_t strides[RANK];                                                     \
  } kiln_memref_##RANK##d;
KILN_DEFINE_MEMREF(1)
KILN_DEFINE_MEMREF(2)
KILN_DEFINE_MEMREF(3)
KILN_DEFINE_MEMREF(5)
#undef KILN_DEFINE_MEMREF

/* Describes the compiled model; emitted by the compiler as a constant. */
typedef struct kiln_model_info {
  uint32_t abi_version;   /* == KILN_ABI_VERSION */
  uint32_t num_weights;   /* entries in the model file's weight table */
  int64_t batch;          /* batch size the entry points were compiled for */
  int64_t num_layers;     /* KV cache: layers (causal self-attention ops) */
  int64_t kv_width;       /* KV cache: kv_heads * head_dim */
  int64_t capacity;       /* KV cache: positions (the context length) */
  int64_t vocab_size;     /* logits per position */
  const char *model_path; /* model file the executable was compiled from */
  uint64_t weights_fingerprint; /* kiln_weights_fingerprint of that file */
  int64_t kind;            /* KILN_MODEL_DECODER_ONLY or _ENCODER_DECODER */
  /* Encoder-decoder models: the cross state written by encode and read by
   * every decode step, f32[cross_layers][2][batch][source_capacity]
   * [cross_width]: per cross-attention layer its keys and values (hoisted
   * projections), or, compiled without hoisting, one layer holding the
   * encoder output. 0 for decoder-only models. */
  int64_t source_capacity; /* most source positions */
  int64_t cross_layers;
  int64_t cross_width;
  /* Bytes per KV cache element: 4 (f32) or 2 (f16, bf16: kiln-compile
   * --kv-cache-type). The cache is [num_layers][2][batch][capacity]
   * [kv_width] of them. */
  int64_t kv_element_bytes;
} kiln_model_info;

#define KILN_MODEL_DECODER_ONLY 0
#define KILN_MODEL_ENCODER_DECODER 1

/* FNV-1a, 64-bit. */
static inline uint64_t kiln_fnv1a64(uint64_t h, const void *data, size_t n) {
  const unsigned char *p = (const unsigned char *)data;
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

/* The layout the compiled code relies on, as one number: for every weight
 * in file order, its name, dtype and shape (not its values). The compiler
 * records it in kiln_model; the runtime refuses a model file whose weight
 * table differs, so compiled code never reads weights of another shape.
 * Call kiln_fingerprint_begin, then kiln_fingerprint_weight per weight. */
static inline uint64_t kiln_fingerprint_begin(void) {
  return 0xcbf29ce484222325ull;
}
static inline uint64_t kiln_fingerprint_weight(uint64_t h, const char *name,
                                               size_t name_len, uint8_t dtype,
                                               const int64_t *shape,
                                               size_t rank) {
  unsigned char zero = 0;
  uint64_t r = rank;
  h = kiln_fnv1a64(h, name, name_len);
  h = kiln_fnv1a64(h, &zero, 1);
  h = kiln_fnv1a64(h, &dtype, 1);
  h = kiln_fnv1a64(h, &r, sizeof r);
  for (size_t i = 0; i < rank; ++i)
    h = kiln_fnv1a64(h, &shape[i], sizeof shape[i]);
  return h;
}

extern const kiln_model_info kiln_model;

/* Buffers shared by all entry points:
 *   weights:        i8[data_size]  the model file's data section (from its
 *                   data_offset: read into memory or mapped; page aligned)
 *   weight_offsets: i64[num_weights] byte offset of weight i's data in
 *                   `weights` (the Weight.offset fields, multiples of 64)
 *   cache:          f32[num_layers][2][batch][capacity][kv_width]
 *                   (index 0 = keys, 1 = values), owned by the runtime
 *
 * Whole-sequence form (teacher forcing: every position attends to the
 * positions before it through the causal mask), used for scoring:
 *   tokens i32[batch][seq], logits f32[batch][seq][vocab] (written). */
void _mlir_ciface_forward(kiln_memref_1d *weights,
                          kiln_memref_1d *weight_offsets,
                          kiln_memref_2d *tokens, kiln_memref_3d *logits);

/* Incremental form derived by the transformer-kv-cache pass.
 * prefill: tokens i32[batch][seq] placed at positions pos .. pos+seq-1; their
 *          keys/values are appended to the cache; logits f32[batch][vocab]
 *          of the last position are written.
 * decode:  the same for one token (seq == 1) at position pos.
 * Requires pos + seq <= capacity. */
void _mlir_ciface_prefill(kiln_memref_1d *weights,
                          kiln_memref_1d *weight_offsets,
                          kiln_memref_2d *tokens, int64_t pos,
                          kiln_memref_5d *cache, kiln_memref_2d *logits);
void _mlir_ciface_decode(kiln_memref_1d *weights,
                         kiln_memref_1d *weight_offsets, kiln_memref_2d *tokens,
                         int64_t pos, kiln_memref_5d *cache,
                         kiln_memref_2d *logits);

/* Encoder-decoder models (kind == KILN_MODEL_ENCODER_DECODER) define these
 * instead of the decoder-only forward/prefill/decode above (same symbol
 * names for forward, prefill and decode, other parameters; the runtime
 * calls them through these pointer types).
 * encode:  source i32[batch][src_seq] (src_seq <= source_capacity): runs the
 *          encoder once and writes the cross state.
 * forward: source, target i32[batch][seq] -> logits f32[batch][seq][vocab]
 *          (teacher forcing, for scoring and tests).
 * prefill/decode: as for decoder-only models over the target, with the
 *          source (for its padding mask) and the cross state encode wrote
 *          for it. */
void _mlir_ciface_encode(kiln_memref_1d *weights,
                         kiln_memref_1d *weight_offsets,
                         kiln_memref_2d *source, kiln_memref_5d *cross);
typedef void (*kiln_seq2seq_forward_fn)(kiln_memref_1d *weights,
                                        kiln_memref_1d *weight_offsets,
                                        kiln_memref_2d *source,
                                        kiln_memref_2d *target,
                                        kiln_memref_3d *logits);
typedef void (*kiln_seq2seq_step_fn)(kiln_memref_1d *weights,
                                     kiln_memref_1d *weight_offsets,
                                     kiln_memref_2d *tokens, int64_t pos,
                                     kiln_memref_5d *cache,
                                     kiln_memref_2d *source,
                                     kiln_memref_5d *cross,
                                     kiln_memref_2d *logits);

/* Called by the compiled code when a KV-cache write would reach past the
 * capacity (pos + rows > capacity); reports and exits with code 4. The
 * runtime checks positions before every call, so only a direct caller of the
 * entry points can trigger it. Defined by the runtime. */
void kiln_fatal_position(int64_t pos, int64_t rows, int64_t capacity);

/* The executable's main(), defined by the runtime. */
int kiln_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif

#endif /* KILN_RUNTIME_H */
