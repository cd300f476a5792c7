//===- TypeRefinement.h - Re-infer result types -----------------*- C++ -*-===//
#ifndef KILN_DIALECT_TRANSFORMER_TRANSFORMS_TYPEREFINEMENT_H
#define KILN_DIALECT_TRANSFORMER_TRANSFORMS_TYPEREFINEMENT_H

#include "mlir/Dialect/Func/IR/FuncOps.h"

namespace kiln::transformer {

/// Recomputes the result types of `op` from its operand types (for ops that
/// implement InferTypeOpInterface or have SameOperandsAndResultType); other
/// ops are left alone. Fails (with the op's diagnostic) if inference fails.
llvm::LogicalResult refineResultTypes(mlir::Operation *op);

/// Refines every op of `func` in order after its argument types changed
/// (e.g. a dynamic sequence length became static), then updates the
/// function type from its arguments and returned values.
llvm::LogicalResult refineFunctionTypes(mlir::func::FuncOp func);

} // namespace kiln::transformer

#endif
