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
#include "kiln/Conversion/Dequantize.h"
#include "LoweringUtils.h"
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
using namespace kiln::lowering;
using utils::IteratorType;

namespace {

//===----------------------------------------------------------------------===//
// Builders shared by the patterns
//===----------------------------------------------------------------------===//

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
/// unless `maps` says otherwise. The result has `like`'s element type unless
/// `resultElement` is given.
Value elementwise(OpBuilder &b, Location loc, ValueRange inputs, Value like,
                  BodyFn body, ArrayRef<AffineMap> inputMaps = {},
                  Type resultElement = {}) {
  auto type = cast<RankedTensorType>(like.getType());
  unsigned rank = type.getRank();
  Value init =
      emptyTensor(b, loc, tensor::getMixedSizes(b, loc, like),
                  resultElement ? resultElement : type.getElementType());
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
  case Activation::gelu_tanh:
  case Activation::geglu_tanh: {
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

//===----------------------------------------------------------------------===//
// Patterns
//===----------------------------------------------------------------------===//

struct EmbeddingLowering : public OpConversionPattern<EmbeddingOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(EmbeddingOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    if (failed(requireF32(op, rewriter, /*storedWeights=*/true)))
      return failure();
    Location loc = op.getLoc();
    Value ids = adaptor.getIds(), table = adaptor.getTable();
    // A stored table is read (and dequantized) only at the rows looked up.
    auto tableType = cast<RankedTensorType>(op.getTable().getType());
    std::optional<WeightEncoding> encoding = getWeightEncoding(tableType);
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
          Value e = kiln::weightElement(b, l, encoding, table, id, d);
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
    if (failed(requireF32(op, rewriter, /*storedWeights=*/true)))
      return failure();
    Location loc = op.getLoc();
    Value table = adaptor.getTable();
    std::optional<WeightEncoding> encoding =
        getWeightEncoding(op.getTable().getType());
    Value offset = adaptor.getOffset() ? adaptor.getOffset()
                                       : indexConst(rewriter, loc, 0);
    Value result = elementwise(
        rewriter, loc, ValueRange{adaptor.getInput()}, adaptor.getInput(),
        [&](OpBuilder &b, Location l, ValueRange args) {
          Value s = linalg::IndexOp::create(b, l, 1);
          Value d = linalg::IndexOp::create(b, l, 2);
          Value row = arith::AddIOp::create(b, l, s, offset);
          Value pe = kiln::weightElement(b, l, encoding, table, row, d);
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
    // inv_freq[i] = 1 / theta^(2i / head_dim) / freq_factors[i], folded at
    // compile time with the f32 operations the kernel used to run per
    // element (same libm).
    std::optional<ArrayRef<float>> factors = op.getFreqFactors();
    SmallVector<float> invFreq;
    for (int64_t i = 0; i < half; ++i)
      invFreq.push_back(1.0f /
                        std::pow(theta, (float)i * 2.0f / (float)headDim) /
                        (factors ? (*factors)[i] : 1.0f));
    float magnitude = op.getAttentionFactor().convertToFloat();
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
          Value cos = math::CosOp::create(b, l, angle);
          Value sin = math::SinOp::create(b, l, angle);
          if (magnitude != 1.0f) {
            Value m = arith::ConstantOp::create(b, l, b.getF32FloatAttr(magnitude));
            cos = arith::MulFOp::create(b, l, cos, m);
            sin = arith::MulFOp::create(b, l, sin, m);
          }
          linalg::YieldOp::create(b, l, ValueRange{cos, sin});
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
    // Groups of G features: x as [..., features / G, G], normalized over
    // its new last dimension, then reshaped back.
    std::optional<uint64_t> group = op.getGroupSize();
    bool grouped = group && (int64_t)*group != type.getShape().back();
    if (grouped) {
      SmallVector<int64_t> shape(type.getShape());
      shape.back() /= (int64_t)*group;
      shape.push_back((int64_t)*group);
      SmallVector<ReassociationIndices> reassoc;
      for (int64_t i = 0; i + 1 < type.getRank(); ++i)
        reassoc.push_back({i});
      reassoc.push_back({type.getRank() - 1, type.getRank()});
      SmallVector<OpFoldResult> sizes;
      for (int64_t i = 0; i + 1 < type.getRank(); ++i)
        sizes.push_back(dimOf(rewriter, loc, x, i));
      sizes.push_back(rewriter.getIndexAttr(shape[shape.size() - 2]));
      sizes.push_back(rewriter.getIndexAttr(shape.back()));
      x = tensor::ExpandShapeOp::create(
          rewriter, loc, RankedTensorType::get(shape, type.getElementType()), x,
          reassoc, sizes);
      type = cast<RankedTensorType>(x.getType());
    }
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
    if (grouped) {
      SmallVector<ReassociationIndices> reassoc;
      for (unsigned i = 0; i + 2 < rank; ++i)
        reassoc.push_back({(int64_t)i});
      reassoc.push_back({(int64_t)rank - 2, (int64_t)rank - 1});
      result = tensor::CollapseShapeOp::create(rewriter, loc, result, reassoc);
    }
    rewriter.replaceOp(op, result);
    return success();
  }
};

/// A weight operand as f32 values: `converted` itself, or, for a stored
/// weight (`original` has an encoding; `converted` is its bytes), the
/// generic that dequantizes it (which the contraction kernels look through).
Value weightValues(OpBuilder &b, Location loc, Value converted,
                   Value original) {
  auto type = cast<RankedTensorType>(original.getType());
  if (!getWeightEncoding(type))
    return converted;
  return kiln::dequantizeWeight(b, loc, converted, type);
}

/// A stored weight becomes a weight of its bytes.
struct WeightLowering : public OpConversionPattern<WeightOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(WeightOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Type storage = getTypeConverter()->convertType(op.getType());
    if (!storage)
      return failure();
    rewriter.replaceOpWithNewOp<WeightOp>(op, storage, op.getName(),
                                          op.getIndex());
    return success();
  }
};

struct LinearLowering : public OpConversionPattern<LinearOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(LinearOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    if (failed(requireF32(op, rewriter, /*storedWeights=*/true)))
      return failure();
    Location loc = op.getLoc();
    Value w = weightValues(rewriter, loc, adaptor.getWeight(), op.getWeight());
    rewriter.replaceOp(op, buildLinear(rewriter, loc, adaptor.getInput(), w,
                                       adaptor.getBias()));
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
    if (failed(requireF32(op, rewriter, /*storedWeights=*/true)))
      return failure();
    Location loc = op.getLoc();
    Activation act = op.getActivation();
    Value x = adaptor.getInput();
    Value up = buildLinear(
        rewriter, loc, x,
        weightValues(rewriter, loc, adaptor.getWUp(), op.getWUp()),
        adaptor.getBUp());
    Value hidden;
    if (op.isGated()) {
      Value gate = buildLinear(
          rewriter, loc, x,
          weightValues(rewriter, loc, adaptor.getWGate(), op.getWGate()),
          Value());
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
    rewriter.replaceOp(
        op, buildLinear(
                rewriter, loc, hidden,
                weightValues(rewriter, loc, adaptor.getWDown(), op.getWDown()),
                adaptor.getBDown()));
    return success();
  }
};

/// Offsets/sizes/strides selecting rows [start, start + len) of one k or v
/// plane of a cache layer: cache[layer, kv, :, start:start+len, :].
struct CacheSlice {
  SmallVector<OpFoldResult> offsets, sizes, strides;
};
CacheSlice cacheSlice(OpBuilder &b, KVCacheType cache, OpFoldResult layer,
                      int64_t kv, OpFoldResult start, OpFoldResult len) {
  CacheSlice s;
  if (auto attr = dyn_cast<Attribute>(layer))
    layer = b.getIndexAttr(cast<IntegerAttr>(attr).getInt());
  s.offsets = {layer, b.getIndexAttr(kv), b.getIndexAttr(0),
               start, b.getIndexAttr(0)};
  s.sizes = {b.getIndexAttr(1), b.getIndexAttr(1),
             b.getIndexAttr(cache.getBatch()), len,
             b.getIndexAttr(cache.getWidth())};
  s.strides.assign(5, b.getIndexAttr(1));
  return s;
}

/// A cache op's layer, with a dynamic one taken from the converted operands.
template <typename OpTy, typename AdaptorTy>
OpFoldResult layerOf(OpTy op, AdaptorTy adaptor) {
  if (Value v = adaptor.getDynamicLayer())
    return v;
  return op.getLayerAttr();
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
      // f32 rows into a narrower cache: rounded to nearest even.
      Type elt = cacheType.getElementType();
      if (cast<RankedTensorType>(rows.getType()).getElementType() != elt)
        rows = elementwise(
            rewriter, loc, rows, rows,
            [&](OpBuilder &nb, Location nloc, ValueRange args) -> Value {
              return arith::TruncFOp::create(nb, nloc, elt, args[0]);
            },
            {}, elt);
      CacheSlice s = cacheSlice(rewriter, cacheType, layerOf(op, adaptor), kv++,
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
      CacheSlice s = cacheSlice(rewriter, cacheType, layerOf(op, adaptor), kv,
                                rewriter.getIndexAttr(0), adaptor.getLength());
      results.push_back(tensor::ExtractSliceOp::create(
          rewriter, loc, cast<RankedTensorType>(type), adaptor.getCache(),
          s.offsets, s.sizes, s.strides));
    }
    rewriter.replaceOp(op, results);
    return success();
  }
};

struct ConvertTransformerToLinalgPass
    : public kiln::impl::ConvertTransformerToLinalgBase<
          ConvertTransformerToLinalgPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    TypeConverter converter;
    converter.addConversion([](Type t) { return t; });
    kiln::populateTransformerTypeConversions(converter);

    ConversionTarget target(*ctx);
    target.addIllegalDialect<TransformerDialect>();
    // Weights stay: they read the runtime's buffers (kiln-weight-buffers);
    // a stored weight becomes a weight of its bytes.
    target.addDynamicallyLegalOp<WeightOp>(
        [&](WeightOp op) { return converter.isLegal(op.getOperation()); });
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
  converter.addConversion([](RankedTensorType t) -> std::optional<Type> {
    if (!getWeightEncoding(t))
      return std::nullopt;
    return getWeightStorageType(t);
  });
}

void kiln::populateTransformerToLinalgPatterns(TypeConverter &converter,
                                               RewritePatternSet &patterns) {
  patterns.add<WeightLowering, EmbeddingLowering, PositionEmbeddingLowering,
               SinusoidalPositionLowering, PaddingMaskLowering, RopeLowering,
               LayerNormLowering, RMSNormLowering, LinearLowering, AddLowering,
               FeedForwardLowering, KVCacheAppendLowering,
               KVCacheReadLowering>(converter, patterns.getContext());
  populateAttentionToLinalgPatterns(converter, patterns);
}
