//===- Passes.h - Kiln CPU codegen passes -----------------------*- C++ -*-===//
//
// The passes that turn linalg on tensors into code for the target CPU:
// fusions, the kernel strategy, kernel emission, parallel loops,
// bufferization and memory placement (see Passes.td for each).
//
//===----------------------------------------------------------------------===//
#ifndef KILN_CODEGEN_PASSES_H
#define KILN_CODEGEN_PASSES_H

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/OpenMP/OpenMPDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Pass/Pass.h"
#include "kiln/Conversion/Passes.h"

namespace kiln {

#define GEN_PASS_DECL
#include "kiln/Codegen/Passes.h.inc"

/// Operation attribute: the kernel configuration kiln-kernel-strategy chose
/// for a contraction, which kiln-contraction-kernels reads.
inline constexpr llvm::StringLiteral kKernelAttr = "kiln.kernel";

/// Unit attribute on an elementwise generic of the form `h * f(per-row
/// values) * g[k]` (a norm; kiln::ScaledInput) whose users are all
/// products: kiln-fold-norms decided that their kernels read `h` and apply
/// `g` and `f` themselves, so the generic is never computed.
inline constexpr llvm::StringLiteral kFoldIntoProductsAttr =
    "kiln.fold_into_products";

/// Integer attribute on contractions: kiln-group-siblings decided that the
/// ones with the same number in a block are computed by one kernel
/// (siblings reading the same x: q/k/v, gate/up).
inline constexpr llvm::StringLiteral kGroupAttr = "kiln.group";

/// Integer attribute on an elementwise generic over products' results:
/// kiln-fuse-epilogues decided that the kernel of those products applies
/// it to each block of columns it computes. Its value is the width of the
/// aligned column groups within which the generic reads its input (1 for
/// an elementwise one over two products, the gated activation; a RoPE
/// rotation's pairs of columns otherwise), which the kernel's blocks keep
/// whole.
inline constexpr llvm::StringLiteral kEpilogueAttr = "kiln.epilogue";

/// Unit attribute on an integer dot product (a vector.contract of an
/// extui'd lhs and an extsi'd rhs of i8): every lhs byte is below 128, so
/// that kiln-lower-int8-dot may use AVX2's vpmaddubsw (whose pairwise i16
/// sums could saturate for larger bytes) where the target has no VNNI.
inline constexpr llvm::StringLiteral kLhsBelow128Attr = "kiln.lhs_below_128";

#define GEN_PASS_REGISTRATION
#include "kiln/Codegen/Passes.h.inc"

} // namespace kiln

#endif // KILN_CODEGEN_PASSES_H
