//===- ContractionKernels.cpp - Tiled, vectorized, parallel matmuls -------===//
//
// Implements `kiln-contraction-kernels`: the matrix products of a model
// (`linear` after convert-transformer-to-linalg) become explicit kernels on
// tensors: an `scf.forall` over blocks of output columns for the thread
// pool, register tiles inside each block, vectors over the reduction.
//
// Both operands of `y = x W^T` are contiguous along k (x [M, K] row-major,
// W [N, K] as stored), so the kernels are dot-product kernels: a 4x4 tile
// keeps 16 vector accumulators and loads 4 + 4 vectors per step (one load
// per FMA, which this class of CPU sustains), then reduces each accumulator
// horizontally once per output element. No packed copy of the weights is
// needed; the weight block of a task (block-cols rows of W) stays in L2
// while every row of x passes over it.
//
//===----------------------------------------------------------------------===//

#include "kiln/Conversion/Passes.h"

#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/SCF/Transforms/TileUsingInterface.h"
#include "mlir/Dialect/Utils/ReshapeOpsUtils.h"
#include "mlir/IR/Matchers.h"
#include "llvm/TargetParser/Host.h"

namespace kiln {
#define GEN_PASS_DEF_KILNCONTRACTIONKERNELS
#include "kiln/Conversion/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace {

/// A `linear`-form contraction: out[m..., n] = init[m..., n] +
/// sum_k x[m..., k] * w[n, k].
struct Linear {
  linalg::GenericOp op;
  Value x, w, init;
  int64_t n, k;
};

bool isMulAccBody(linalg::GenericOp op) {
  Block &body = op.getRegion().front();
  if (body.getOperations().size() != 3)
    return false;
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  auto add = yield.getValues()[0].getDefiningOp<arith::AddFOp>();
  if (!add)
    return false;
  Value acc = body.getArgument(2);
  Value prod = add.getLhs() == acc ? add.getRhs() : add.getLhs();
  if (add.getLhs() != acc && add.getRhs() != acc)
    return false;
  auto mul = prod.getDefiningOp<arith::MulFOp>();
  if (!mul)
    return false;
  Value a = body.getArgument(0), b = body.getArgument(1);
  return (mul.getLhs() == a && mul.getRhs() == b) ||
         (mul.getLhs() == b && mul.getRhs() == a);
}

std::optional<Linear> matchLinear(linalg::GenericOp op) {
  if (op.getNumDpsInputs() != 2 || op.getNumDpsInits() != 1 ||
      !op.hasPureTensorSemantics())
    return std::nullopt;
  unsigned loops = op.getNumLoops();
  if (loops < 3)
    return std::nullopt;
  auto iters = op.getIteratorTypesArray();
  for (unsigned i = 0; i + 1 < loops; ++i)
    if (iters[i] != utils::IteratorType::parallel)
      return std::nullopt;
  if (iters.back() != utils::IteratorType::reduction)
    return std::nullopt;
  // x: (d0 .. d[L-3], d[L-1]); w: (d[L-2], d[L-1]); out: (d0 .. d[L-2]).
  MLIRContext *ctx = op.getContext();
  SmallVector<AffineExpr> xe, oe;
  for (unsigned i = 0; i + 2 < loops; ++i) {
    xe.push_back(getAffineDimExpr(i, ctx));
    oe.push_back(getAffineDimExpr(i, ctx));
  }
  xe.push_back(getAffineDimExpr(loops - 1, ctx));
  oe.push_back(getAffineDimExpr(loops - 2, ctx));
  auto maps = op.getIndexingMapsArray();
  if (maps[0] != AffineMap::get(loops, 0, xe, ctx) ||
      maps[1] != AffineMap::get(loops, 0,
                                {getAffineDimExpr(loops - 2, ctx),
                                 getAffineDimExpr(loops - 1, ctx)},
                                ctx) ||
      maps[2] != AffineMap::get(loops, 0, oe, ctx))
    return std::nullopt;
  if (!isMulAccBody(op))
    return std::nullopt;
  Linear l{op, op.getDpsInputs()[0], op.getDpsInputs()[1],
           op.getDpsInits()[0], 0, 0};
  auto wType = cast<RankedTensorType>(l.w.getType());
  auto xType = cast<RankedTensorType>(l.x.getType());
  auto oType = cast<RankedTensorType>(l.init.getType());
  if (!wType.hasStaticShape() || !wType.getElementType().isF32() ||
      !xType.getElementType().isF32() || !oType.getElementType().isF32())
    return std::nullopt;
  l.n = wType.getDimSize(0);
  l.k = wType.getDimSize(1);
  return l;
}

/// Emits the kernels for one contraction; `vl` is the vector length in f32
/// lanes, `blockCols` the output columns of one parallel task.
class KernelBuilder {
public:
  KernelBuilder(OpBuilder &b, Location loc, const Linear &l, int64_t vl)
      : b(b), loc(loc), l(l), vl(vl),
        f32(b.getF32Type()), fm(arith::FastMathFlags::reassoc |
                                arith::FastMathFlags::contract) {}

  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value add(Value a, Value c) { return arith::AddIOp::create(b, loc, a, c); }

