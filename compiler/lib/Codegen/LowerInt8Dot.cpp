//===- LowerInt8Dot.cpp - Integer dot products as x86 instructions --------===//
//
// Implements `kiln-lower-int8-dot`: the 8-bit integer dot products that
// kiln-contraction-kernels emits for int8 activations, a
// `vector.contract` of two vector<8x4xi8> into vector<8xi32> (lane i adds
// the 4 products of row i, the operands sign-extended) marked
// `kiln.nonnegative_lhs` (every lhs value is in [0, 127]: W's 4-bit
// integers), become the instructions that compute it: AVX-512 VNNI's
// vpdpbusd (unsigned lhs bytes times signed rhs bytes, 4 at a time, added
// to the i32 lanes), or on AVX2 vpmaddubsw (pairs into i16, which cannot
// saturate for lhs <= 127) then vpmaddwd with ones (pairs of i16 into
// i32). The upstream lowering of the contraction (widening to i32 lanes,
// multiplies and shuffles) computes the same values several times slower.
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

namespace kiln {
#define GEN_PASS_DEF_KILNLOWERINT8DOT
#include "kiln/Codegen/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace {

/// Whether `op` is the marked contraction this pass lowers.
bool isInt8Dot(vector::ContractionOp op) {
  if (!op->hasAttr(kiln::kNonNegativeLhsAttr) ||
      op.getKind() != vector::CombiningKind::ADD)
    return false;
  auto i8x8x4 = VectorType::get({8, 4}, IntegerType::get(op.getContext(), 8));
  auto i32x8 = VectorType::get({8}, IntegerType::get(op.getContext(), 32));
  if (op.getLhsType() != i8x8x4 || op.getRhsType() != i8x8x4 ||
      op.getAccType() != i32x8)
    return false;
  MLIRContext *ctx = op.getContext();
  AffineExpr i, k;
  bindDims(ctx, i, k);
  SmallVector<AffineMap> want{AffineMap::get(2, 0, {i, k}, ctx),
                              AffineMap::get(2, 0, {i, k}, ctx),
                              AffineMap::get(2, 0, {i}, ctx)};
  return op.getIndexingMapsArray() == want &&
         op.getIteratorTypesArray() ==
             SmallVector<vector::IteratorType>{vector::IteratorType::parallel,
                                               vector::IteratorType::reduction};
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
      if (!isInt8Dot(op))
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
      auto i8x32 = VectorType::get({32}, b.getI8Type());
      Value lhs = vector::ShapeCastOp::create(b, loc, i8x32, op.getLhs());
      Value rhs = vector::ShapeCastOp::create(b, loc, i8x32, op.getRhs());
      Value result;
      if (target->avx512vnni) {
        result = intrinsic(b, loc, op.getAccType(),
                           "llvm.x86.avx512.vpdpbusd.256",
                           {op.getAcc(), lhs, rhs});
      } else {
        auto i16x16 = VectorType::get({16}, b.getI16Type());
        Value pairs = intrinsic(b, loc, i16x16, "llvm.x86.avx2.pmadd.ub.sw",
                                {lhs, rhs});
        Value ones = arith::ConstantOp::create(
            b, loc, DenseElementsAttr::get(i16x16, b.getI16IntegerAttr(1)));
        Value quads = intrinsic(b, loc, op.getAccType(),
                                "llvm.x86.avx2.pmadd.wd", {pairs, ones});
        result = arith::AddIOp::create(b, loc, op.getAcc(), quads);
      }
      op.getResult().replaceAllUsesWith(result);
      op.erase();
    });
    if (failedToLower)
      signalPassFailure();
  }
};

} // namespace
