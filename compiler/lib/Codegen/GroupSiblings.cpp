//===- GroupSiblings.cpp - Sibling products as one kernel -----------------===//
//
// Implements `kiln-group-siblings`: decides which products one kernel
// computes. Configured products that read the same `x` with the same K and
// the same weight encoding in one block (q/k/v, gate/up), none of whose
// results is used before the last of them (the kernel takes the last one's
// place), get the same kiln.group number; kiln-contraction-kernels then
// emits one parallel loop over the column blocks of all of them.
//
//===----------------------------------------------------------------------===//

#include "Contraction.h"
#include "kiln/Codegen/Passes.h"
#include "kiln/Conversion/Dequantize.h"

#include "llvm/ADT/MapVector.h"

namespace kiln {
#define GEN_PASS_DEF_KILNGROUPSIBLINGS
#include "kiln/Codegen/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace {

/// Whether the products `candidates` (program order, one block, at least
/// two) may be one kernel placed where the last of them is: no result is
/// used before it.
bool groupable(ArrayRef<kiln::ConfiguredLinear> candidates) {
  Operation *lastOp = candidates.back().op;
  Block *block = lastOp->getBlock();
  for (const kiln::ConfiguredLinear &l : candidates) {
    for (Operation *user : l.op->getUsers()) {
      Operation *a = block->findAncestorOpInBlock(*user);
      if (!a || a == lastOp || a->isBeforeInBlock(lastOp))
        return false;
    }
  }
  return true;
}

struct KilnGroupSiblingsPass
    : public kiln::impl::KilnGroupSiblingsBase<KilnGroupSiblingsPass> {
  void runOnOperation() override {
    FailureOr<SmallVector<kiln::ConfiguredLinear>> found =
        kiln::configuredLinears(getOperation());
    if (failed(found))
      return signalPassFailure();
    // Siblings share x, K and how W is stored (one kernel reads one kind),
    // and a block; program order within it.
    using Key = std::tuple<Value, int64_t, int, Block *>;
    llvm::MapVector<Key, SmallVector<kiln::ConfiguredLinear>> byInput;
    for (const kiln::ConfiguredLinear &l : *found) {
      std::optional<kiln::StoredWeight> s = kiln::getStoredWeight(l.w());
      int encoding = s ? static_cast<int>(s->encoding) : -1;
      byInput[{l.x(), l.k, encoding, l.op->getBlock()}].push_back(l);
    }
    Builder b(&getContext());
    int64_t next = 0;
    for (auto &[key, candidates] : byInput) {
      llvm::sort(candidates, [](const kiln::ConfiguredLinear &a,
                                const kiln::ConfiguredLinear &c) {
        return a.op->isBeforeInBlock(c.op);
      });
      if (candidates.size() < 2 || !groupable(candidates))
        continue;
      for (const kiln::ConfiguredLinear &l : candidates)
        l.op->setAttr(kiln::kGroupAttr, b.getI64IntegerAttr(next));
      ++next;
    }
  }
};

} // namespace
