//===- Bufferize.cpp - One-shot bufferization with Kiln's options ---------===//

#include "kiln/Codegen/Passes.h"

#include "mlir/Dialect/Bufferization/IR/BufferizableOpInterface.h"
#include "mlir/Dialect/Bufferization/Transforms/OneShotAnalysis.h"
#include "mlir/Dialect/Bufferization/Transforms/OneShotModuleBufferize.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Transforms.h"
#include "mlir/IR/PatternMatch.h"

namespace kiln {
#define GEN_PASS_DEF_KILNBUFFERIZE
#include "kiln/Codegen/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace {

/// Gives every user of a shared destination (`tensor.empty`, or a
/// `linalg.fill` of one, merged by CSE) its own copy of it, so that one-shot
/// analysis does not see a false write conflict between the users.
template <typename OpTy> void duplicateShared(ModuleOp module) {
  SmallVector<OpTy> shared;
  module.walk([&](OpTy op) {
    if (op->getNumResults() == 1 && !op->hasOneUse() && !op->use_empty())
      shared.push_back(op);
  });
  OpBuilder b(module.getContext());
  for (OpTy op : shared) {
    SmallVector<OpOperand *> uses;
    for (OpOperand &use : op->getResult(0).getUses())
      uses.push_back(&use);
    for (OpOperand *use : llvm::drop_begin(uses)) {
      b.setInsertionPoint(use->getOwner());
      use->set(b.clone(*op)->getResult(0));
    }
  }
}

void duplicateSharedDestinations(ModuleOp module) {
  duplicateShared<linalg::FillOp>(module);
  duplicateShared<tensor::EmptyOp>(module);
}

struct KilnBufferizePass
    : public kiln::impl::KilnBufferizeBase<KilnBufferizePass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    duplicateSharedDestinations(module);

    bufferization::OneShotBufferizationOptions options;
    options.bufferizeFunctionBoundaries = true;
    options.setFunctionBoundaryTypeConversion(
        bufferization::LayoutMapOption::IdentityLayoutMap);
    options.memCpyFn = [](OpBuilder &b, Location loc, Value from,
                          Value to) -> LogicalResult {
      linalg::CopyOp::create(b, loc, from, to);
      return success();
    };

    IRRewriter rewriter(module.getContext());
    if (failed(bufferization::eliminateEmptyTensors(rewriter, module)))
      return signalPassFailure();
    bufferization::BufferizationState state;
    if (failed(
            bufferization::runOneShotModuleBufferize(module, options, state)))
      return signalPassFailure();
    // A function that updates an argument's buffer in place (a layer
    // function's KV cache) returns nothing for it: callers keep using their
    // buffer, and no deallocation pass needs to copy the result.
    if (failed(bufferization::dropEquivalentBufferResults(module)))
      return signalPassFailure();
  }
};

} // namespace
