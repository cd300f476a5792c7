//===- LowerInt8Dot.cpp - Integer dot products as x86 instructions --------===//
//
// Implements `kiln-lower-int8-dot`: the 8-bit integer dot products that
// kiln-contraction-kernels emits for int8 activations, a
// `vector.contract` into vector<8xi32> or vector<16xi32> of
// `arith.extui` of a vector<Nx4xi8> (W's integers, unsigned) and
// `arith.extsi` of a vector<Nx4xi8> (x's, signed), lane i adding the 4
// products of row i, become the instructions that compute it: AVX-512
// VNNI's vpdpbusd (unsigned lhs bytes times signed rhs bytes, 4 at a time,
// added to the i32 lanes), or, where the contraction is marked
// `kiln.lhs_below_128` (W's 4- and 6-bit integers), AVX2's vpmaddubsw
// (pairs into i16, which cannot saturate for lhs < 128) then vpmaddwd with
// ones (pairs of i16 into i32). The upstream lowering of the contraction
// (i32 multiplies and shuffles) computes the same values several times
// slower; it is left to it where neither applies.
//
// It runs after bufferization: the intrinsic calls (llvm.call_intrinsic)
// carry no memory-effect information, which bufferization's analyses
// reject.
//
//===----------------------------------------------------------------------===//

#include "kiln/Codegen/Passes.h"
#include "kiln/Target/TargetDescription.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/PatternMatch.h"
#include "llvm/ADT/Sequence.h"

namespace kiln {
#define GEN_PASS_DEF_KILNLOWERINT8DOT
#include "kiln/Codegen/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace {

/// The unsigned and signed bytes of `op` when it is an integer dot product
/// this pass lowers.
std::optional<std::pair<Value, Value>>
int8DotOperands(vector::ContractionOp op) {
  if (op.getKind() != vector::CombiningKind::ADD)
    return std::nullopt;
  int64_t lanes = op.getLhsType().getDimSize(0);
  if (lanes != 8 && lanes != 16)
    return std::nullopt;
  MLIRContext *ctx = op.getContext();
  auto quads = VectorType::get({lanes, 4}, IntegerType::get(ctx, 8));
  auto wide = VectorType::get({lanes, 4}, IntegerType::get(ctx, 32));
  auto acc = VectorType::get({lanes}, IntegerType::get(ctx, 32));
  auto lhs = op.getLhs().getDefiningOp<arith::ExtUIOp>();
  auto rhs = op.getRhs().getDefiningOp<arith::ExtSIOp>();
  if (!lhs || !rhs || op.getLhsType() != wide || op.getRhsType() != wide ||
      lhs.getIn().getType() != quads || rhs.getIn().getType() != quads ||
      op.getAccType() != acc)
    return std::nullopt;
  AffineExpr i, k;
  bindDims(ctx, i, k);
  SmallVector<AffineMap> want{AffineMap::get(2, 0, {i, k}, ctx),
                              AffineMap::get(2, 0, {i, k}, ctx),
                              AffineMap::get(2, 0, {i}, ctx)};
  if (op.getIndexingMapsArray() != want ||
      op.getIteratorTypesArray() !=
          SmallVector<vector::IteratorType>{vector::IteratorType::parallel,
                                            vector::IteratorType::reduction})
    return std::nullopt;
  return std::make_pair(lhs.getIn(), rhs.getIn());
}

Value intrinsic(OpBuilder &b, Location loc, Type result, StringRef name,
                ValueRange args) {
  return LLVM::CallIntrinsicOp::create(b, loc, result, b.getStringAttr(name),
                                       args)
      .getResult(0);
}

struct KilnLowerInt8DotPass
    : public kiln::impl::KilnLowerInt8DotBase<KilnLowerInt8DotPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    llvm::Expected<kiln::TargetDescription> target = kiln::targetOf(module);
    if (!target) {
      module.emitError("kiln-lower-int8-dot: ")
          << llvm::toString(target.takeError());
      return signalPassFailure();
    }
    bool failedToLower = false;
    module.walk([&](vector::ContractionOp op) {
      std::optional<std::pair<Value, Value>> bytes = int8DotOperands(op);
      if (!bytes ||
          (!target->avx512vnni && !op->hasAttr(kiln::kLhsBelow128Attr)))
        return;
      if (target->vectorBits < 256) {
        op.emitError("kiln-lower-int8-dot: integer dot products need "
                     "256-bit vectors (AVX2); the target has ")
            << target->vectorBits;
        failedToLower = true;
        return;
      }
      OpBuilder b(op);
      Location loc = op.getLoc();
      int64_t lanes = cast<VectorType>(op.getAccType()).getDimSize(0);
      auto bytesOf = [&](int64_t n) {
        return VectorType::get({4 * n}, b.getI8Type());
      };
      Value lhs =
          vector::ShapeCastOp::create(b, loc, bytesOf(lanes), bytes->first);
      Value rhs =
          vector::ShapeCastOp::create(b, loc, bytesOf(lanes), bytes->second);
      // acc + dot of `n` lanes from lane `first`.
      auto dot = [&](int64_t first, int64_t n) -> Value {
        auto slice = [&](Value v, int64_t offset, int64_t size) -> Value {
          if (size == cast<VectorType>(v.getType()).getDimSize(0))
            return v;
          return vector::ExtractStridedSliceOp::create(b, loc, v, offset, size,
                                                       1);
        };
        Value l = slice(lhs, 4 * first, 4 * n),
              r = slice(rhs, 4 * first, 4 * n);
        Value acc = slice(op.getAcc(), first, n);
        auto accType = cast<VectorType>(acc.getType());
        if (target->avx512vnni)
          return intrinsic(b, loc, accType,
                           n == 16 ? "llvm.x86.avx512.vpdpbusd.512"
                                   : "llvm.x86.avx512.vpdpbusd.256",
                           {acc, l, r});
        auto i16x16 = VectorType::get({16}, b.getI16Type());
        Value pairs =
            intrinsic(b, loc, i16x16, "llvm.x86.avx2.pmadd.ub.sw", {l, r});
        Value ones = arith::ConstantOp::create(
            b, loc, DenseElementsAttr::get(i16x16, b.getI16IntegerAttr(1)));
        Value sums =
            intrinsic(b, loc, accType, "llvm.x86.avx2.pmadd.wd", {pairs, ones});
        return arith::AddIOp::create(b, loc, acc, sums);
      };
      Value result;
      if (lanes == 16 && target->avx512vnni && target->vectorBits >= 512) {
        result = dot(0, 16);
      } else if (lanes == 16) {
        Value lo = dot(0, 8), hi = dot(8, 8);
        result = vector::ShuffleOp::create(
            b, loc, lo, hi, llvm::to_vector(llvm::seq<int64_t>(0, 16)));
      } else {
        result = dot(0, 8);
      }
      Operation *ext[] = {op.getLhs().getDefiningOp(),
                          op.getRhs().getDefiningOp()};
      op.getResult().replaceAllUsesWith(result);
      op.erase();
      for (Operation *e : ext)
        if (e->use_empty())
          e->erase();
    });
    if (failedToLower)
      signalPassFailure();
  }
};

} // namespace
