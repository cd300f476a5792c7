//===- FoldNorms.cpp - Norms computed inside the products reading them ----===//
//
// Implements `kiln-fold-norms`: decides which norms the prompt kernels
// compute on the fly. A product's `x` produced by an elementwise generic
// `h * f(per-row values) * g[k]` (RMSNorm: `h * rsqrt(mean(h^2) + eps) *
// g`; kiln::ScaledInput) whose users are all configured products, one of
// them a prompt's, is marked kiln.fold_into_products: the kernels read `h`,
// multiply by `g` along k and scale each row's sums by `f`, and the
// normalised activation is never written (kiln-contraction-kernels).
//
//===----------------------------------------------------------------------===//

#include "Contraction.h"
#include "kiln/Codegen/Passes.h"

namespace kiln {
#define GEN_PASS_DEF_KILNFOLDNORMS
#include "kiln/Codegen/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace {

struct KilnFoldNormsPass
    : public kiln::impl::KilnFoldNormsBase<KilnFoldNormsPass> {
  void runOnOperation() override {
    FailureOr<SmallVector<kiln::ConfiguredLinear>> found =
        kiln::configuredLinears(getOperation());
    if (failed(found))
      return signalPassFailure();
    llvm::SmallPtrSet<Operation *, 16> products;
    for (const kiln::ConfiguredLinear &l : *found)
      products.insert(l.op);
    for (const kiln::ConfiguredLinear &l : *found) {
      // Prompts only: in a matrix-vector product (decode) the norm is a few
      // hundred elements, while scaling x in the kernel adds work to every
      // row of W (measured slower).
      Value x = l.x();
      Operation *def = x.getDefiningOp();
      if (l.config.isDecode() || !def ||
          def->hasAttr(kiln::kFoldIntoProductsAttr) ||
          !llvm::all_of(x.getUsers(),
                        [&](Operation *u) { return products.contains(u); }))
        continue;
      if (kiln::matchScaledInput(x))
        def->setAttr(kiln::kFoldIntoProductsAttr, UnitAttr::get(&getContext()));
    }
  }
};

} // namespace