  /// Reads `len` floats of row `row` of a 2-D tensor from column `col`
  /// (in bounds by construction).
  Value read(Value t, Value row, Value col, int64_t len) {
    Value pad = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0.0));
    return vector::TransferReadOp::create(
        b, loc, VectorType::get({len}, f32), t, ValueRange{row, col}, pad,
        ArrayRef<bool>{true});
  }

  /// The MR x NR tile at rows [m, m + MR) of x, columns [nl, nl + NR) of
  /// `tile` (= rows n0 + nl ... of W): tile[m + i, nl + j] +=
  /// dot(x[m + i, :], W[n0 + nl + j, :]). `unroll` accumulators per output
  /// element (steps of unroll * vl along k). Returns the updated tile.
  Value microKernel(Value xc, Value tile, Value m, Value n0, Value nl,
                    int64_t mr, int64_t nr, int64_t unroll) {
    int64_t step = vl * unroll;
    int64_t kMain = l.k / step * step;
    VectorType vt = VectorType::get({vl}, f32);
    Value zero = arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(vt, b.getF32FloatAttr(0.0)));
    SmallVector<Value> xRows, wRows;
    for (int64_t i = 0; i < mr; ++i)
      xRows.push_back(i ? add(m, idx(i)) : m);
    Value wBase = add(n0, nl);
    for (int64_t j = 0; j < nr; ++j)
      wRows.push_back(j ? add(wBase, idx(j)) : wBase);

    // accs[(i * nr + j) * unroll + u]
    auto step1 = [&](Value k, int64_t len, SmallVector<Value> &accs,
                     int64_t u) {
      SmallVector<Value> xs, ws;
      for (Value r : xRows)
        xs.push_back(read(xc, r, k, len));
      for (Value r : wRows)
        ws.push_back(read(l.w, r, k, len));
      for (int64_t i = 0; i < mr; ++i)
        for (int64_t j = 0; j < nr; ++j) {
          Value &acc = accs[(i * nr + j) * unroll + u];
          Value xv = xs[i], wv = ws[j];
          if (len != vl) {
            // Widen a short tail vector with zeros.
            xv = vector::InsertStridedSliceOp::create(b, loc, xv, zero, 0, 1);
            wv = vector::InsertStridedSliceOp::create(b, loc, wv, zero, 0, 1);
          }
          acc = vector::FMAOp::create(b, loc, xv, wv, acc);
        }
    };

    SmallVector<Value> accs(mr * nr * unroll, zero);
    if (kMain > 0) {
      auto loop = scf::ForOp::create(
          b, loc, idx(0), idx(kMain), idx(step), accs,
          [&](OpBuilder &nb, Location, Value k, ValueRange iter) {
            OpBuilder::InsertionGuard g(b);
            b.setInsertionPointToStart(nb.getInsertionBlock());
            SmallVector<Value> a(iter.begin(), iter.end());
            for (int64_t u = 0; u < unroll; ++u)
              step1(u ? add(k, idx(u * vl)) : k, vl, a, u);
            scf::YieldOp::create(b, loc, a);
          });
      accs.assign(loop.getResults().begin(), loop.getResults().end());
    }
    // Static tail along k: whole vectors, then a short one widened with
    // zeros.
    int64_t u = 0;
    for (int64_t k = kMain; k < l.k; k += vl, u = (u + 1) % unroll)
      step1(idx(k), std::min(vl, l.k - k), accs, u);

    for (int64_t i = 0; i < mr; ++i) {
      SmallVector<Value> sums;
      for (int64_t j = 0; j < nr; ++j) {
        Value acc = accs[(i * nr + j) * unroll];
        for (int64_t v = 1; v < unroll; ++v)
          acc = arith::AddFOp::create(b, loc, acc,
                                      accs[(i * nr + j) * unroll + v], fm);
        sums.push_back(vector::ReductionOp::create(
            b, loc, vector::CombiningKind::ADD, acc, fm));
      }
      VectorType rt = VectorType::get({nr}, f32);
      Value row = vector::FromElementsOp::create(b, loc, rt, sums);
      Value old = read(tile, xRows[i], nl, nr);
      Value upd = arith::AddFOp::create(b, loc, old, row);
      tile = vector::TransferWriteOp::create(b, loc, upd, tile,
                                             ValueRange{xRows[i], nl},
                                             ArrayRef<bool>{true})
                 .getResult();
    }
    return tile;
  }

  /// for iv in [lb, ub) step s: tile = fn(iv, tile).
  Value loop(Value lb, Value ub, int64_t s, Value tile,
             function_ref<Value(Value, Value)> fn) {
    auto f = scf::ForOp::create(
        b, loc, lb, ub, idx(s), ValueRange{tile},
        [&](OpBuilder &nb, Location, Value iv, ValueRange iter) {
          OpBuilder::InsertionGuard g(b);
          b.setInsertionPointToStart(nb.getInsertionBlock());
          scf::YieldOp::create(b, loc, fn(iv, iter[0]));
        });
    return f.getResult(0);
  }

  /// floor(v / s) * s
  Value roundDown(Value v, int64_t s) {
    Value q = arith::DivUIOp::create(b, loc, v, idx(s));
    return arith::MulIOp::create(b, loc, q, idx(s));
  }

  /// The whole block: rows [0, M) x columns [0, nlen) of `tile`.
  Value block(Value xc, Value tile, Value rows, Value n0, Value nlen) {
    // 16 accumulators need the 32 vector registers of AVX-512; with 16
    // (AVX2) a 2x4 tile (8 accumulators) measured fastest.
    const int64_t MR = vl >= 16 ? 4 : 2, NR = 4;
    Value rowsMain = roundDown(rows, MR);
    Value colsMain = roundDown(nlen, NR);
    tile = loop(idx(0), rowsMain, MR, tile, [&](Value m, Value t) {
      t = loop(idx(0), colsMain, NR, t, [&](Value nl, Value t2) {
        return microKernel(xc, t2, m, n0, nl, MR, NR, 1);
      });
      return loop(colsMain, nlen, 1, t, [&](Value nl, Value t2) {
        return microKernel(xc, t2, m, n0, nl, MR, 1, 1);
      });
    });
    // Rows left over, and matrix-vector products: one row of W at a time
    // (a single stream through the weights), two accumulators.
    return loop(rowsMain, rows, 1, tile, [&](Value m, Value t) {
      return loop(idx(0), nlen, 1, t, [&](Value nl, Value t2) {
        return microKernel(xc, t2, m, n0, nl, 1, 1, 2);
      });
    });
  }

