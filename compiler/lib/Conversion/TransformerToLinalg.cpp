//===- TransformerToLinalg.cpp - Lower transformer ops to linalg ----------===//
//
// Each transformer op becomes linalg.generic ops on tensors. The lowering is
// written for clarity and for the codegen pipeline to transform (tile, fuse,
// vectorize): every generic has projected-permutation indexing maps except
// where an op gathers (embedding, rotary partner features), which read with
// tensor.extract inside the body.
//
//===----------------------------------------------------------------------===//

#include "kiln/Conversion/Passes.h"
#include "kiln/Dialect/Transformer/IR/Transformer.h"
#include "kiln/Dialect/Transformer/Transforms/Passes.h"

#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Func/Transforms/FuncConversions.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Dialect/Utils/StructuredOpsUtils.h"
#include "mlir/IR/AffineMap.h"
#include "mlir/Transforms/DialectConversion.h"

#include <cmath>

namespace kiln {
#define GEN_PASS_DEF_CONVERTTRANSFORMERTOLINALG
#include "kiln/Conversion/Passes.h.inc"
} // namespace kiln

using namespace mlir;
using namespace kiln::transformer;
using utils::IteratorType;

namespace {

//===----------------------------------------------------------------------===//
// Builders shared by the patterns
//===----------------------------------------------------------------------===//

Value indexConst(OpBuilder &b, Location loc, int64_t v) {
  return arith::ConstantIndexOp::create(b, loc, v);
}

Value floatConst(OpBuilder &b, Location loc, Type type, double v) {
  return arith::ConstantOp::create(b, loc, b.getFloatAttr(type, v));
}

OpFoldResult dimOf(OpBuilder &b, Location loc, Value tensor, int64_t d) {
  return tensor::getMixedSize(b, loc, tensor, d);
}

Value emptyTensor(OpBuilder &b, Location loc, ArrayRef<OpFoldResult> sizes,
                  Type elementType) {
  return tensor::EmptyOp::create(b, loc, sizes, elementType);
}

Value filled(OpBuilder &b, Location loc, ArrayRef<OpFoldResult> sizes,
             Type elementType, double value) {
  Value init = emptyTensor(b, loc, sizes, elementType);
  Value c = floatConst(b, loc, elementType, value);
  return linalg::FillOp::create(b, loc, ValueRange{c}, ValueRange{init})
      .getResult(0);
}

/// Map from `rank` loop dims to the listed dims.
AffineMap dimsMap(MLIRContext *ctx, unsigned rank, ArrayRef<unsigned> dims) {
  SmallVector<AffineExpr> exprs;
  for (unsigned d : dims)
    exprs.push_back(getAffineDimExpr(d, ctx));
  return AffineMap::get(rank, 0, exprs, ctx);
}

/// Map from `rank` loop dims to the first `n` of them.
AffineMap prefixMap(MLIRContext *ctx, unsigned rank, unsigned n) {
  SmallVector<unsigned> dims;
  for (unsigned i = 0; i < n; ++i)
    dims.push_back(i);
  return dimsMap(ctx, rank, dims);
}

/// acc + a * b for reductions. `reassoc` lets LLVM vectorize the reduction
/// (partial sums in vector lanes; the order is fixed at compile time, so
/// results are deterministic), `contract` lets it form FMAs.
Value mulAcc(OpBuilder &b, Location loc, Value acc, Value x, Value y) {
  auto fm = arith::FastMathFlagsAttr::get(b.getContext(),
                                          arith::FastMathFlags::reassoc |
                                              arith::FastMathFlags::contract);
  Value p = arith::MulFOp::create(b, loc, x, y, fm);
  return arith::AddFOp::create(b, loc, acc, p, fm);
}

/// acc + x for reductions (see mulAcc).
Value addAcc(OpBuilder &b, Location loc, Value acc, Value x) {
  auto fm = arith::FastMathFlagsAttr::get(b.getContext(),
                                          arith::FastMathFlags::reassoc |
                                              arith::FastMathFlags::contract);
  return arith::AddFOp::create(b, loc, acc, x, fm);
}

using BodyFn = function_ref<Value(OpBuilder &, Location, ValueRange)>;

/// A generic with one result whose body is `body(args)` (args: the input
/// elements followed by the output element).
Value genericOp(OpBuilder &b, Location loc, ValueRange inputs, Value init,
                ArrayRef<AffineMap> maps, ArrayRef<IteratorType> iterators,
                BodyFn body) {
  auto op = linalg::GenericOp::create(
      b, loc, TypeRange{init.getType()}, inputs, ValueRange{init}, maps,
      iterators, [&](OpBuilder &nb, Location nloc, ValueRange args) {
        linalg::YieldOp::create(nb, nloc, body(nb, nloc, args));
      });
  return op.getResult(0);
}

/// An elementwise generic over `like`'s shape; inputs share `like`'s shape
/// unless `maps` says otherwise.
Value elementwise(OpBuilder &b, Location loc, ValueRange inputs, Value like,
                  BodyFn body, ArrayRef<AffineMap> inputMaps = {}) {
  auto type = cast<RankedTensorType>(like.getType());
  unsigned rank = type.getRank();
  Value init = emptyTensor(b, loc, tensor::getMixedSizes(b, loc, like),
                           type.getElementType());
  AffineMap id = b.getMultiDimIdentityMap(rank);
  SmallVector<AffineMap> maps(inputMaps.begin(), inputMaps.end());
  while (maps.size() < inputs.size())
    maps.push_back(id);
  maps.push_back(id);
  SmallVector<IteratorType> iters(rank, IteratorType::parallel);
  return genericOp(b, loc, inputs, init, maps, iters, body);
}

/// Sums `body(args)` over the last dimension of `input`'s shape.
Value reduceLastDim(OpBuilder &b, Location loc, ValueRange inputs,
                    ArrayRef<AffineMap> inputMaps, Value shapeOf, BodyFn body) {
  auto type = cast<RankedTensorType>(shapeOf.getType());
  unsigned rank = type.getRank();
  SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(b, loc, shapeOf);
  sizes.pop_back();
  Value init = filled(b, loc, sizes, type.getElementType(), 0.0);
  SmallVector<AffineMap> maps(inputMaps.begin(), inputMaps.end());
  maps.push_back(prefixMap(b.getContext(), rank, rank - 1));
  SmallVector<IteratorType> iters(rank - 1, IteratorType::parallel);
  iters.push_back(IteratorType::reduction);
  return genericOp(b, loc, inputs, init, maps, iters, body);
}

/// y = x W^T (+ bias), for x [..., K] and W [N, K].
Value buildLinear(OpBuilder &b, Location loc, Value x, Value w, Value bias) {
  MLIRContext *ctx = b.getContext();
  auto xType = cast<RankedTensorType>(x.getType());
  auto wType = cast<RankedTensorType>(w.getType());
  Type elt = xType.getElementType();
  unsigned rank = xType.getRank();
  SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(b, loc, x);
  sizes.back() = b.getIndexAttr(wType.getDimSize(0));
  Value init;
  if (bias) {
    Value empty = emptyTensor(b, loc, sizes, elt);
    init = genericOp(
        b, loc, ValueRange{bias}, empty,
        {dimsMap(ctx, rank, {rank - 1}), b.getMultiDimIdentityMap(rank)},
        SmallVector<IteratorType>(rank, IteratorType::parallel),
        [](OpBuilder &, Location, ValueRange args) { return args[0]; });
  } else {
    init = filled(b, loc, sizes, elt, 0.0);
  }
  // Loops: the leading dims of x, then n (parallel), then k (reduction).
  unsigned loops = rank + 1;
  SmallVector<unsigned> xDims, outDims;
  for (unsigned i = 0; i + 1 < rank; ++i) {
    xDims.push_back(i);
    outDims.push_back(i);
  }
  xDims.push_back(rank);
  outDims.push_back(rank - 1);
  SmallVector<IteratorType> iters(rank, IteratorType::parallel);
  iters.push_back(IteratorType::reduction);
  return genericOp(b, loc, ValueRange{x, w}, init,
                   {dimsMap(ctx, loops, xDims),
                    dimsMap(ctx, loops, {rank - 1, rank}),
                    dimsMap(ctx, loops, outDims)},
                   iters, [](OpBuilder &nb, Location nloc, ValueRange args) {
                     return mulAcc(nb, nloc, args[2], args[0], args[1]);
                   });
}

Value applyActivation(OpBuilder &b, Location loc, Activation act, Value x) {
  Type t = x.getType();
  auto c = [&](double v) { return floatConst(b, loc, t, v); };
  switch (act) {
  case Activation::relu: {
    Value zero = c(0.0);
    Value pos =
        arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGT, x, zero);
    return arith::SelectOp::create(b, loc, pos, x, zero);
  }
  case Activation::gelu:
  case Activation::geglu: {
    // 0.5 x (1 + erf(x / sqrt(2)))
    Value e = math::ErfOp::create(
        b, loc, arith::MulFOp::create(b, loc, x, c(M_SQRT1_2)));
    Value half = arith::MulFOp::create(b, loc, x, c(0.5));
    return arith::MulFOp::create(b, loc, half,
                                 arith::AddFOp::create(b, loc, e, c(1.0)));
  }
  case Activation::gelu_tanh: {
    // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    Value x3 =
        arith::MulFOp::create(b, loc, arith::MulFOp::create(b, loc, x, x), x);
    Value inner = arith::AddFOp::create(
        b, loc, x, arith::MulFOp::create(b, loc, x3, c(0.044715)));
    Value th = math::TanhOp::create(
        b, loc, arith::MulFOp::create(b, loc, inner, c(0.7978845608028654)));
    Value half = arith::MulFOp::create(b, loc, x, c(0.5));
    return arith::MulFOp::create(b, loc, half,
                                 arith::AddFOp::create(b, loc, th, c(1.0)));
  }
  case Activation::silu:
  case Activation::swiglu: {
    // x / (1 + exp(-x))
    Value e = math::ExpOp::create(b, loc, arith::NegFOp::create(b, loc, x));
    return arith::DivFOp::create(b, loc, x,
                                 arith::AddFOp::create(b, loc, e, c(1.0)));
  }
  }
  llvm_unreachable("unknown activation");
}

