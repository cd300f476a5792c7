//===- FuseResidualAdd.cpp - A residual add as a product's init -----------===//
//
// Implements `kiln-fuse-residual-add`: `r + x W^T`, where the product is
// zero-initialised and used by the add alone, becomes the product
// initialised with `r` (bitwise the same), so that the kernel reads the
// residual where it writes its sums and no separate add runs.
//
//===----------------------------------------------------------------------===//

#include "Contraction.h"
#include "kiln/Codegen/Passes.h"

#include "mlir/IR/Dominance.h"
#include "mlir/IR/PatternMatch.h"

namespace kiln {
#define GEN_PASS_DEF_KILNFUSERESIDUALADD
#include "kiln/Codegen/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace {

/// Rewrites every such add in `func`.
void fuseResidualAdds(func::FuncOp func) {
  IRRewriter rewriter(func.getContext());
  DominanceInfo dom(func);
  SmallVector<linalg::GenericOp> adds;
  func.walk([&](linalg::GenericOp op) {
    if (!kiln::isElementwiseBinary(op))
      return;
    Block &body = op.getRegion().front();
    if (body.getOperations().size() != 2)
      return;
    auto add = body.front().getNumResults() == 1
                   ? dyn_cast<arith::AddFOp>(body.front())
                   : arith::AddFOp();
    if (!add || body.getTerminator()->getOperand(0) != add.getResult() ||
        !((add.getLhs() == body.getArgument(0) &&
           add.getRhs() == body.getArgument(1)) ||
          (add.getLhs() == body.getArgument(1) &&
           add.getRhs() == body.getArgument(0))))
      return;
    adds.push_back(op);
  });
  for (linalg::GenericOp op : adds) {
    for (unsigned i = 0; i < 2; ++i) {
      Value mine = op.getDpsInputs()[i], other = op.getDpsInputs()[1 - i];
      auto producer = mine.getDefiningOp<linalg::GenericOp>();
      if (!producer || !producer->hasOneUse() || mine.getType() != other.getType())
        continue;
      std::optional<kiln::Linear> l = kiln::matchLinear(producer);
      if (!l || !kiln::isZeroFill(l->init()) || !dom.properlyDominates(other, producer))
        continue;
      rewriter.modifyOpInPlace(
          producer, [&] { producer.getDpsInitsMutable()[0].set(other); });
      rewriter.replaceOp(op, producer.getResult(0));
      break;
    }
  }
}


struct KilnFuseResidualAddPass
    : public kiln::impl::KilnFuseResidualAddBase<KilnFuseResidualAddPass> {
  void runOnOperation() override { fuseResidualAdds(getOperation()); }
};

} // namespace
