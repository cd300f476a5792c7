//===- Contraction.h - Matching Kiln's contractions in linalg ---*- C++ -*-===//
//
// The `linear` form the codegen passes look for after
// convert-transformer-to-linalg, and small predicates they share.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_CODEGEN_CONTRACTION_H
#define KILN_CODEGEN_CONTRACTION_H

#include "mlir/Dialect/Linalg/IR/Linalg.h"

#include <optional>

namespace kiln {

/// A `linear`-form contraction: out[m..., n] = init[m..., n] +
/// sum_k x[m..., k] * w[n, k].
/// Operands are read from the op when needed: rewriting one contraction
/// replaces values that others use (a residual stream as init).
struct Linear {
  mlir::linalg::GenericOp op;
  int64_t n, k;
  mlir::Value x() const { return op->getOperand(0); }
  mlir::Value w() const { return op->getOperand(1); }
  mlir::Value init() const { return op->getOperand(2); }
};

/// The op as a Linear (f32, static W [N, K]), or nothing.
std::optional<Linear> matchLinear(mlir::linalg::GenericOp op);

/// Whether `v` is a `linalg.fill` of +0.0.
bool isZeroFill(mlir::Value v);

/// An elementwise generic on tensors of two inputs of its result's shape.
bool isElementwiseBinary(mlir::linalg::GenericOp op);

/// A contraction's kernel configuration: what kiln-kernel-strategy chooses
/// and records on the op (kKernelAttr), and all kiln-contraction-kernels
/// reads to emit the kernel.
struct KernelConfig {
  /// Decode: matrix-vector products over a fixed batch of rows; Prompt: a
  /// prompt's rows (a dynamic count).
  enum class Role { Decode, Prompt };
  Role role = Role::Prompt;
  /// f32 lanes of a vector register.
  int64_t vectorLanes = 4;
  /// Output columns (rows of W) per parallel task.
  int64_t blockCols = 4;
  /// Rows of x per dot-product register tile (by 4 rows of W).
  int64_t dotRows = 2;
  /// Whether W's blocks may be packed for outer-product tiles, from how
  /// many rows of x, and the rows of an outer-product tile (by two vectors
  /// of columns).
  bool packed = false;
  int64_t packMinRows = 16;
  int64_t outerRows = 6;
  /// Whether the matrix-vector products quantize x to 8-bit integers per
  /// group of 32 values and take integer dot products with W's stored
  /// integers (`activations = "i8"`), instead of reading x as f32 and W
  /// dequantized exactly (the default).
  bool int8Activations = false;

  bool isDecode() const { return role == Role::Decode; }
  mlir::DictionaryAttr toAttr(mlir::MLIRContext *context) const;
  /// Reads the dictionary toAttr writes; nothing when `attr` is not one.
  static std::optional<KernelConfig> fromAttr(mlir::Attribute attr);
};

} // namespace kiln

#endif // KILN_CODEGEN_CONTRACTION_H
