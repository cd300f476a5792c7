//===- Dequantize.h - Stored weights read as f32 values ---------*- C++ -*-===//
//
// A weight whose type carries #transformer.encoding<...> is lowered to its
// stored bytes (`tensor<rows x row_bytes x i8>`, getWeightStorageType) and
// read through the functions here: one element at a time, exactly as ggml's
// `dequantize_row_*` computes it (ggml-quants.c). They define what a stored
// weight means; the contraction kernels' vector loads
// (compiler/lib/Codegen/WeightLoads.cpp) compute the same values.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_CONVERSION_DEQUANTIZE_H
#define KILN_CONVERSION_DEQUANTIZE_H

#include "kiln/Dialect/Transformer/IR/Transformer.h"

#include "mlir/IR/Builders.h"

namespace kiln {

/// The attribute on the `linalg.generic` that dequantizes a whole weight:
/// its encoding (a #transformer.encoding). The generic has no inputs; it
/// reads the stored bytes (a value from above) by `tensor.extract`. The
/// contraction kernels read those bytes instead, so this generic is only
/// computed where nothing reads the weight more directly.
inline constexpr llvm::StringLiteral kDequantizeAttr = "kiln.dequantize";

/// Element [row, col] of a weight stored with `encoding` in `storage`
/// ([rows, row_bytes] i8): an f32 scalar.
mlir::Value dequantizeElement(mlir::OpBuilder &b, mlir::Location loc,
                              transformer::WeightEncoding encoding,
                              mlir::Value storage, mlir::Value row,
                              mlir::Value col);

/// Element [row, col] of a weight as an f32 value: of its stored bytes
/// (dequantizeElement) when it has an `encoding`, of the f32 tensor
/// `weight` otherwise (what a table lookup reads).
mlir::Value weightElement(mlir::OpBuilder &b, mlir::Location loc,
                          std::optional<transformer::WeightEncoding> encoding,
                          mlir::Value weight, mlir::Value row,
                          mlir::Value col);

/// Lanes [offset, offset + lanes) of the values of row `row` from column
/// `group`: a vector<lanes x f32> equal, lane by lane, to
/// dequantizeElement. `group` is a multiple of `groupAlign` (itself a
/// multiple of kDequantizeGroup); `offset` is a constant in
/// [0, groupAlign), a multiple of `lanes`, and lanes <= 16, so that the
/// lanes share their scales. The ops that read a group's scales are the same
/// for every offset in it (CSE shares them). When `groupAlign` is a whole
/// number of the encoding's blocks (256 for the k-quants), where each
/// offset lies in the block is known at compile time: the sub-block, its
/// scale bytes and its bit positions are constants.
mlir::Value dequantizeVector(mlir::OpBuilder &b, mlir::Location loc,
                             transformer::WeightEncoding encoding,
                             mlir::Value storage, mlir::Value row,
                             mlir::Value group, int64_t offset, int64_t lanes,
                             int64_t groupAlign = 32);

/// Whether integerGroup reads `encoding`: the block types whose values are
/// a scale times small integers minus an offset (q4_0, q4_1, q5_0, q5_1,
/// q8_0, q4_k, q5_k, q6_k).
inline bool hasIntegerGroups(transformer::WeightEncoding encoding) {
  using transformer::WeightEncoding;
  switch (encoding) {
  case WeightEncoding::q4_0:
  case WeightEncoding::q4_1:
  case WeightEncoding::q5_0:
  case WeightEncoding::q5_1:
  case WeightEncoding::q8_0:
  case WeightEncoding::q4_k:
  case WeightEncoding::q5_k:
  case WeightEncoding::q6_k:
    return true;
  default:
    return false;
  }
}

/// A 32-value group of a stored weight as non-negative integers: value[j]
/// = d[j / 4] * q[j] - m[j / 4], with q the group's integers in order, as
/// vector<32xi8> read unsigned (in [0, 63] for the 4-, 5- and 6-bit types,
/// in [0, 255] for q8_0), and d, m vector<8xf32>, one factor per 4 values
/// (the lanes of a 4-wide integer dot product): q4_0's d and 8 d, q5_0's d
/// and 16 d, q4_1's and q5_1's d and -min, q4_k's and q5_k's d * sc and
/// dmin * m of the sub-block (all lanes equal), q6_k's d * sc and 32 d * sc
/// (one scale per 16 values), q8_0's d and 128 d (its signed integers
/// offset by 128: the sign bit flipped). What an integer dot product
/// reads (the values are those of dequantizeVector up to rounding: the offset
/// is taken out of each product). `group` and `offset` as for dequantizeVector
/// (offset a multiple of 32). Nothing for other encodings, nor for q6_k groups
/// not aligned to a block.
struct IntegerGroup {
  mlir::Value q, d, m;
};
std::optional<IntegerGroup>
integerGroup(mlir::OpBuilder &b, mlir::Location loc,
             transformer::WeightEncoding encoding, mlir::Value storage,
             mlir::Value row, mlir::Value group, int64_t offset,
             int64_t groupAlign);

/// Where integerGroup's m is a constant multiple of its d (8 for q4_0, 16
/// for q5_0, 32 for q6_k, 128 for q8_0: the integers' zero point), that
/// multiple, else 0. A power of two, so that m x = offsetPerScale * (d x)
/// exactly: a kernel may sum d x and scale the sum once instead of building m.
inline float offsetPerScale(transformer::WeightEncoding encoding) {
  switch (encoding) {
  case transformer::WeightEncoding::q4_0:
    return 8.0f;
  case transformer::WeightEncoding::q5_0:
    return 16.0f;
  case transformer::WeightEncoding::q6_k:
    return 32.0f;
  case transformer::WeightEncoding::q8_0:
    return 128.0f;
  default:
    return 0.0f;
  }
}

/// Whether blockOffsets gives the encoding's offsets a block at a time.
inline bool hasBlockOffsets(transformer::WeightEncoding encoding) {
  return encoding == transformer::WeightEncoding::q4_k ||
         encoding == transformer::WeightEncoding::q5_k;
}

/// The offsets of the 8 sub-blocks of a q4_k or q5_k block as vector<8xf32>
/// (dmin * m of sub-block j in lane j, as integerGroup's m), for a kernel
/// that takes a whole block's offsets with one product: sum_j m_j times
/// the sum of x over sub-block j. `group` is the block's first column (a
/// multiple of 256). Nothing where !hasBlockOffsets(encoding).
std::optional<mlir::Value> blockOffsets(mlir::OpBuilder &b, mlir::Location loc,
                                        transformer::WeightEncoding encoding,
                                        mlir::Value storage, mlir::Value row,
                                        mlir::Value group);

/// Columns a dequantizeVector group spans: one block of the 32-element
/// types, one sub-block of the k-quants.
inline constexpr int64_t kDequantizeGroup = 32;

/// The whole weight as f32 values (`logical`'s shape, no encoding): a
/// `linalg.generic` marked with kDequantizeAttr.
mlir::Value dequantizeWeight(mlir::OpBuilder &b, mlir::Location loc,
                             mlir::Value storage,
                             mlir::RankedTensorType logical);

/// The stored bytes and encoding of a weight that `v` dequantizes (the
/// result of dequantizeWeight), or nothing.
struct StoredWeight {
  mlir::Value storage;
  transformer::WeightEncoding encoding;
};
std::optional<StoredWeight> getStoredWeight(mlir::Value v);

} // namespace kiln

#endif // KILN_CONVERSION_DEQUANTIZE_H
