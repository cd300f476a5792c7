//===- FuseEpilogues.cpp - Elementwise work done by the products' kernels -===//
//
// Implements `kiln-fuse-epilogues`: decides which generics over decode
// products' results their kernel applies to each block of columns it
// computes, so that the products' results are never written:
//
//  * an elementwise generic over the two results of a kiln.group of exactly
//    two matrix-vector products (the gated activation act(x Wg^T) * (x Wu^T)),
//    each result used by it alone;
//  * a generic whose only input is one product's result and that reads it,
//    besides its own element, only at other columns of the same row within
//    aligned groups of G columns (RoPE's pairs of columns), when the
//    group's kernel can be placed before the first use of any member's
//    result with everything the generic reads available there.
//
// G is found from the IR, not handed over: the column each `tensor.extract`
// of the input reads is evaluated for every column of the row (the index
// arithmetic is a function of `linalg.index` alone), and G is the smallest
// divisor of the row's width whose aligned groups contain every read; a
// generic whose reads span the whole row of a product that is a kernel of
// its own is left alone (the kernel would be one task).
// The decision is recorded as kiln.epilogue = G (1 for the gated product);
// kiln-contraction-kernels emits it.
//
// Prompts keep both as parallel loops of their own: the gated epilogue's
// two packed weight blocks per task measured 7% slower on a 128-token
// prefill than one kernel over both products' blocks followed by a
// parallel activation, and RoPE as an epilogue 3-5% slower (each task's
// extra local tile, then zero-filled, and the copy for v).
//
//===----------------------------------------------------------------------===//

#include "Contraction.h"
#include "kiln/Codegen/Passes.h"

namespace kiln {
#define GEN_PASS_DEF_KILNFUSEEPILOGUES
#include "kiln/Codegen/Passes.h.inc"
} // namespace kiln

using namespace mlir;
using kiln::ConfiguredLinear;

namespace {

/// The generic that is the only consumer of product `l`'s result, with the
/// column group it reads within, when the product's kernel can apply it
/// (kiln::columnEpilogueMismatch). `alone`: the product is a kernel of its
/// own, not one of a kiln.group.
std::optional<std::pair<linalg::GenericOp, int64_t>>
matchColumnGroupEpilogue(const ConfiguredLinear &l, bool alone) {
  Value p = l.op->getResult(0);
  if (p.use_empty())
    return std::nullopt;
  Operation *u = *p.getUsers().begin();
  auto r = dyn_cast<linalg::GenericOp>(u);
  if (!r)
    r = u->getParentOfType<linalg::GenericOp>();
  if (!r || r.getNumDpsInputs() != 1 || r.getDpsInputs()[0] != p ||
      kiln::columnEpilogueMismatch(r))
    return std::nullopt;
  // A group as wide as the row would leave a kernel of its own one task.
  std::optional<int64_t> g = kiln::readColumnGroup(r, p, l.n);
  if (!g || (*g == l.n && alone))
    return std::nullopt;
  return std::make_pair(r, *g);
}

/// The elementwise generic over exactly the two results of `pair`, each
/// used by it alone, when it can be their matrix-vector kernel's epilogue.
linalg::GenericOp matchPairEpilogue(ArrayRef<ConfiguredLinear> pair) {
  if (pair.size() != 2)
    return {};
  const ConfiguredLinear &a = pair[0], &b = pair[1];
  Value ra = a.op->getResult(0);
  if (!ra.hasOneUse())
    return {};
  auto op = dyn_cast<linalg::GenericOp>(*ra.getUsers().begin());
  if (!op || kiln::pairEpilogueMismatch(op, a, b))
    return {};
  // Decode, one row of x.
  auto xType = cast<RankedTensorType>(a.x().getType());
  if (!a.config.isDecode() || !b.config.isDecode() || !xType.hasStaticShape() ||
      xType.getNumElements() != a.k)
    return {};
  return op;
}

struct KilnFuseEpiloguesPass
    : public kiln::impl::KilnFuseEpiloguesBase<KilnFuseEpiloguesPass> {
  void runOnOperation() override {
    FailureOr<SmallVector<ConfiguredLinear>> found =
        kiln::configuredLinears(getOperation());
    if (failed(found))
      return signalPassFailure();
    Builder b(&getContext());
    for (ArrayRef<ConfiguredLinear> group :
         kiln::splitIntoGroups<ConfiguredLinear>(*found, kiln::kGroupAttr)) {
      if (linalg::GenericOp pair = matchPairEpilogue(group)) {
        pair->setAttr(kiln::kEpilogueAttr, b.getI64IntegerAttr(1));
        continue;
      }
      if (!group.back().config.isDecode())
        continue;
      // The kernel goes before the first use of any member's result, and
      // its blocks keep one column group whole.
      SmallVector<Operation *> ops;
      for (const ConfiguredLinear &l : group)
        ops.push_back(l.op);
      Operation *at = kiln::firstUseIn(group.back().op->getBlock(), ops);
      if (!at)
        continue;
      int64_t columns = 0;
      for (const ConfiguredLinear &l : group) {
        auto e = matchColumnGroupEpilogue(l, group.size() == 1);
        if (!e || l.n % e->second != 0 || (columns && e->second != columns) ||
            !kiln::operandsAvailableAt(e->first, at))
          continue;
        columns = e->second;
        e->first->setAttr(kiln::kEpilogueAttr, b.getI64IntegerAttr(columns));
      }
    }
  }
};

} // namespace
