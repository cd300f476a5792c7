//===- LoweringUtils.h - Builders shared by the transformer lowerings -----===//
//
// Small builders used by the patterns of convert-transformer-to-linalg
// (TransformerToLinalg.cpp, AttentionToLinalg.cpp).
//
//===----------------------------------------------------------------------===//
#ifndef KILN_CONVERSION_TRANSFORMERTOLINALG_LOWERINGUTILS_H
#define KILN_CONVERSION_TRANSFORMERTOLINALG_LOWERINGUTILS_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Transforms/DialectConversion.h"

namespace kiln::lowering {

using mlir::ArrayRef;
using mlir::ConversionPatternRewriter;
using mlir::Location;
using mlir::LogicalResult;
using mlir::OpBuilder;
using mlir::OpFoldResult;
using mlir::Operation;
using mlir::Type;
using mlir::Value;
using mlir::FloatType;
using mlir::RankedTensorType;
using mlir::success;
using llvm::dyn_cast;
using llvm::isa;
namespace arith = mlir::arith;
namespace tensor = mlir::tensor;

inline Value indexConst(OpBuilder &b, Location loc, int64_t v) {
  return arith::ConstantIndexOp::create(b, loc, v);
}

inline Value floatConst(OpBuilder &b, Location loc, Type type, double v) {
  return arith::ConstantOp::create(b, loc, b.getFloatAttr(type, v));
}

inline OpFoldResult dimOf(OpBuilder &b, Location loc, Value tensor,
                          int64_t d) {
  return tensor::getMixedSize(b, loc, tensor, d);
}

inline Value emptyTensor(OpBuilder &b, Location loc,
                         ArrayRef<OpFoldResult> sizes, Type elementType) {
  return tensor::EmptyOp::create(b, loc, sizes, elementType);
}

/// Fails the match unless all tensors involved are f32 (the only element
/// type the current lowering computes in). Stored weights
/// (#transformer.encoding) are read only by the lowerings that pass
/// `storedWeights` (linear, feed_forward, embedding).
inline LogicalResult requireF32(Operation *op,
                                ConversionPatternRewriter &rewriter,
                                bool storedWeights = false,
                                llvm::ArrayRef<Value> narrowAllowed = {}) {
  for (Value v : llvm::concat<Value>(op->getOperands(), op->getResults()))
    if (auto rt = dyn_cast<RankedTensorType>(v.getType())) {
      Type e = rt.getElementType();
      if (isa<FloatType>(e) && !e.isF32() &&
          !((e.isF16() || e.isBF16()) && llvm::is_contained(narrowAllowed, v)))
        return rewriter.notifyMatchFailure(op, "only f32 is lowered today");
      if (rt.getEncoding() && !storedWeights)
        return rewriter.notifyMatchFailure(
            op, "reads a stored weight where only f32 values are lowered");
    }
  return success();
}

} // namespace kiln::lowering

#endif // KILN_CONVERSION_TRANSFORMERTOLINALG_LOWERINGUTILS_H