/// Fails the match unless all tensors involved are f32 (the only element
/// type the current lowering computes in).
LogicalResult requireF32(Operation *op, ConversionPatternRewriter &rewriter) {
  for (Type t : llvm::concat<Type>(op->getOperandTypes(), op->getResultTypes()))
    if (auto rt = dyn_cast<RankedTensorType>(t))
      if (isa<FloatType>(rt.getElementType()) && !rt.getElementType().isF32())
        return rewriter.notifyMatchFailure(op, "only f32 is lowered today");
  return success();
}

//===----------------------------------------------------------------------===//
// Patterns
//===----------------------------------------------------------------------===//

struct EmbeddingLowering : public OpConversionPattern<EmbeddingOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(EmbeddingOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    if (failed(requireF32(op, rewriter)))
      return failure();
    Location loc = op.getLoc();
    Value ids = adaptor.getIds(), table = adaptor.getTable();
    auto tableType = cast<RankedTensorType>(table.getType());
    SmallVector<OpFoldResult> sizes = {
        dimOf(rewriter, loc, ids, 0), dimOf(rewriter, loc, ids, 1),
        rewriter.getIndexAttr(tableType.getDimSize(1))};
    Value init = emptyTensor(rewriter, loc, sizes, tableType.getElementType());
    Value maxId = indexConst(rewriter, loc, tableType.getDimSize(0) - 1);
    float scale = op.getScale().convertToFloat();
    Value zero = indexConst(rewriter, loc, 0);
    MLIRContext *ctx = rewriter.getContext();
    Value result = genericOp(
        rewriter, loc, ValueRange{ids}, init,
        {dimsMap(ctx, 3, {0, 1}), rewriter.getMultiDimIdentityMap(3)},
        SmallVector<IteratorType>(3, IteratorType::parallel),
        [&](OpBuilder &b, Location l, ValueRange args) {
          Value id =
              arith::IndexCastOp::create(b, l, b.getIndexType(), args[0]);
          // Out-of-range ids are clamped: never read outside the table.
          id = arith::MinSIOp::create(
              b, l, arith::MaxSIOp::create(b, l, id, zero), maxId);
          Value d = linalg::IndexOp::create(b, l, 2);
          Value e = tensor::ExtractOp::create(b, l, table, ValueRange{id, d});
          if (scale == 1.0f)
            return e;
          return arith::MulFOp::create(
                     b, l, e, floatConst(b, l, tableType.getElementType(), scale))
              .getResult();
        });
    rewriter.replaceOp(op, result);
    return success();
  }
};

