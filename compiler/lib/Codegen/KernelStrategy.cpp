//===- KernelStrategy.cpp - Each contraction's kernel configuration -------===//
//
// Implements `kiln-kernel-strategy`: every `linear`-form contraction gets
// the `kiln.kernel` dictionary (KernelConfig) that kiln-contraction-kernels
// emits from. Every choice is made here, from the module's target
// description and the enclosing entry point's role, so that a reader sees
// it in the IR and a test can set it by hand.
//
//===----------------------------------------------------------------------===//

#include "Contraction.h"
#include "kiln/Conversion/Dequantize.h"
#include "kiln/Codegen/Passes.h"
#include "kiln/Dialect/Transformer/Transforms/Passes.h"
#include "kiln/Target/TargetDescription.h"

namespace kiln {
#define GEN_PASS_DEF_KILNKERNELSTRATEGY
#include "kiln/Codegen/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace {

/// Output columns per task of a decode product: a matrix-vector product
/// streams W once whatever the block, so small blocks only add tasks, and
/// 16 gives every thread an even share of the narrowest projections (k/v
/// of GQA models) at once.
constexpr int64_t kDecodeBlockCols = 16;
/// A task's block of W is streamed once per tile of x rows, so it must stay
/// in L2: at most this fraction of it (1/4: the 256 KiB blocks measured on
/// the 1 MiB-L2 Zen 4 machines, the rest of L2 holding x's rows and the
/// packed panel).
constexpr int64_t kL2SharePerBlock = 4;
/// Products with at least this many rows of x pack each block's weights for
/// outer-product tiles; below, the packing pass over the block does not pay
/// for itself.
constexpr int64_t kPackMinRows = 16;
/// The packing transposes W in 8 x 8 register blocks: K must be a multiple.
constexpr int64_t kPackTranspose = 8;

/// The role of a contraction: decode for a matrix-vector product (x one
/// row of a static shape: a decode step, or the last position's logits in
/// @prefill); otherwise its entry point's (`decode` entries run a fixed
/// batch of rows, the others prompts); for a function that is not an entry
/// point (a test, a helper), decode when x has a static shape.
kiln::KernelConfig::Role roleOf(const kiln::Linear &l) {
  using Role = kiln::KernelConfig::Role;
  auto xType = cast<RankedTensorType>(l.x().getType());
  if (xType.hasStaticShape() && xType.getNumElements() == l.k)
    return Role::Decode;
  auto func = l.op->getParentOfType<func::FuncOp>();
  if (auto entry = func ? func->getAttrOfType<StringAttr>(
                              kiln::transformer::kEntryAttr)
                        : StringAttr())
    return entry.getValue() == "decode" ? Role::Decode : Role::Prompt;
  return xType.hasStaticShape() ? Role::Decode : Role::Prompt;
}

struct KilnKernelStrategyPass
    : public kiln::impl::KilnKernelStrategyBase<KilnKernelStrategyPass> {
  using Base::Base;

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    auto module = func->getParentOfType<ModuleOp>();
    auto attr = module ? module->getAttrOfType<DictionaryAttr>(kiln::kTargetAttr)
                       : DictionaryAttr();
    if (!attr) {
      func.emitError("kiln-kernel-strategy: the module has no '")
          << kiln::kTargetAttr << "' (run kiln-target first)";
      return signalPassFailure();
    }
    llvm::Expected<kiln::TargetDescription> target =
        kiln::TargetDescription::fromAttr(attr);
    if (!target) {
      func.emitError("kiln-kernel-strategy: ")
          << llvm::toString(target.takeError());
      return signalPassFailure();
    }
    if (blockCols < 1) {
      func.emitError("kiln-kernel-strategy: block-cols must be positive");
      return signalPassFailure();
    }
    if (activations != "f32" && activations != "int8") {
      func.emitError("kiln-kernel-strategy: activations must be f32 or int8, "
                     "not '")
          << activations << "'";
      return signalPassFailure();
    }
    func.walk([&](linalg::GenericOp op) {
      if (std::optional<kiln::Linear> l = kiln::matchLinear(op))
        op->setAttr(kiln::kKernelAttr, choose(*l, *target).toAttr(&getContext()));
    });
  }

