//===- ApproximateExp.cpp - Vectorizable exp ------------------------------===//
//
// Implements `kiln-approximate-exp`: f32 `math.exp` (softmax in attention,
// SiLU/SwiGLU) becomes upstream MLIR's polynomial approximation, plain
// arithmetic that vectorizes, instead of a call to libm's expf per element
// (or per lane: LLVM scalarizes vector exp into libm calls).
//
//===----------------------------------------------------------------------===//

#include "kiln/Codegen/Passes.h"

#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace kiln {
#define GEN_PASS_DEF_KILNAPPROXIMATEEXP
#include "kiln/Codegen/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace {
struct KilnApproximateExpPass
    : public kiln::impl::KilnApproximateExpBase<KilnApproximateExpPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateMathPolynomialApproximationPatterns(
        patterns, [](StringRef name) { return name == "math.exp"; });
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};
} // namespace