/// x + PE[offset + s]: the angle p / base^(2i / dim) and its sine or cosine
/// in f64 (libm), rounded once to the element type.
struct SinusoidalPositionLowering
    : public OpConversionPattern<SinusoidalPositionOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(SinusoidalPositionOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    if (failed(requireF32(op, rewriter)))
      return failure();
    Location loc = op.getLoc();
    Value x = adaptor.getInput();
    auto type = cast<RankedTensorType>(x.getType());
    Type elt = type.getElementType();
    int64_t dim = type.getDimSize(2);
    double base = op.getBase().convertToFloat();
    Value offset = adaptor.getOffset() ? adaptor.getOffset()
                                       : indexConst(rewriter, loc, 0);
    Value result = elementwise(
        rewriter, loc, ValueRange{x}, x,
        [&](OpBuilder &b, Location l, ValueRange args) {
          Type f64 = b.getF64Type();
          Value s = linalg::IndexOp::create(b, l, 1);
          Value d = linalg::IndexOp::create(b, l, 2);
          Value p = arith::AddIOp::create(b, l, s, offset);
          Value pairStart = arith::SubIOp::create(
              b, l, d, arith::RemUIOp::create(b, l, d, indexConst(b, l, 2)));
          auto toF64 = [&](Value idx) -> Value {
            return arith::UIToFPOp::create(
                b, l, f64,
                arith::IndexCastUIOp::create(b, l, b.getI64Type(), idx));
          };
          Value expo = arith::DivFOp::create(b, l, toF64(pairStart),
                                             floatConst(b, l, f64, dim));
          Value angle = arith::DivFOp::create(
              b, l, toF64(p),
              math::PowFOp::create(b, l, floatConst(b, l, f64, base), expo));
          Value even = arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq,
                                             pairStart, d);
          Value pe = arith::SelectOp::create(
              b, l, even, math::SinOp::create(b, l, angle),
              math::CosOp::create(b, l, angle));
          return arith::AddFOp::create(b, l, args[0],
                                       arith::TruncFOp::create(b, l, elt, pe))
              .getResult();
        });
    rewriter.replaceOp(op, result);
    return success();
  }
};

struct PaddingMaskLowering : public OpConversionPattern<PaddingMaskOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(PaddingMaskOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value ids = adaptor.getIds();
    Type idType = cast<RankedTensorType>(ids.getType()).getElementType();
    Value init = emptyTensor(rewriter, loc,
                             tensor::getMixedSizes(rewriter, loc, ids),
                             rewriter.getI1Type());
    AffineMap id2 = rewriter.getMultiDimIdentityMap(2);
    int64_t pad = op.getPadId();
    Value result = genericOp(
        rewriter, loc, ValueRange{ids}, init, {id2, id2},
        SmallVector<IteratorType>(2, IteratorType::parallel),
        [&](OpBuilder &b, Location l, ValueRange args) {
          Value padValue = arith::ConstantOp::create(
              b, l, b.getIntegerAttr(idType, pad));
          return arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq, args[0],
                                       padValue)
              .getResult();
        });
    rewriter.replaceOp(op, result);
    return success();
  }
};

struct PositionEmbeddingLowering
    : public OpConversionPattern<PositionEmbeddingOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(PositionEmbeddingOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    if (failed(requireF32(op, rewriter)))
      return failure();
    Location loc = op.getLoc();
    Value table = adaptor.getTable();
    Value offset = adaptor.getOffset() ? adaptor.getOffset()
                                       : indexConst(rewriter, loc, 0);
    Value result = elementwise(
        rewriter, loc, ValueRange{adaptor.getInput()}, adaptor.getInput(),
        [&](OpBuilder &b, Location l, ValueRange args) {
          Value s = linalg::IndexOp::create(b, l, 1);
          Value d = linalg::IndexOp::create(b, l, 2);
          Value row = arith::AddIOp::create(b, l, s, offset);
          Value pe = tensor::ExtractOp::create(b, l, table, ValueRange{row, d});
          return arith::AddFOp::create(b, l, args[0], pe).getResult();
        });
    rewriter.replaceOp(op, result);
    return success();
  }
};