private:
  OpBuilder &b;
  Location loc;
  const Linear &l;
  int64_t vl;
  Type f32;
  arith::FastMathFlags fm;
};

/// [[0 .. rank - 2], [rank - 1]]: all leading dims of a [..., D] tensor
/// as one.
SmallVector<ReassociationIndices> leadingDimsAsOne(int64_t rank) {
  ReassociationIndices lead;
  for (int64_t i = 0; i + 1 < rank; ++i)
    lead.push_back(i);
  return {lead, {rank - 1}};
}

/// Collapses all leading dims of a [..., D] tensor into one: [M, D].
Value collapseTo2D(OpBuilder &b, Location loc, Value t) {
  auto type = cast<RankedTensorType>(t.getType());
  if (type.getRank() == 2)
    return t;
  return tensor::CollapseShapeOp::create(b, loc, t,
                                         leadingDimsAsOne(type.getRank()));
}

void rewrite(Linear l, int64_t vl, int64_t blockCols) {
  OpBuilder b(l.op);
  Location loc = l.op.getLoc();
  auto outType = cast<RankedTensorType>(l.init.getType());
  Value xc = collapseTo2D(b, loc, l.x);
  Value initc = collapseTo2D(b, loc, l.init);
  KernelBuilder kb(b, loc, l, vl);
  Value rows = tensor::DimOp::create(b, loc, xc, 0);

  // A task's weight block is streamed once per tile of x rows: keep it
  // within 256 KiB so that it stays in L2 (block-cols rows at most).
  int64_t fit = std::max<int64_t>(4, (256 * 1024 / (4 * l.k)) / 4 * 4);
  int64_t nb = std::min({blockCols, fit, l.n});
  int64_t numBlocks = (l.n + nb - 1) / nb;
  auto forall = scf::ForallOp::create(
      b, loc, ArrayRef<OpFoldResult>{b.getIndexAttr(numBlocks)},
      ValueRange{initc}, std::nullopt);
  {
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(forall.getBody()->getTerminator());
    Value blk = forall.getInductionVars()[0];
    Value shared = forall.getRegionIterArgs()[0];
    Value n0 = arith::MulIOp::create(b, loc, blk, kb.idx(nb));
    OpFoldResult nlen;
    if (l.n % nb == 0) {
      nlen = b.getIndexAttr(nb);
    } else {
      Value left = arith::SubIOp::create(b, loc, kb.idx(l.n), n0);
      nlen = arith::MinSIOp::create(b, loc, left, kb.idx(nb)).getResult();
    }
    SmallVector<OpFoldResult> offsets{b.getIndexAttr(0), n0};
    SmallVector<OpFoldResult> sizes{tensor::getMixedSize(b, loc, xc, 0), nlen};
    SmallVector<OpFoldResult> strides(2, b.getIndexAttr(1));
    Value tile = tensor::ExtractSliceOp::create(b, loc, shared, offsets, sizes,
                                                strides);
    Value done = kb.block(xc, tile, rows, n0,
                          getValueOrCreateConstantIndexOp(b, loc, nlen));
    b.setInsertionPointToStart(forall.getTerminator().getBody());
    tensor::ParallelInsertSliceOp::create(b, loc, done, shared, offsets, sizes,
                                          strides);
  }
  Value result = forall.getResult(0);
  if (outType.getRank() != 2) {
    result = tensor::ExpandShapeOp::create(
        b, loc, outType, result, leadingDimsAsOne(outType.getRank()),
        tensor::getMixedSizes(b, loc, l.init));
  }
  l.op.getResult(0).replaceAllUsesWith(result);
  l.op.erase();
}

} // namespace

