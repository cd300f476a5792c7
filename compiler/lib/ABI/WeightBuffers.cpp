//===- WeightBuffers.cpp - Weights as views of the runtime's buffers ------===//
//
// Implements `kiln-weight-buffers`: functions that read weights receive the
// model file's data section and the weights' byte offsets in it from the
// runtime (see kiln_runtime.h), and each `transformer.weight` becomes a view
// into them: f32 values, or a stored weight's bytes (i8 rows).
//
//===----------------------------------------------------------------------===//

#include "kiln/ABI/Passes.h"
#include "kiln/Dialect/Transformer/IR/Transformer.h"
#include "kiln/Dialect/Transformer/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Builders.h"

namespace kiln {
#define GEN_PASS_DEF_KILNWEIGHTBUFFERS
#include "kiln/ABI/Passes.h.inc"
} // namespace kiln

using namespace mlir;
using namespace kiln::transformer;

namespace {

/// Gives every function that reads weights the two leading buffer arguments
/// and replaces each `transformer.weight` by a view into the weight buffer.
LogicalResult lowerWeights(func::FuncOp func) {
  SmallVector<WeightOp> weights;
  func.walk([&](WeightOp op) { weights.push_back(op); });
  if (weights.empty())
    return success();
  MLIRContext *ctx = func.getContext();
  OpBuilder b(ctx);
  Location loc = func.getLoc();
  auto bytesType = MemRefType::get({ShapedType::kDynamic}, b.getI8Type());
  auto offsetsType = MemRefType::get({ShapedType::kDynamic}, b.getIndexType());
  if (failed(func.insertArguments(
          {0, 0}, {bytesType, offsetsType},
          {b.getDictionaryAttr(
               b.getNamedAttr("transformer.weights", b.getUnitAttr())),
           b.getDictionaryAttr(
               b.getNamedAttr("transformer.weight_offsets", b.getUnitAttr()))},
          {loc, loc})))
    return failure();
  // Result attributes that name an argument position follow the shift.
  for (unsigned i = 0, e = func.getNumResults(); i < e; ++i)
    if (auto tied = func.getResultAttrOfType<IntegerAttr>(i, kTiedArgAttr))
      func.setResultAttr(i, kTiedArgAttr,
                         b.getI64IntegerAttr(tied.getInt() + 2));
  Value bytes = func.getArgument(0), offsets = func.getArgument(1);
  for (WeightOp op : weights) {
    b.setInsertionPoint(op);
    Location l = op.getLoc();
    auto type = cast<RankedTensorType>(op.getType());
    Value index = arith::ConstantIndexOp::create(b, l, op.getIndex());
    Value offset = memref::LoadOp::create(b, l, offsets, ValueRange{index});
    auto viewType = MemRefType::get(type.getShape(), type.getElementType());
    Value view =
        memref::ViewOp::create(b, l, viewType, bytes, offset, ValueRange{});
    Value tensor = bufferization::ToTensorOp::create(b, l, type, view,
                                                     /*restrict=*/true,
                                                     /*writable=*/false);
    op.replaceAllUsesWith(tensor);
    op.erase();
  }
  return success();
}

struct KilnWeightBuffersPass
    : public kiln::impl::KilnWeightBuffersBase<KilnWeightBuffersPass> {
  void runOnOperation() override {
    for (auto func : getOperation().getOps<func::FuncOp>())
      if (failed(lowerWeights(func)))
        return signalPassFailure();
  }
};

} // namespace