struct RopeLowering : public OpConversionPattern<RopeOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(RopeOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    if (failed(requireF32(op, rewriter)))
      return failure();
    Location loc = op.getLoc();
    Value x = adaptor.getInput();
    Type elt = cast<RankedTensorType>(x.getType()).getElementType();
    int64_t headDim = op.getHeadDim(), half = headDim / 2;
    bool interleaved = op.getStyle() == RopeStyle::interleaved;
    float theta = op.getTheta().convertToFloat();
    Value offset = adaptor.getOffset() ? adaptor.getOffset()
                                       : indexConst(rewriter, loc, 0);
    // inv_freq[i] = 1 / theta^(2i / head_dim), folded at compile time with
    // the f32 operations the kernel used to run per element (same libm).
    SmallVector<float> invFreq;
    for (int64_t i = 0; i < half; ++i)
      invFreq.push_back(1.0f /
                        std::pow(theta, (float)i * 2.0f / (float)headDim));
    auto freqType = RankedTensorType::get({half}, elt);
    Value freqs = arith::ConstantOp::create(
        rewriter, loc, DenseElementsAttr::get(freqType, ArrayRef(invFreq)));
    // cos and sin of position * inv_freq: one [seq, head_dim / 2] table per
    // op, shared by all its heads.
    MLIRContext *ctx = rewriter.getContext();
    SmallVector<OpFoldResult> tableSizes = {dimOf(rewriter, loc, x, 1),
                                            rewriter.getIndexAttr(half)};
    Value cosInit = emptyTensor(rewriter, loc, tableSizes, elt);
    Value sinInit = emptyTensor(rewriter, loc, tableSizes, elt);
    auto tables = linalg::GenericOp::create(
        rewriter, loc, TypeRange{cosInit.getType(), sinInit.getType()},
        ValueRange{freqs}, ValueRange{cosInit, sinInit},
        ArrayRef<AffineMap>{dimsMap(ctx, 2, {1}), dimsMap(ctx, 2, {0, 1}),
                            dimsMap(ctx, 2, {0, 1})},
        SmallVector<IteratorType>(2, IteratorType::parallel),
        [&](OpBuilder &b, Location l, ValueRange args) {
          Value s = linalg::IndexOp::create(b, l, 0);
          Value p = arith::AddIOp::create(b, l, s, offset);
          Value pF = arith::SIToFPOp::create(
              b, l, elt, arith::IndexCastOp::create(b, l, b.getI64Type(), p));
          Value angle = arith::MulFOp::create(b, l, pF, args[0]);
          linalg::YieldOp::create(b, l,
                                  ValueRange{math::CosOp::create(b, l, angle),
                                             math::SinOp::create(b, l, angle)});
        });
    Value cosT = tables.getResult(0), sinT = tables.getResult(1);
    Value result = elementwise(
        rewriter, loc, ValueRange{x}, x,
        [&](OpBuilder &b, Location l, ValueRange args) {
          Value bIdx = linalg::IndexOp::create(b, l, 0);
          Value s = linalg::IndexOp::create(b, l, 1);
          Value c = linalg::IndexOp::create(b, l, 2);
          Value j = arith::RemUIOp::create(b, l, c, indexConst(b, l, headDim));
          // Pair index i, whether c is the first of its pair, the partner.
          Value i, first, partner;
          if (interleaved) {
            i = arith::DivUIOp::create(b, l, j, indexConst(b, l, 2));
            Value odd = arith::RemUIOp::create(b, l, j, indexConst(b, l, 2));
            first = arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq, odd,
                                          indexConst(b, l, 0));
            partner = arith::SelectOp::create(
                b, l, first,
                arith::AddIOp::create(b, l, c, indexConst(b, l, 1)),
                arith::SubIOp::create(b, l, c, indexConst(b, l, 1)));
          } else {
            i = arith::RemUIOp::create(b, l, j, indexConst(b, l, half));
            first = arith::CmpIOp::create(b, l, arith::CmpIPredicate::ult, j,
                                          indexConst(b, l, half));
            partner = arith::SelectOp::create(
                b, l, first,
                arith::AddIOp::create(b, l, c, indexConst(b, l, half)),
                arith::SubIOp::create(b, l, c, indexConst(b, l, half)));
          }
          Value cosA = tensor::ExtractOp::create(b, l, cosT, ValueRange{s, i});
          Value sinA = tensor::ExtractOp::create(b, l, sinT, ValueRange{s, i});
          Value other =
              tensor::ExtractOp::create(b, l, x, ValueRange{bIdx, s, partner});
          // first: x cos - other sin; second: x cos + other sin
          Value rotated = arith::MulFOp::create(b, l, other, sinA);
          Value signedRot = arith::SelectOp::create(
              b, l, first, arith::NegFOp::create(b, l, rotated), rotated);
          return arith::AddFOp::create(
                     b, l, arith::MulFOp::create(b, l, args[0], cosA),
                     signedRot)
              .getResult();
        });
    // Each element reads its partner within the same head: the kernel of
    // the product that computes x may apply RoPE to a block of whole heads
    // (kiln-contraction-kernels).
    result.getDefiningOp()->setAttr(
        kiln::kColumnGroupAttr, rewriter.getI64IntegerAttr(headDim));
    rewriter.replaceOp(op, result);
    return success();
  }
};

struct LayerNormLowering : public OpConversionPattern<LayerNormOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(LayerNormOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    if (failed(requireF32(op, rewriter)))
      return failure();
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    Value x = adaptor.getInput();
    auto type = cast<RankedTensorType>(x.getType());
    unsigned rank = type.getRank();
    Type elt = type.getElementType();
    double dim = (double)type.getDimSize(rank - 1);
    double eps = op.getEpsilon().convertToFloat();
    AffineMap id = rewriter.getMultiDimIdentityMap(rank);
    AffineMap rows = prefixMap(ctx, rank, rank - 1);
    AffineMap last = dimsMap(ctx, rank, {rank - 1});
    Value sum = reduceLastDim(rewriter, loc, ValueRange{x}, {id}, x,
                              [](OpBuilder &b, Location l, ValueRange a) {
                                return addAcc(b, l, a[1], a[0]);
                              });
    Value sqDev = reduceLastDim(rewriter, loc, ValueRange{x, sum}, {id, rows},
                                x, [&](OpBuilder &b, Location l, ValueRange a) {
                                  Value mean = arith::DivFOp::create(
                                      b, l, a[1], floatConst(b, l, elt, dim));
                                  Value dev =
                                      arith::SubFOp::create(b, l, a[0], mean);
                                  return mulAcc(b, l, a[2], dev, dev);
                                });
    Value result = elementwise(
        rewriter, loc,
        ValueRange{x, sum, sqDev, adaptor.getGamma(), adaptor.getBeta()}, x,
        [&](OpBuilder &b, Location l, ValueRange a) {
          Value n = floatConst(b, l, elt, dim);
          Value mean = arith::DivFOp::create(b, l, a[1], n);
          Value var = arith::DivFOp::create(b, l, a[2], n);
          Value inv = math::RsqrtOp::create(
              b, l,
              arith::AddFOp::create(b, l, var, floatConst(b, l, elt, eps)));
          Value norm = arith::MulFOp::create(
              b, l, arith::SubFOp::create(b, l, a[0], mean), inv);
          return arith::AddFOp::create(
                     b, l, arith::MulFOp::create(b, l, norm, a[3]), a[4])
              .getResult();
        },
        {id, rows, rows, last, last});
    rewriter.replaceOp(op, result);
    return success();
  }
};

