//===- EarlyDealloc.cpp - Free each temporary after its last use ----------===//
//
// Implements `kiln-early-dealloc`. MLIR's ownership-based deallocation puts
// every `memref.dealloc` at the end of the block that allocated the buffer:
// in a model's @prefill, every temporary of every layer stays alive until
// the function returns (peak memory grows with the number of layers). This
// pass moves each dealloc of a buffer allocated in the same block to just
// after the last operation of that block that uses the buffer or a view of
// it, so a temporary lives as long as it is read and its memory is reused
// by the next layer's.
//
//===----------------------------------------------------------------------===//

#include "kiln/Codegen/Passes.h"

#include "mlir/Interfaces/ViewLikeInterface.h"

namespace kiln {
#define GEN_PASS_DEF_KILNEARLYDEALLOC
#include "kiln/Codegen/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace {

/// The last operation of `block` that uses `root` or a view of it; null
/// when a use lies outside `block`'s ops (the buffer escapes our view).
Operation *lastUse(Value root, Block *block, Operation *dealloc) {
  SmallVector<Value> work{root};
  llvm::SmallPtrSet<Value, 8> seen;
  Operation *last = root.getDefiningOp();
  while (!work.empty()) {
    Value v = work.pop_back_val();
    if (!seen.insert(v).second)
      continue;
    for (Operation *user : v.getUsers()) {
      if (user == dealloc)
        continue;
      if (auto view = dyn_cast<ViewLikeOpInterface>(user))
        if (view.getViewSource() == v)
          for (Value r : user->getResults())
            work.push_back(r);
      Operation *anc = block->findAncestorOpInBlock(*user);
      if (!anc)
        return nullptr;
      if (last->isBeforeInBlock(anc))
        last = anc;
    }
  }
  return last;
}

struct KilnEarlyDeallocPass
    : public kiln::impl::KilnEarlyDeallocBase<KilnEarlyDeallocPass> {
  void runOnOperation() override {
    SmallVector<memref::DeallocOp> deallocs;
    getOperation().walk([&](memref::DeallocOp d) { deallocs.push_back(d); });
    for (memref::DeallocOp d : deallocs) {
      Value m = d.getMemref();
      auto alloc = m.getDefiningOp<memref::AllocOp>();
      Block *block = d->getBlock();
      if (!alloc || alloc->getBlock() != block)
        continue;
      Operation *last = lastUse(m, block, d);
      if (last && last->isBeforeInBlock(d))
        d->moveAfter(last);
    }
  }
};

} // namespace
