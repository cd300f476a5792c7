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

/// Unit attribute on an 8-bit integer vector.contract: every value of its
/// lhs is in [0, 127] (unsigned and signed readings agree), which
/// kiln-lower-int8-dot needs to use an unsigned-by-signed instruction.
inline constexpr llvm::StringLiteral kNonNegativeLhsAttr =
    "kiln.nonnegative_lhs";

#define GEN_PASS_REGISTRATION
#include "kiln/Codegen/Passes.h.inc"

} // namespace kiln

#endif // KILN_CODEGEN_PASSES_H