struct RMSNormLowering : public OpConversionPattern<RMSNormOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(RMSNormOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    if (failed(requireF32(op, rewriter)))
      return failure();
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    Value x = adaptor.getInput();
    auto type = cast<RankedTensorType>(x.getType());
    unsigned rank = type.getRank();
    Type elt = type.getElementType();
    double dim = (double)type.getDimSize(rank - 1);
    double eps = op.getEpsilon().convertToFloat();
    AffineMap id = rewriter.getMultiDimIdentityMap(rank);
    Value sumSq = reduceLastDim(rewriter, loc, ValueRange{x}, {id}, x,
                                [](OpBuilder &b, Location l, ValueRange a) {
                                  return mulAcc(b, l, a[1], a[0], a[0]);
                                });
    Value result = elementwise(
        rewriter, loc, ValueRange{x, sumSq, adaptor.getGamma()}, x,
        [&](OpBuilder &b, Location l, ValueRange a) {
          Value ms =
              arith::DivFOp::create(b, l, a[1], floatConst(b, l, elt, dim));
          Value inv = math::RsqrtOp::create(
              b, l,
              arith::AddFOp::create(b, l, ms, floatConst(b, l, elt, eps)));
          return arith::MulFOp::create(
                     b, l, arith::MulFOp::create(b, l, a[0], inv), a[2])
              .getResult();
        },
        {id, prefixMap(ctx, rank, rank - 1), dimsMap(ctx, rank, {rank - 1})});
    rewriter.replaceOp(op, result);
    return success();
  }
};

struct LinearLowering : public OpConversionPattern<LinearOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(LinearOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    if (failed(requireF32(op, rewriter)))
      return failure();
    rewriter.replaceOp(op,
                       buildLinear(rewriter, op.getLoc(), adaptor.getInput(),
                                   adaptor.getWeight(), adaptor.getBias()));
    return success();
  }
};

struct AddLowering : public OpConversionPattern<AddOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(AddOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    if (failed(requireF32(op, rewriter)))
      return failure();
    Value result = elementwise(
        rewriter, op.getLoc(), ValueRange{adaptor.getLhs(), adaptor.getRhs()},
        adaptor.getLhs(), [](OpBuilder &b, Location l, ValueRange a) {
          return arith::AddFOp::create(b, l, a[0], a[1]).getResult();
        });
    rewriter.replaceOp(op, result);
    return success();
  }
};

struct FeedForwardLowering : public OpConversionPattern<FeedForwardOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(FeedForwardOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    if (failed(requireF32(op, rewriter)))
      return failure();
    Location loc = op.getLoc();
    Activation act = op.getActivation();
    Value x = adaptor.getInput();
    Value up =
        buildLinear(rewriter, loc, x, adaptor.getWUp(), adaptor.getBUp());
    Value hidden;
    if (op.isGated()) {
      Value gate = buildLinear(rewriter, loc, x, adaptor.getWGate(), Value());
      hidden =
          elementwise(rewriter, loc, ValueRange{gate, up}, up,
                      [&](OpBuilder &b, Location l, ValueRange a) {
                        Value g = applyActivation(b, l, act, a[0]);
                        return arith::MulFOp::create(b, l, g, a[1]).getResult();
                      });
    } else {
      hidden = elementwise(rewriter, loc, ValueRange{up}, up,
                           [&](OpBuilder &b, Location l, ValueRange a) {
                             return applyActivation(b, l, act, a[0]);
                           });
    }
    rewriter.replaceOp(op, buildLinear(rewriter, loc, hidden,
                                       adaptor.getWDown(), adaptor.getBDown()));
    return success();
  }
};

/// Attention as one fused kernel: `scf.forall` over (batch, head, query)
/// rows, each streaming over its visible keys in blocks of kKeyBlock with an
/// online softmax (running max m, running sum l, accumulator acc of head_dim
/// lanes, rescaled by exp(m_old - m_new) when the max grows). The score
/// matrix is never materialised: memory is O(head_dim) per row whatever the
/// context, and keys past the causal limit are not visited at all. Query
/// head h reads kv head h / (num_heads / num_kv_heads) (MHA, GQA, MQA); with
/// GQA (groups of up to 8, at least 4 kv heads) one iteration serves a whole
/// group, so each key/value row is read once per kv head.
/// Vectors are head_dim wide; the backend splits them into registers.
struct AttentionLowering : public OpConversionPattern<AttentionOp> {
  using OpConversionPattern::OpConversionPattern;
  static constexpr int64_t kKeyBlock = 16;