  kiln::KernelConfig choose(const kiln::Linear &l,
                            const kiln::TargetDescription &target) const {
    using kiln::transformer::WeightEncoding;
    kiln::KernelConfig c;
    c.role = roleOf(l);
    int64_t vl = target.vectorLanes();
    c.vectorLanes = vl;
    // Integer dot products (activations=int8) on the weight types that
    // have an integer kernel (kiln::hasIntegerGroups): in decode on targets
    // with 256-bit integer vectors (AVX2), the 4-, 5- and 6-bit types
    // everywhere, q8_0 where there is VNNI (its unsigned bytes reach 255,
    // which AVX2's vpmaddubsw would saturate); in prompts (the packed
    // integer GEMM) where there is AVX-512 VNNI (on AVX2, vpmaddubsw +
    // vpmaddwd does 16 products per two instructions, no more than an f32
    // FMA).
    std::optional<kiln::StoredWeight> w = kiln::getStoredWeight(l.w());
    bool integerWeights = w && kiln::hasIntegerGroups(w->encoding);
    bool int8 = activations == "int8" && integerWeights;
    if (c.isDecode())
      c.int8Activations =
          int8 && target.vectorBits >= 256 &&
          (w->encoding != WeightEncoding::q8_0 || target.avx512vnni);
    else
      c.int8Activations = int8 && target.avx512vnni &&
                          target.vectorBits >= 512 && target.avx &&
                          l.k % kiln::kPromptActivationGroup == 0;
    // A block's weights in L2: f32 panels (4 bytes a weight), or the
    // integer GEMM's byte panels. The integer GEMM's blocks are whole tiles
    // of two vectors of columns: columns past the last tile take the f32
    // dot-product kernel (a quarter of a K = 5632 product's time at 44
    // columns). One tile of bytes is at most 2 vl K (352 KiB at K = 11008),
    // within L2.
    int64_t blockBytes = target.l2Bytes / kL2SharePerBlock;
    auto blockFor = [&](bool intGemm) {
      int64_t weightBytes = intGemm ? 1 : 4;
      int64_t fit =
          std::max<int64_t>(4, (blockBytes / (weightBytes * l.k)) / 4 * 4);
      if (intGemm)
        fit = std::max(fit, 2 * vl);
      int64_t cols = std::min({(int64_t)blockCols, fit, l.n});
      if (intGemm && cols >= 2 * vl)
        cols = cols / (2 * vl) * (2 * vl);
      return cols;
    };
    bool intGemm = c.int8Activations && !c.isDecode();
    // No packed tiles, no integer GEMM.
    if (intGemm && blockFor(true) < 2 * vl)
      intGemm = c.int8Activations = false;
    c.blockCols = blockFor(intGemm);
    if (c.isDecode())
      c.blockCols = std::min(c.blockCols, kDecodeBlockCols);
    // 16 accumulators need the 32 vector registers of AVX-512; with 16
    // (AVX2) a 2x4 tile (8 accumulators) measured fastest.
    c.dotRows = vl >= 16 ? 4 : 2;
    // Outer-product tiles of rows x 2 vectors: 12 x 2 is 24 of AVX-512's 32
    // registers, 6 x 2 is 12 of AVX2's 16. The integer GEMM keeps two i32
    // and an f32 accumulator per vector: 4 x 2 x 3 is 24.
    c.outerRows = intGemm ? 4 : vl >= 16 ? 12 : 6;
    c.packMinRows = kPackMinRows;
    // The packing's transposes are AVX shuffles and blends
    // (x86vector::avx2::transpose8x8xf32).
    c.packed = target.avx && l.k % kPackTranspose == 0 && c.blockCols >= 2 * vl;
    return c;
  }
};

} // namespace
