//===- Target.cpp - Record the target description on the module ----------===//
//
// Implements `kiln-target`: the module gets the `kiln.target` dictionary of
// the CPU the code is for, which the kernel strategy and object emission
// read.
//
//===----------------------------------------------------------------------===//

#include "kiln/Codegen/Passes.h"
#include "kiln/Target/TargetDescription.h"

namespace kiln {
#define GEN_PASS_DEF_KILNTARGET
#include "kiln/Codegen/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace {
struct KilnTargetPass : public kiln::impl::KilnTargetBase<KilnTargetPass> {
  using Base::Base;
  void runOnOperation() override {
    llvm::Expected<kiln::TargetDescription> target =
        kiln::describeTarget(cpu, vectorBits);
    if (!target) {
      getOperation().emitError("kiln-target: ")
          << llvm::toString(target.takeError());
      return signalPassFailure();
    }
    getOperation()->setAttr(kiln::kTargetAttr, target->toAttr(&getContext()));
  }
};
} // namespace