  LogicalResult
  matchAndRewrite(AttentionOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    if (failed(requireF32(op, rewriter)))
      return failure();
    Location loc = op.getLoc();
    Value q = adaptor.getQuery(), k = adaptor.getKey(), v = adaptor.getValue();
    auto qType = cast<RankedTensorType>(q.getType());
    Type elt = qType.getElementType();
    int64_t heads = op.getNumHeads(), headDim = op.getHeadDim();
    int64_t group = heads / op.getNumKvHeads();
    double scale = op.getScale().convertToFloat();
    bool causal = op.getMode() == AttentionMode::causal;
    Value keyMask = adaptor.getKeyMask();
    OpBuilder &b = rewriter;
    Value offset =
        adaptor.getOffset() ? adaptor.getOffset() : indexConst(b, loc, 0);
    auto c = [&](int64_t v) { return indexConst(b, loc, v); };
    auto fconst = [&](double v) { return floatConst(b, loc, elt, v); };
    const double inf = std::numeric_limits<double>::infinity();
    auto fm = arith::FastMathFlagsAttr::get(
        b.getContext(),
        arith::FastMathFlags::reassoc | arith::FastMathFlags::contract);

    Value batch = tensor::DimOp::create(b, loc, q, 0);
    Value seq = tensor::DimOp::create(b, loc, q, 1);
    Value keys = tensor::DimOp::create(b, loc, k, 1);
    VectorType rowType = VectorType::get({headDim}, elt);
    VectorType blockType = VectorType::get({kKeyBlock}, elt);
    Value init = emptyTensor(b, loc, tensor::getMixedSizes(b, loc, q), elt);

    // GQA: the query heads of one kv head share each key and value row read
    // (one pass over the cache per kv head, not per query head) when there
    // are enough kv heads to spread over threads.
    int64_t perIter = (group > 1 && group <= 8 && op.getNumKvHeads() >= 4)
                          ? group
                          : 1;
    auto forall = scf::ForallOp::create(
        b, loc,
        ArrayRef<OpFoldResult>{batch, b.getIndexAttr(heads / perIter), seq},
        ValueRange{init}, std::nullopt);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(forall.getBody()->getTerminator());
    Value bi = forall.getInductionVars()[0], hIt = forall.getInductionVars()[1],
          si = forall.getInductionVars()[2];
    Value shared = forall.getRegionIterArgs()[0];
    Value pad = fconst(0.0);
    auto readRow = [&](Value t, Value row, Value col) {
      return vector::TransferReadOp::create(b, loc, rowType, t,
                                            ValueRange{bi, row, col}, pad,
                                            ArrayRef<bool>{true})
          .getResult();
    };
    Value h0 = arith::MulIOp::create(b, loc, hIt, c(perIter));
    Value kvCol = arith::MulIOp::create(
        b, loc, arith::DivUIOp::create(b, loc, h0, c(group)), c(headDim));
    // The queries, pre-scaled.
    SmallVector<Value> qCols, qRows;
    for (int64_t g = 0; g < perIter; ++g) {
      Value col = arith::MulIOp::create(
          b, loc, g ? arith::AddIOp::create(b, loc, h0, c(g)).getResult() : h0,
          c(headDim));
      qCols.push_back(col);
      qRows.push_back(arith::MulFOp::create(
          b, loc, readRow(q, si, col),
          vector::BroadcastOp::create(b, loc, rowType, fconst(scale))));
    }
    // Keys [0, limit) are visible: all, or up to the query's own position.
    Value limit = keys;
    if (causal)
      limit = arith::MinSIOp::create(
          b, loc, keys,
          arith::AddIOp::create(b, loc, arith::AddIOp::create(b, loc, si, offset),
                                c(1)));
    Value lastKey = arith::SubIOp::create(b, loc, keys, c(1));
    Value zeroRow = arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(rowType, b.getFloatAttr(elt, 0.0)));
    auto flags =
        arith::FastMathFlags::reassoc | arith::FastMathFlags::contract;

