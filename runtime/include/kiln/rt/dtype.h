//===- dtype.h - Weight element types: block layouts, dequantization -*- C++ -*-===//
//
// The one C++ description of how a .kiln weight's elements are stored (part
// of kiln_model, the model-file library the runtime, the converters and the
// compiler's importer link): for each weight DType of the schema
// (runtime/schema/kiln.fbs) its block size in elements and bytes, the
// checked byte size of a weight, and the reference dequantizer. Quantized
// blocks are GGUF's (ggml's block_* structs) bit for bit; dequantizeRow
// follows ggml's dequantize_row_* operation for operation, so its floats are
// identical to ggml's (test/Convert/dequantize.test checks every type
// against llama.cpp's own to_float).
//
// DType is the schema's enum (declared here, defined with its enumerators in
// kiln_generated.h): F32 = 0, F16 = 1, BF16 = 2, I8 = 3, I4 = 4, I32 = 5,
// Q8_0 = 6, Q4_0 = 7, Q4_1 = 8, Q5_0 = 9, Q5_1 = 10, Q4_K = 11, Q5_K = 12,
// Q6_K = 13. I8, I4 and I32 are not weight types.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_RT_DTYPE_H
#define KILN_RT_DTYPE_H

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace kiln::fb {
enum class DType : uint8_t;
} // namespace kiln::fb

namespace kiln::rt {

/// How one weight type is stored: `blockBytes` bytes hold `blockElems`
/// consecutive elements of a row (1 element for F32/F16/BF16).
struct DTypeInfo {
  const char *name;   ///< the schema's enumerator name: "F32", "Q4_K", ...
  int64_t blockElems; ///< elements per block: 1, 32 or 256
  int64_t blockBytes; ///< bytes per block
  bool quantized;     ///< a GGUF block type (Q8_0 ... Q6_K)
};

/// The layout of weight type `t`; null when `t` is not a weight type (I8,
/// I4, I32, or a value the schema does not define).
const DTypeInfo *weightTypeInfo(fb::DType t);

/// `t`'s name for messages: the enumerator name, or "unknown dtype N".
std::string dtypeName(fb::DType t);

/// The bytes a weight of `dtype` and `shape` (row-major, `rank` dimensions)
/// takes: elements * blockBytes / blockElems. Returns a message (to follow
/// "weight 'NAME' ") when `dtype` is not a weight type, the rank is not 1 to
/// 4, a dimension is not positive, the elements exceed 2^40 (the product is
/// computed without overflow) or, for block types, the last dimension is not
/// a multiple of the block.
std::optional<std::string> storageBytes(fb::DType dtype, const int64_t *shape,
                                        size_t rank, uint64_t &bytes);

/// IEEE binary16 -> binary32, exact (subnormals, infinities, NaN payloads).
float halfToFloat(uint16_t h);
/// bfloat16 -> binary32, exact.
float bf16ToFloat(uint16_t h);

/// Widens `n` elements of type `t` stored at `src` (n is a multiple of the
/// type's block elements; `src` holds n / blockElems blocks, any alignment)
/// to floats at `out`: F32 copied, F16/BF16 converted, quantized blocks
/// dequantized exactly as ggml's dequantize_row_* do. `t` must be a weight
/// type.
void dequantizeRow(fb::DType t, const uint8_t *src, float *out, int64_t n);

} // namespace kiln::rt

#endif // KILN_RT_DTYPE_H