int64_t kiln::hostVectorBits() {
  llvm::StringMap<bool> features = llvm::sys::getHostCPUFeatures();
  if (features.lookup("avx512f"))
    return 512;
  if (features.lookup("avx") || features.lookup("avx2"))
    return 256;
  return 128;
}

namespace {

struct KilnContractionKernelsPass
    : public kiln::impl::KilnContractionKernelsBase<
          KilnContractionKernelsPass> {
  using Base::Base;
  void runOnOperation() override {
    int64_t bits = vectorBits == 0 ? kiln::hostVectorBits() : vectorBits;
    if (bits < 32 || bits % 32 != 0 || blockCols < 1) {
      getOperation().emitError("kiln-contraction-kernels: vector-bits must "
                               "be 0 (the host's) or a positive multiple of "
                               "32, and block-cols positive");
      return signalPassFailure();
    }
    SmallVector<Linear> found;
    SmallVector<linalg::GenericOp> others;
    getOperation().walk([&](linalg::GenericOp op) {
      if (auto l = matchLinear(op))
        found.push_back(*l);
      else
        others.push_back(op);
    });
    for (Linear &l : found)
      rewrite(l, bits / 32, blockCols);
    for (linalg::GenericOp op : others)
      if (failed(parallelizeRows(op)))
        return signalPassFailure();
  }

  /// Every other generic whose shape depends on the prompt (norms, the
  /// feed-forward activation, residual adds, RoPE, embedding gathers in
  /// @prefill and @forward) becomes an scf.forall over blocks of
  /// `kRowBlock` along its dynamic parallel dimensions, so that no part of a
  /// prompt-sized step runs on one thread while the others wait.
  /// Fixed-shape generics (one token in @decode) stay as they are: a few
  /// thousand elements do not pay for a fork.
  LogicalResult parallelizeRows(linalg::GenericOp op) {
    constexpr int64_t kRowBlock = 8;
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
      tiles.push_back(b.getIndexAttr(tile ? kRowBlock : 0));
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
      return op.emitError("kiln-contraction-kernels: cannot tile this "
                          "generic into a parallel loop");
    rewriter.replaceOp(op, tiled->replacements);
    return success();
  }
};

} // namespace