    // Per head: running max, running sum, accumulator.
    SmallVector<Value> inits;
    for (int64_t g = 0; g < perIter; ++g)
      inits.append({fconst(-inf), fconst(0.0), zeroRow});
    auto blocks = scf::ForOp::create(
        b, loc, c(0), limit, c(kKeyBlock), inits,
        [&](OpBuilder &nb, Location, Value t0, ValueRange it) {
          OpBuilder::InsertionGuard g(b);
          b.setInsertionPointToStart(nb.getInsertionBlock());
          // Scores of the block; keys past the limit read the last key
          // (in bounds) and are masked to -inf.
          SmallVector<SmallVector<Value>> scores(perIter);
          SmallVector<Value> visible, rows;
          for (int64_t j = 0; j < kKeyBlock; ++j) {
            Value t = arith::AddIOp::create(b, loc, t0, c(j));
            Value tc = arith::MinSIOp::create(b, loc, t, lastKey);
            rows.push_back(tc);
            Value kRow = readRow(k, tc, kvCol);
            for (int64_t hg = 0; hg < perIter; ++hg) {
              Value prod = arith::MulFOp::create(b, loc, qRows[hg], kRow, fm);
              scores[hg].push_back(vector::ReductionOp::create(
                  b, loc, vector::CombiningKind::ADD, prod, flags));
            }
            Value vis = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt,
                                              t, limit);
            if (keyMask) {
              // key_mask[b, t] is true where the key is padding.
              Value padded = tensor::ExtractOp::create(b, loc, keyMask,
                                                       ValueRange{bi, tc});
              vis = arith::AndIOp::create(
                  b, loc, vis,
                  arith::XOrIOp::create(
                      b, loc, padded,
                      arith::ConstantOp::create(b, loc, b.getBoolAttr(true))));
            }
            visible.push_back(vis);
          }
          Value mask = vector::FromElementsOp::create(
              b, loc, VectorType::get({kKeyBlock}, b.getI1Type()), visible);
          Value negInf =
              vector::BroadcastOp::create(b, loc, blockType, fconst(-inf));
          SmallVector<Value> probs, results, accs;
          for (int64_t hg = 0; hg < perIter; ++hg) {
            Value m = it[3 * hg], l = it[3 * hg + 1], acc = it[3 * hg + 2];
            Value sv =
                vector::FromElementsOp::create(b, loc, blockType, scores[hg]);
            sv = arith::SelectOp::create(b, loc, mask, sv, negInf);
            Value blockMax = vector::ReductionOp::create(
                b, loc, vector::CombiningKind::MAXIMUMF, sv);
            Value mNew = arith::MaximumFOp::create(b, loc, m, blockMax);
            // While every key so far is masked, m is -inf: shift by 0.
            Value isInf = arith::CmpFOp::create(
                b, loc, arith::CmpFPredicate::OEQ, mNew, fconst(-inf));
            Value shift =
                arith::SelectOp::create(b, loc, isInf, fconst(0.0), mNew);
            Value corr = math::ExpOp::create(
                b, loc, arith::SubFOp::create(b, loc, m, shift));
            Value p = math::ExpOp::create(
                b, loc,
                arith::SubFOp::create(
                    b, loc, sv,
                    vector::BroadcastOp::create(b, loc, blockType, shift)));
            Value lNew = arith::AddFOp::create(
                b, loc, arith::MulFOp::create(b, loc, l, corr),
                vector::ReductionOp::create(b, loc, vector::CombiningKind::ADD,
                                            p, flags));
            probs.push_back(p);
            results.append({mNew, lNew});
            accs.push_back(arith::MulFOp::create(
                b, loc, acc,
                vector::BroadcastOp::create(b, loc, rowType, corr)));
          }
          for (int64_t j = 0; j < kKeyBlock; ++j) {
            Value vRow = readRow(v, rows[j], kvCol);
            for (int64_t hg = 0; hg < perIter; ++hg) {
              Value pj = vector::ExtractOp::create(b, loc, probs[hg],
                                                   ArrayRef<int64_t>{j});
              accs[hg] = vector::FMAOp::create(
                  b, loc, vector::BroadcastOp::create(b, loc, rowType, pj),
                  vRow, accs[hg]);
            }
          }
          SmallVector<Value> yields;
          for (int64_t hg = 0; hg < perIter; ++hg)
            yields.append({results[2 * hg], results[2 * hg + 1], accs[hg]});
          scf::YieldOp::create(b, loc, yields);
        });
    SmallVector<Value> rowTensors;
    auto rowTensorType = RankedTensorType::get({1, 1, headDim}, elt);
    for (int64_t hg = 0; hg < perIter; ++hg) {
      Value l = blocks.getResult(3 * hg + 1), acc = blocks.getResult(3 * hg + 2);
      Value outRow = arith::DivFOp::create(
          b, loc, acc, vector::BroadcastOp::create(b, loc, rowType, l));
      rowTensors.push_back(
          vector::TransferWriteOp::create(
              b, loc, outRow,
              tensor::EmptyOp::create(b, loc, rowTensorType.getShape(), elt),
              ValueRange{c(0), c(0), c(0)}, ArrayRef<bool>{true})
              .getResult());
    }
    b.setInsertionPointToStart(forall.getTerminator().getBody());
    SmallVector<OpFoldResult> sizes{b.getIndexAttr(1), b.getIndexAttr(1),
                                    b.getIndexAttr(headDim)};
    SmallVector<OpFoldResult> strides(3, b.getIndexAttr(1));
    for (int64_t hg = 0; hg < perIter; ++hg) {
      SmallVector<OpFoldResult> offsets{bi, si, qCols[hg]};
      tensor::ParallelInsertSliceOp::create(b, loc, rowTensors[hg], shared,
                                            offsets, sizes, strides);
    }
    rewriter.replaceOp(op, forall.getResult(0));
    return success();
  }
};

/// Offsets/sizes/strides selecting rows [start, start + len) of one k or v
/// plane of a cache layer: cache[layer, kv, :, start:start+len, :].
struct CacheSlice {
  SmallVector<OpFoldResult> offsets, sizes, strides;
};
CacheSlice cacheSlice(OpBuilder &b, KVCacheType cache, int64_t layer,
                      int64_t kv, OpFoldResult start, OpFoldResult len) {
  CacheSlice s;
  s.offsets = {b.getIndexAttr(layer), b.getIndexAttr(kv), b.getIndexAttr(0),
               start, b.getIndexAttr(0)};
  s.sizes = {b.getIndexAttr(1), b.getIndexAttr(1),
             b.getIndexAttr(cache.getBatch()), len,
             b.getIndexAttr(cache.getWidth())};
  s.strides.assign(5, b.getIndexAttr(1));
  return s;
}

/// Declares `void kiln_fatal_position(i64 pos, i64 rows, i64 capacity)`
/// (defined by the runtime, see kiln_runtime.h) in the enclosing module.
func::FuncOp getOrInsertFatalPosition(OpBuilder &b, Operation *op) {
  auto module = op->getParentOfType<ModuleOp>();
  if (auto f = module.lookupSymbol<func::FuncOp>("kiln_fatal_position"))
    return f;
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(module.getBody());
  auto i64 = b.getI64Type();
  auto f = func::FuncOp::create(b, module.getLoc(), "kiln_fatal_position",
                                b.getFunctionType({i64, i64, i64}, {}));
  f.setPrivate();
  return f;
}

struct KVCacheAppendLowering : public OpConversionPattern<KVCacheAppendOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(KVCacheAppendOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    KVCacheType cacheType = op.getCache().getType();
    Value cache = adaptor.getCache();
    OpFoldResult len = dimOf(rewriter, loc, adaptor.getKey(), 1);
    // Never write outside the cache, whatever the caller passes: past the
    // capacity the runtime's kiln_fatal_position reports and exits (the
    // runtime and the C API validate positions before calling, so this is a
    // backstop for direct callers of the entry points).
    Value rows = getValueOrCreateConstantIndexOp(rewriter, loc, len);
    Value end =
        arith::AddIOp::create(rewriter, loc, adaptor.getPosition(), rows);
    Value capacity = indexConst(rewriter, loc, cacheType.getCapacity());
    Value overflow = arith::CmpIOp::create(
        rewriter, loc, arith::CmpIPredicate::ugt, end, capacity);
    auto fatal = getOrInsertFatalPosition(rewriter, op);
    scf::IfOp::create(rewriter, loc, overflow, [&](OpBuilder &b, Location l) {
      auto i64 = b.getI64Type();
      SmallVector<Value> args;
      for (Value v : {adaptor.getPosition(), rows, capacity})
        args.push_back(arith::IndexCastOp::create(b, l, i64, v));
      func::CallOp::create(b, l, fatal, args);
      scf::YieldOp::create(b, l);
    });
    int64_t kv = 0;
    for (Value rows : {adaptor.getKey(), adaptor.getValue()}) {
      CacheSlice s = cacheSlice(rewriter, cacheType, op.getLayer(), kv++,
                                adaptor.getPosition(), len);
      cache = tensor::InsertSliceOp::create(rewriter, loc, rows, cache,
                                            s.offsets, s.sizes, s.strides);
    }
    rewriter.replaceOp(op, cache);
    return success();
  }
};

