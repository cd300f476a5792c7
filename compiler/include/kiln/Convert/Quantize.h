//===- Quantize.h - Quantizing weights as llama-quantize does ----*- C++ -*-===//
//
// kiln-convert --quantize: F32, F16 and BF16 weights quantized to GGUF's
// block types, with llama-quantize's reference quantizers (ggml's
// quantize_row_*_ref, ported operation for operation; ggml-quants.c of the
// llama.cpp that scripts/llama-cpp.sh builds) and its rule for which tensor
// gets which type in each recipe (llama-quant.cpp, llama_tensor_get_type,
// without an importance matrix). docs/convert.md documents the rule.
//
// The arithmetic is IEEE single precision without contraction (this file's
// implementation is compiled with -ffp-contract=off), so the Python
// exporter's NumPy port (kiln_export/quantize.py) produces the same bytes.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_CONVERT_QUANTIZE_H
#define KILN_CONVERT_QUANTIZE_H

#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <optional>

namespace kiln::fb {
enum class DType : uint8_t;
} // namespace kiln::fb

namespace kiln::convert {

/// A quantization recipe: llama-quantize's file types of the same names.
enum class QuantizeRecipe {
  None,   ///< no quantization (weights as --dtype says)
  Q8_0,   ///< every matrix Q8_0
  Q4_0,   ///< Q4_0; the output matrix Q6_K
  Q4_K_M, ///< Q4_K; output Q6_K; some attn_v(/qkv), ffn_down Q6_K
};

/// The recipe named `name` ("q8_0", "q4_0", "q4_k_m", any case).
std::optional<QuantizeRecipe> parseQuantizeRecipe(llvm::StringRef name);
/// The lower-case name of `recipe` ("q4_k_m"); "none" for None.
const char *quantizeRecipeName(QuantizeRecipe recipe);

/// Where a matrix sits in the model, for the recipe's rule: its GGUF name
/// (token_embd.weight, output.weight, blk.N.attn_v.weight, ...), its row
/// length, and the model's layer count and whether its head reads the token
/// embedding.
struct QuantizeTarget {
  llvm::StringRef ggufName;
  int64_t rowLength = 0;
  int64_t layers = 0;
  bool tiedEmbedding = false;
};

/// The type llama-quantize gives the matrix `target` under `recipe`, or
/// nullopt when llama-quantize leaves it as it is (norms, biases, learned
/// position tables, 1-D tensors). Types whose block does not divide the row
/// fall back as llama-quantize's do: Q4_K -> Q5_0, Q5_K -> Q5_1,
/// Q6_K -> Q8_0, and a 32-block type that still does not fit -> F16. (The
/// three recipes never choose Q5_K; quantizeRow writes it and Q5_1 for
/// llama-quantize's Q5_K_M mix, which has not been made a recipe yet.)
std::optional<fb::DType> quantizedType(QuantizeRecipe recipe,
                                       const QuantizeTarget &target);

/// True for the types quantizeRow writes: F16 and Q8_0, Q4_0, Q5_0, Q5_1,
/// Q4_K, Q5_K, Q6_K.
bool canQuantizeTo(fb::DType type);

/// Writes `n` floats (a multiple of the type's block) as `type`'s blocks at
/// `dst`, exactly as ggml's quantize_row_<type>_ref does (F16: ggml's
/// round-to-nearest-even conversion). `type` must satisfy canQuantizeTo.
void quantizeRow(fb::DType type, const float *src, uint8_t *dst, int64_t n);

/// IEEE binary32 -> binary16, rounded to nearest even (ggml's
/// GGML_FP32_TO_FP16).
uint16_t floatToHalf(float f);

} // namespace kiln::convert

#endif // KILN_CONVERT_QUANTIZE_H
