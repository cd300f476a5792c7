//===- ParallelizeRows.cpp - Prompt-sized generics on every thread --------===//
//
// Implements `kiln-parallelize-rows`: generics whose parallel dimensions
// depend on the prompt length become `scf.forall` loops over blocks of rows
// (upstream tiling through TilingInterface).
//
//===----------------------------------------------------------------------===//

#include "kiln/Codegen/Passes.h"

#include "mlir/Dialect/SCF/Transforms/TileUsingInterface.h"
#include "mlir/IR/PatternMatch.h"

namespace kiln {
#define GEN_PASS_DEF_KILNPARALLELIZEROWS
#include "kiln/Codegen/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace {

struct KilnParallelizeRowsPass
    : public kiln::impl::KilnParallelizeRowsBase<KilnParallelizeRowsPass> {
  using Base::Base;

  void runOnOperation() override {
    if (rowsPerTask < 1) {
      getOperation().emitError("kiln-parallelize-rows: rows-per-task must be "
                               "positive");
      return signalPassFailure();
    }
    SmallVector<linalg::GenericOp> generics;
    getOperation().walk([&](linalg::GenericOp op) { generics.push_back(op); });
    for (linalg::GenericOp op : generics)
      if (failed(parallelizeRows(op)))
        return signalPassFailure();
  }

  /// A generic whose shape depends on the prompt (outside a parallel loop)
  /// becomes an scf.forall over blocks of `rows-per-task` along its dynamic
  /// parallel dimensions. Fixed-shape generics (one token in @decode) stay
  /// as they are: a few thousand elements do not pay for a fork.
  LogicalResult parallelizeRows(linalg::GenericOp op) {
    if (!op.hasPureTensorSemantics() || op->getParentOfType<scf::ForallOp>())
      return success();
    SmallVector<int64_t> ranges = op.getStaticLoopRanges();
    auto iters = op.getIteratorTypesArray();
    SmallVector<OpFoldResult> tiles;
    bool any = false;
    OpBuilder b(op);
    for (auto [range, iter] : llvm::zip(ranges, iters)) {
      bool tile = iter == utils::IteratorType::parallel &&
                  ShapedType::isDynamic(range);
      tiles.push_back(b.getIndexAttr(tile ? rowsPerTask : 0));
      any |= tile;
    }
    if (!any)
      return success();
    scf::SCFTilingOptions options;
    options.setTileSizes(tiles);
    options.setLoopType(scf::SCFTilingOptions::LoopType::ForallOp);
    IRRewriter rewriter(op.getContext());
    rewriter.setInsertionPoint(op);
    FailureOr<scf::SCFTilingResult> tiled = scf::tileUsingSCF(
        rewriter, cast<TilingInterface>(op.getOperation()), options);
    if (failed(tiled))
      return op.emitError("kiln-parallelize-rows: cannot tile this generic "
                          "into a parallel loop");
    rewriter.replaceOp(op, tiled->replacements);
    return success();
  }
};

} // namespace