struct KVCacheReadLowering : public OpConversionPattern<KVCacheReadOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(KVCacheReadOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    KVCacheType cacheType = op.getCache().getType();
    SmallVector<Value> results;
    for (auto [kv, type] : llvm::enumerate(op.getResultTypes())) {
      CacheSlice s = cacheSlice(rewriter, cacheType, op.getLayer(), kv,
                                rewriter.getIndexAttr(0), adaptor.getLength());
      results.push_back(tensor::ExtractSliceOp::create(
          rewriter, loc, cast<RankedTensorType>(type), adaptor.getCache(),
          s.offsets, s.sizes, s.strides));
    }
    rewriter.replaceOp(op, results);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// Weights
//===----------------------------------------------------------------------===//

/// Gives every function that reads weights the two leading buffer arguments
/// and replaces each `transformer.weight` by a view into the weight buffer.
LogicalResult lowerWeights(func::FuncOp func) {
  SmallVector<WeightOp> weights;
  func.walk([&](WeightOp op) { weights.push_back(op); });
  if (weights.empty())
    return success();
  MLIRContext *ctx = func.getContext();
  OpBuilder b(ctx);
  Location loc = func.getLoc();
  auto bytesType = MemRefType::get({ShapedType::kDynamic}, b.getI8Type());
  auto offsetsType = MemRefType::get({ShapedType::kDynamic}, b.getIndexType());
  if (failed(func.insertArguments(
          {0, 0}, {bytesType, offsetsType},
          {b.getDictionaryAttr(
               b.getNamedAttr("transformer.weights", b.getUnitAttr())),
           b.getDictionaryAttr(
               b.getNamedAttr("transformer.weight_offsets", b.getUnitAttr()))},
          {loc, loc})))
    return failure();
  // Result attributes that name an argument position follow the shift.
  for (unsigned i = 0, e = func.getNumResults(); i < e; ++i)
    if (auto tied = func.getResultAttrOfType<IntegerAttr>(i, kTiedArgAttr))
      func.setResultAttr(i, kTiedArgAttr,
                         b.getI64IntegerAttr(tied.getInt() + 2));
  Value bytes = func.getArgument(0), offsets = func.getArgument(1);
  for (WeightOp op : weights) {
    b.setInsertionPoint(op);
    Location l = op.getLoc();
    auto type = cast<RankedTensorType>(op.getType());
    Value index = indexConst(b, l, op.getIndex());
    Value offset = memref::LoadOp::create(b, l, offsets, ValueRange{index});
    auto viewType = MemRefType::get(type.getShape(), type.getElementType());
    Value view =
        memref::ViewOp::create(b, l, viewType, bytes, offset, ValueRange{});
    Value tensor = bufferization::ToTensorOp::create(b, l, type, view,
                                                     /*restrict=*/true,
                                                     /*writable=*/false);
    op.replaceAllUsesWith(tensor);
    op.erase();
  }
  return success();
}

struct ConvertTransformerToLinalgPass
    : public kiln::impl::ConvertTransformerToLinalgBase<
          ConvertTransformerToLinalgPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    for (auto func : module.getOps<func::FuncOp>())
      if (failed(lowerWeights(func)))
        return signalPassFailure();

    TypeConverter converter;
    converter.addConversion([](Type t) { return t; });
    kiln::populateTransformerTypeConversions(converter);

    ConversionTarget target(*ctx);
    target.addIllegalDialect<TransformerDialect>();
    target.addLegalDialect<linalg::LinalgDialect, tensor::TensorDialect,
                           arith::ArithDialect, math::MathDialect,
                           memref::MemRefDialect, scf::SCFDialect,
                           bufferization::BufferizationDialect,
                           vector::VectorDialect>();
    target.addDynamicallyLegalOp<func::FuncOp>([&](func::FuncOp op) {
      return converter.isSignatureLegal(op.getFunctionType()) &&
             converter.isLegal(&op.getBody());
    });
    target.addDynamicallyLegalOp<func::ReturnOp, func::CallOp>(
        [&](Operation *op) { return converter.isLegal(op); });

    RewritePatternSet patterns(ctx);
    kiln::populateTransformerToLinalgPatterns(converter, patterns);
    populateFunctionOpInterfaceTypeConversionPattern<func::FuncOp>(patterns,
                                                                   converter);
    populateReturnOpTypeConversionPattern(patterns, converter);
    populateCallOpTypeConversionPattern(patterns, converter);
    if (failed(applyPartialConversion(module, target, std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace

void kiln::populateTransformerTypeConversions(TypeConverter &converter) {
  converter.addConversion(
      [](KVCacheType t) -> Type { return t.getStorageType(); });
}

void kiln::populateTransformerToLinalgPatterns(TypeConverter &converter,
                                               RewritePatternSet &patterns) {
  patterns.add<EmbeddingLowering, PositionEmbeddingLowering,
               SinusoidalPositionLowering, PaddingMaskLowering, RopeLowering,
               LayerNormLowering, RMSNormLowering, LinearLowering, AddLowering,
               FeedForwardLowering, AttentionLowering, KVCacheAppendLowering,
               KVCacheReadLowering>(converter, patterns.getContext());
}
