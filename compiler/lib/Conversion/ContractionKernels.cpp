//===- ContractionKernels.cpp - Tiled, vectorized, parallel matmuls -------===//
//
// Implements `kiln-contraction-kernels`: the matrix products of a model
// (`linear` after convert-transformer-to-linalg) become explicit kernels on
// tensors: an `scf.forall` over blocks of output columns for the thread
// pool, register tiles inside each block, vectors over the reduction.
//
// Both operands of `y = x W^T` are contiguous along k (x [M, K] row-major,
// W [N, K] as stored), so matrix-vector products (decode) and short
// prompts use dot-product kernels: one stream through each row of W. Longer
// prompts first pack each task's block of W transposed ([K, block], in L2)
// and run outer-product tiles on it (a broadcast element of x times a
// vector of packed weights; no horizontal sums), the layout that reaches the
// FMA units' throughput. Sibling products that read the same x (q/k/v,
// gate/up) are one kernel, and a residual add becomes a product's init.
//
//===----------------------------------------------------------------------===//

#include "kiln/Conversion/Passes.h"

#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/SCF/Transforms/TileUsingInterface.h"
#include "mlir/Dialect/Utils/ReshapeOpsUtils.h"
#include "mlir/IR/Dominance.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Matchers.h"
#include "llvm/ADT/MapVector.h"

#include <numeric>
#include "llvm/TargetParser/Host.h"

namespace kiln {
#define GEN_PASS_DEF_KILNCONTRACTIONKERNELS
#include "kiln/Conversion/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace {

/// Output columns per task of a matrix-vector product (one row of x).
constexpr int64_t kDecodeBlockCols = 16;
/// Products with at least this many rows of x pack each block's weights
/// for outer-product tiles; the packing pass over the block pays for
/// itself only over many rows.
constexpr int64_t kPackMinRows = 16;

/// A `linear`-form contraction: out[m..., n] = init[m..., n] +
/// sum_k x[m..., k] * w[n, k].
/// Operands are read from the op when needed: rewriting one contraction
/// replaces values that others use (a residual stream as init).
struct Linear {
  linalg::GenericOp op;
  int64_t n, k;
  Value x() const { return op->getOperand(0); }
  Value w() const { return op->getOperand(1); }
  Value init() const { return op->getOperand(2); }
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
  Linear l{op, 0, 0};
  auto wType = cast<RankedTensorType>(l.w().getType());
  auto xType = cast<RankedTensorType>(l.x().getType());
  auto oType = cast<RankedTensorType>(l.init().getType());
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
  /// `w`: the rows of W that this block computes ([nlen, k]).
  KernelBuilder(OpBuilder &b, Location loc, Value w, int64_t k, int64_t vl)
      : b(b), loc(loc), w(w), k(k), vl(vl),
        f32(b.getF32Type()), fm(arith::FastMathFlags::reassoc |
                                arith::FastMathFlags::contract) {}

  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value add(Value a, Value c) { return arith::AddIOp::create(b, loc, a, c); }

  /// base, base + 1, ..., base + n - 1.
  SmallVector<Value> consecutive(Value base, int64_t n) {
    SmallVector<Value> values;
    for (int64_t i = 0; i < n; ++i)
      values.push_back(i ? add(base, idx(i)) : base);
    return values;
  }

  /// A vector of `vl` zeros.
  Value zeros() {
    return arith::ConstantOp::create(
        b, loc,
        DenseElementsAttr::get(VectorType::get({vl}, f32),
                               b.getF32FloatAttr(0.0)));
  }

  /// Reads `len` floats of row `row` of a 2-D tensor from column `col`
  /// (in bounds by construction).
  Value read(Value t, Value row, Value col, int64_t len) {
    Value pad = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0.0));
    return vector::TransferReadOp::create(
        b, loc, VectorType::get({len}, f32), t, ValueRange{row, col}, pad,
        ArrayRef<bool>{true});
  }

  /// The MR x NR tile at rows [m, m + MR) of x, columns [nl, nl + NR) of
  /// `tile` (= rows nl ... of the block's W): tile[m + i, nl + j] +=
  /// dot(x[m + i, :], w[nl + j, :]). `unroll` accumulators per output
  /// element (steps of unroll * vl along k). Returns the updated tile.
  Value microKernel(Value xc, Value tile, Value m, Value nl, int64_t mr,
                    int64_t nr, int64_t unroll) {
    int64_t step = vl * unroll;
    int64_t kMain = k / step * step;
    Value zero = zeros();
    SmallVector<Value> xRows = consecutive(m, mr), wRows = consecutive(nl, nr);

    // accs[(i * nr + j) * unroll + u]
    auto step1 = [&](Value kv, int64_t len, SmallVector<Value> &accs,
                     int64_t u) {
      SmallVector<Value> xs, ws;
      for (Value r : xRows)
        xs.push_back(read(xc, r, kv, len));
      for (Value r : wRows)
        ws.push_back(read(w, r, kv, len));
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
          [&](OpBuilder &nb, Location, Value kv, ValueRange iter) {
            OpBuilder::InsertionGuard g(b);
            b.setInsertionPointToStart(nb.getInsertionBlock());
            SmallVector<Value> a(iter.begin(), iter.end());
            for (int64_t u = 0; u < unroll; ++u)
              step1(u ? add(kv, idx(u * vl)) : kv, vl, a, u);
            scf::YieldOp::create(b, loc, a);
          });
      accs.assign(loop.getResults().begin(), loop.getResults().end());
    }
    // Static tail along k: whole vectors, then a short one widened with
    // zeros.
    int64_t u = 0;
    for (int64_t kk = kMain; kk < k; kk += vl, u = (u + 1) % unroll)
      step1(idx(kk), std::min(vl, k - kk), accs, u);

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

  /// Dot-product tiles on W as stored: rows [from, rows) x columns
  /// [0, nlen) of `tile`.
  Value dotBlock(Value xc, Value tile, Value from, Value rows, Value nlen) {
    // 16 accumulators need the 32 vector registers of AVX-512; with 16
    // (AVX2) a 2x4 tile (8 accumulators) measured fastest.
    const int64_t MR = vl >= 16 ? 4 : 2, NR = 4;
    Value rowsMain =
        add(from, roundDown(arith::SubIOp::create(b, loc, rows, from), MR));
    Value colsMain = roundDown(nlen, NR);
    tile = loop(from, rowsMain, MR, tile, [&](Value m, Value t) {
      t = loop(idx(0), colsMain, NR, t, [&](Value nl, Value t2) {
        return microKernel(xc, t2, m, nl, MR, NR, 1);
      });
      return loop(colsMain, nlen, 1, t, [&](Value nl, Value t2) {
        return microKernel(xc, t2, m, nl, MR, 1, 1);
      });
    });
    // Rows left over, and matrix-vector products: one row of W at a time
    // (a single stream through the weights), two accumulators.
    return loop(rowsMain, rows, 1, tile, [&](Value m, Value t) {
      return loop(idx(0), nlen, 1, t, [&](Value nl, Value t2) {
        return microKernel(xc, t2, m, nl, 1, 1, 2);
      });
    });
  }

  /// The block's first `cols` rows of W (a multiple of 8) transposed into
  /// `packed` ([k, nb]): packed[kk, j] = w[j, kk], in 8 x 8 register
  /// transposes. One pass over the block's weights, into L2.
  Value pack(Value packed, Value cols) {
    VectorType v88 = VectorType::get({8, 8}, f32);
    return loop(idx(0), cols, 8, packed, [&](Value n, Value p) {
      return loop(idx(0), idx(k), 8, p, [&](Value kk, Value p2) {
        Value block = arith::ConstantOp::create(
            b, loc, DenseElementsAttr::get(v88, b.getF32FloatAttr(0.0)));
        for (auto [i, row] : llvm::enumerate(consecutive(n, 8)))
          block = vector::InsertOp::create(b, loc, read(w, row, kk, 8), block,
                                           ArrayRef<int64_t>{(int64_t)i});
        Value t = vector::TransposeOp::create(b, loc, block,
                                              ArrayRef<int64_t>{1, 0});
        for (auto [i, row] : llvm::enumerate(consecutive(kk, 8)))
          p2 = vector::TransferWriteOp::create(
                   b, loc,
                   vector::ExtractOp::create(b, loc, t,
                                             ArrayRef<int64_t>{(int64_t)i}),
                   p2, ValueRange{row, n}, ArrayRef<bool>{true})
                   .getResult();
        return p2;
      });
    });
  }

  /// Outer-product tile on packed weights: tile[m + i, n + j] +=
  /// sum_k x[m + i, k] * packed[k, n + j] for i < mr, j < 2 vl. Each k step
  /// loads two vectors of weights and broadcasts mr elements of x into
  /// 2 mr accumulators; no horizontal sums.
  Value outerKernel(Value xc, Value packed, Value tile, Value m, Value n,
                    int64_t mr) {
    constexpr int64_t kUnroll = 4;
    VectorType vt = VectorType::get({vl}, f32);
    SmallVector<Value> xRows = consecutive(m, mr);
    Value n1 = add(n, idx(vl));
    SmallVector<Value> accs(2 * mr, zeros());
    auto loop = scf::ForOp::create(
        b, loc, idx(0), idx(k), idx(kUnroll), accs,
        [&](OpBuilder &nb, Location, Value kv, ValueRange iter) {
          OpBuilder::InsertionGuard g(b);
          b.setInsertionPointToStart(nb.getInsertionBlock());
          SmallVector<Value> a(iter.begin(), iter.end());
          for (int64_t u = 0; u < kUnroll; ++u) {
            Value kk = u ? add(kv, idx(u)) : kv;
            Value w0 = read(packed, kk, n, vl), w1 = read(packed, kk, n1, vl);
            for (int64_t i = 0; i < mr; ++i) {
              Value s = tensor::ExtractOp::create(b, loc, xc,
                                                  ValueRange{xRows[i], kk});
              Value x = vector::BroadcastOp::create(b, loc, vt, s);
              a[2 * i] = vector::FMAOp::create(b, loc, x, w0, a[2 * i]);
              a[2 * i + 1] = vector::FMAOp::create(b, loc, x, w1, a[2 * i + 1]);
            }
          }
          scf::YieldOp::create(b, loc, a);
        });
    for (int64_t i = 0; i < mr; ++i)
      for (int64_t h = 0; h < 2; ++h) {
        Value col = h ? n1 : n;
        Value old = read(tile, xRows[i], col, vl);
        Value upd =
            arith::AddFOp::create(b, loc, old, loop.getResult(2 * i + h));
        tile = vector::TransferWriteOp::create(b, loc, upd, tile,
                                               ValueRange{xRows[i], col},
                                               ArrayRef<bool>{true})
                   .getResult();
      }
    return tile;
  }

  /// Rows of an outer-product tile: 6 x 2 vectors is 12 accumulators of
  /// the 16 registers of AVX2, 12 x 2 uses 24 of AVX-512's 32.
  int64_t outerRows() const { return vl >= 16 ? 12 : 6; }

  /// Rows [0, rows) (a multiple of outerRows()) of the block, its weights
  /// packed first (`nb` columns at most; none unless `packIf`, when given):
  /// outer-product tiles of outerRows() rows x 2 vl columns, then the
  /// columns left over with dot products.
  Value packedBlock(Value xc, Value tile, Value rows, Value nlen, int64_t nb,
                    Value packIf) {
    const int64_t NC = 2 * vl;
    Value cols = roundDown(nlen, NC);
    if (packIf)
      cols = arith::SelectOp::create(b, loc, packIf, cols, idx(0));
    Value packed =
        tensor::EmptyOp::create(b, loc, ArrayRef<int64_t>{k, nb}, f32);
    packed = pack(packed, cols);
    tile = loop(idx(0), rows, outerRows(), tile, [&](Value m, Value t) {
      return loop(idx(0), cols, NC, t, [&](Value n, Value t2) {
        return outerKernel(xc, packed, t2, m, n, outerRows());
      });
    });
    return loop(idx(0), rows, 1, tile, [&](Value m, Value t) {
      return loop(cols, nlen, 1, t, [&](Value nl, Value t2) {
        return microKernel(xc, t2, m, nl, 1, 1, 2);
      });
    });
  }

  /// The whole block: rows [0, M) x columns [0, nlen) of `tile`; `nb` is
  /// the most columns a block has. Prompts of kPackMinRows rows or more
  /// take the packed outer-product path for their whole tiles of
  /// outerRows() rows, P rows in all; rows [P, M) (all of them for shorter
  /// prompts and decode) the dot-product tiles on W as stored. With a
  /// dynamic row count both paths are emitted and P is chosen at run time
  /// (no branch on tensors).
  Value block(Value xc, Value tile, Value rows, Value nlen, int64_t nb) {
    if (k % 8 != 0 || nb < 2 * vl)
      return dotBlock(xc, tile, idx(0), rows, nlen);
    std::optional<int64_t> staticRows = getConstantIntValue(rows);
    if (staticRows && *staticRows < kPackMinRows)
      return dotBlock(xc, tile, idx(0), rows, nlen);
    Value packedRows = roundDown(rows, outerRows()), big;
    if (!staticRows) {
      big = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, rows,
                                  idx(kPackMinRows));
      packedRows = arith::SelectOp::create(b, loc, big, packedRows, idx(0));
    }
    tile = packedBlock(xc, tile, packedRows, nlen, nb, big);
    return dotBlock(xc, tile, packedRows, rows, nlen);
  }

private:
  OpBuilder &b;
  Location loc;
  Value w;
  int64_t k;
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

/// Whether `v` is a `linalg.fill` of +0.0.
bool isZeroFill(Value v) {
  auto fill = v.getDefiningOp<linalg::FillOp>();
  return fill && matchPattern(fill.getInputs()[0], m_PosZeroFloat());
}

/// `select(c0, v0, select(c1, v1, ...))` over the members of a group:
/// `values[g]` where g is the member that block `blk` belongs to
/// (`starts[g] <= blk < starts[g + 1]`).
Value perMember(OpBuilder &b, Location loc, Value blk,
                ArrayRef<int64_t> starts, ArrayRef<int64_t> values) {
  Value v = arith::ConstantIndexOp::create(b, loc, values.back());
  for (int64_t g = static_cast<int64_t>(values.size()) - 2; g >= 0; --g) {
    Value before = arith::CmpIOp::create(
        b, loc, arith::CmpIPredicate::ult, blk,
        arith::ConstantIndexOp::create(b, loc, starts[g + 1]));
    v = arith::SelectOp::create(
        b, loc, before, arith::ConstantIndexOp::create(b, loc, values[g]), v);
  }
  return v;
}

/// Output columns per task for products with K = `k`, at most `maxN`
/// columns, rows of `xc` ([M, K]).
int64_t blockSize(int64_t k, int64_t maxN, Value xc, int64_t blockCols) {
  // A task's weight block is streamed once per tile of x rows: keep it
  // within 256 KiB so that it stays in L2 (block-cols rows at most). A
  // matrix-vector product streams W once whatever the block, so decode
  // takes smaller blocks: more tasks, and an even share for each thread.
  int64_t fit = std::max<int64_t>(4, (256 * 1024 / (4 * k)) / 4 * 4);
  int64_t nb = std::min({blockCols, fit, maxN});
  auto xcType = cast<RankedTensorType>(xc.getType());
  if (!xcType.isDynamicDim(0) && xcType.getDimSize(0) == 1)
    nb = std::min(nb, kDecodeBlockCols);
  return nb;
}

/// An elementwise generic over the results of two matrix-vector products
/// that read the same `x` (the gated activation `act(x Wg^T) * (x Wu^T)` in
/// @decode), each result used by it alone. Prompt-sized products are left
/// to the sibling grouping: two packed weight blocks per task measured 7%
/// slower on a 128-token prefill than one kernel over both products'
/// blocks followed by a parallel activation.
struct Epilogue {
  linalg::GenericOp op;
  Linear a, b;
};

/// An elementwise generic on tensors of two inputs of its result's shape.
bool isElementwiseBinary(linalg::GenericOp op) {
  return op.getNumDpsInputs() == 2 && op.getNumDpsInits() == 1 &&
         op.hasPureTensorSemantics() && op.getNumReductionLoops() == 0 &&
         llvm::all_of(op.getIndexingMapsArray(),
                      [](AffineMap m) { return m.isIdentity(); });
}

std::optional<Epilogue>
matchEpilogue(linalg::GenericOp op,
              const llvm::DenseMap<Operation *, Linear> &linears) {
  if (!isElementwiseBinary(op))
    return std::nullopt;
  Block &body = op.getRegion().front();
  if (!body.getArgument(2).use_empty() ||
      !body.getOps<linalg::IndexOp>().empty())
    return std::nullopt;
  Value in0 = op.getDpsInputs()[0], in1 = op.getDpsInputs()[1];
  auto a = linears.find(in0.getDefiningOp());
  auto b = linears.find(in1.getDefiningOp());
  if (in0 == in1 || a == linears.end() || b == linears.end() ||
      !in0.hasOneUse() || !in1.hasOneUse())
    return std::nullopt;
  const Linear &la = a->second, &lb = b->second;
  auto xType = cast<RankedTensorType>(la.x().getType());
  if (!xType.hasStaticShape() || xType.getNumElements() != la.k)
    return std::nullopt;
  if (la.x() != lb.x() || la.k != lb.k || la.n != lb.n ||
      la.op->getBlock() != op->getBlock() ||
      lb.op->getBlock() != op->getBlock())
    return std::nullopt;
  return Epilogue{op, la, lb};
}

/// tensor.extract_slice t[0, col] [rows, width] of a 2-D `t` ([rows, N]).
Value columnSlice(OpBuilder &b, Location loc, Value t, OpFoldResult rows,
                  OpFoldResult col, OpFoldResult width) {
  return tensor::ExtractSliceOp::create(
      b, loc, t, ArrayRef<OpFoldResult>{b.getIndexAttr(0), col},
      ArrayRef<OpFoldResult>{rows, width},
      ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)});
}

/// Rows [n0, n0 + len) of a weight W ([N, k]): a view.
Value weightRows(OpBuilder &b, Location loc, Value w, OpFoldResult n0,
                 OpFoldResult len, int64_t k) {
  return tensor::ExtractSliceOp::create(
      b, loc, w, ArrayRef<OpFoldResult>{n0, b.getIndexAttr(0)},
      ArrayRef<OpFoldResult>{len, b.getIndexAttr(k)},
      ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)});
}

/// A kernel's 2-D result ([M, N]) in the shape of `like` ([..., N]).
Value expandLike(OpBuilder &b, Location loc, Value t, Value like) {
  auto type = cast<RankedTensorType>(like.getType());
  if (type.getRank() == 2)
    return t;
  return tensor::ExpandShapeOp::create(b, loc, type, t,
                                       leadingDimsAsOne(type.getRank()),
                                       tensor::getMixedSizes(b, loc, like));
}

/// Where block `blk` of a kernel lies, for members of `sizes` output
/// columns each, cut into blocks of `nb` columns and laid side by side: the
/// member (null for one member), the block's first row of that member's W
/// (n0), its first output column (col) and its width.
struct BlockPlace {
  Value member, n0, col;
  OpFoldResult width;
};

BlockPlace placeBlock(OpBuilder &b, Location loc, Value blk, int64_t nb,
                      ArrayRef<int64_t> sizes) {
  auto cst = [&](int64_t v) {
    return arith::ConstantIndexOp::create(b, loc, v).getResult();
  };
  BlockPlace p;
  SmallVector<int64_t> blockStart{0}, colStart{0};
  for (int64_t n : sizes) {
    blockStart.push_back(blockStart.back() + (n + nb - 1) / nb);
    colStart.push_back(colStart.back() + n);
  }
  if (sizes.size() == 1) {
    p.n0 = p.col = arith::MulIOp::create(b, loc, blk, cst(nb));
  } else {
    SmallVector<int64_t> members(sizes.size());
    std::iota(members.begin(), members.end(), 0);
    p.member = perMember(b, loc, blk, blockStart, members);
    Value first = perMember(b, loc, blk, blockStart,
                            ArrayRef<int64_t>(blockStart).drop_back());
    p.n0 = arith::MulIOp::create(
        b, loc, arith::SubIOp::create(b, loc, blk, first), cst(nb));
    p.col = arith::AddIOp::create(
        b, loc,
        perMember(b, loc, blk, blockStart,
                  ArrayRef<int64_t>(colStart).drop_back()),
        p.n0);
  }
  if (llvm::all_of(sizes, [&](int64_t n) { return n % nb == 0; })) {
    p.width = b.getIndexAttr(nb);
  } else {
    Value n = sizes.size() == 1 ? cst(sizes[0])
                                : perMember(b, loc, blk, blockStart, sizes);
    Value left = arith::SubIOp::create(b, loc, n, p.n0);
    p.width = arith::MinSIOp::create(b, loc, left, cst(nb)).getResult();
  }
  return p;
}

/// The number of blocks placeBlock() cuts `sizes` into.
int64_t numBlocks(ArrayRef<int64_t> sizes, int64_t nb) {
  int64_t total = 0;
  for (int64_t n : sizes)
    total += (n + nb - 1) / nb;
  return total;
}

/// An `scf.forall` with one task per block of columns of the shared output
/// `init` ([rows, N]): `task(place, tile)` computes the block's tile and
/// returns it; `tile()` gives the output's columns [col, col + width) to
/// start from, where the task wants them.
Value blockLoop(
    OpBuilder &b, Location loc, Value init, OpFoldResult rows, int64_t nb,
    ArrayRef<int64_t> sizes,
    function_ref<Value(const BlockPlace &, function_ref<Value()>)> task) {
  auto forall = scf::ForallOp::create(
      b, loc, ArrayRef<OpFoldResult>{b.getIndexAttr(numBlocks(sizes, nb))},
      ValueRange{init}, std::nullopt);
  OpBuilder::InsertionGuard g(b);
  b.setInsertionPoint(forall.getBody()->getTerminator());
  Value shared = forall.getRegionIterArgs()[0];
  BlockPlace place =
      placeBlock(b, loc, forall.getInductionVars()[0], nb, sizes);
  tensor::ExtractSliceOp tile;
  Value done = task(place, [&] {
    tile = cast<tensor::ExtractSliceOp>(
        columnSlice(b, loc, shared, rows, place.col, place.width)
            .getDefiningOp());
    return tile.getResult();
  });
  b.setInsertionPointToStart(forall.getTerminator().getBody());
  tensor::ParallelInsertSliceOp::create(b, loc, done, shared,
                                        tile.getMixedOffsets(),
                                        tile.getMixedSizes(),
                                        tile.getMixedStrides());
  return forall.getResult(0);
}


/// One kernel for an epilogue and its two products: each task computes the
/// same block of columns of both (into task-local tiles) and applies the
/// epilogue's body to them, writing only the epilogue's result.
void rewriteEpilogue(Epilogue e, int64_t vl, int64_t blockCols) {
  OpBuilder b(e.op);
  Location loc = e.op.getLoc();
  int64_t k = e.a.k, n = e.a.n;
  Value xc = collapseTo2D(b, loc, e.a.x());
  // A constant when static, so that the kernels pick their strategy at
  // compile time.
  OpFoldResult rowsOfr = tensor::getMixedSize(b, loc, xc, 0);
  Value rows = getValueOrCreateConstantIndexOp(b, loc, rowsOfr);
  int64_t nb = blockSize(k, n, xc, blockCols);
  Value outInit = e.op.getDpsInits()[0];
  Block &body = e.op.getRegion().front();
  Value result = blockLoop(
      b, loc, collapseTo2D(b, loc, outInit), rowsOfr, nb, {n},
      [&](const BlockPlace &p, function_ref<Value()> tile) {
        Value width = getValueOrCreateConstantIndexOp(b, loc, p.width);
        SmallVector<OpFoldResult> tileSizes{rowsOfr, p.width};
        auto product = [&](const Linear &l) {
          Value init;
          if (isZeroFill(l.init())) {
            Value zero =
                arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0.0));
            Value empty =
                tensor::EmptyOp::create(b, loc, tileSizes, b.getF32Type());
            init = linalg::FillOp::create(b, loc, zero, empty).getResult(0);
          } else {
            init = columnSlice(b, loc, collapseTo2D(b, loc, l.init()),
                               rowsOfr, p.col, p.width);
          }
          KernelBuilder kb(b, loc, weightRows(b, loc, l.w(), p.n0, p.width, k),
                           k, vl);
          return kb.block(xc, init, rows, width, nb);
        };
        Value ta = product(e.a), tb = product(e.b);
        Value out = tile();
        AffineMap id = b.getMultiDimIdentityMap(2);
        return linalg::GenericOp::create(
                   b, loc, TypeRange{out.getType()}, ValueRange{ta, tb},
                   ValueRange{out}, ArrayRef<AffineMap>{id, id, id},
                   ArrayRef<utils::IteratorType>{utils::IteratorType::parallel,
                                                 utils::IteratorType::parallel},
                   [&](OpBuilder &nb, Location nloc, ValueRange args) {
                     IRMapping map;
                     for (unsigned i = 0; i < 3; ++i)
                       map.map(body.getArgument(i), args[i]);
                     for (Operation &inner : body.without_terminator())
                       nb.clone(inner, map);
                     SmallVector<Value> yields;
                     for (Value v : body.getTerminator()->getOperands())
                       yields.push_back(map.lookupOrDefault(v));
                     linalg::YieldOp::create(nb, nloc, yields);
                   })
            .getResult(0);
      });
  e.op.getResult(0).replaceAllUsesWith(expandLike(b, loc, result, outInit));
  e.op.erase();
  e.a.op.erase();
  e.b.op.erase();
}

/// Emits one kernel for a group of contractions that read the same `x`
/// (one member, or sibling projections such as q/k/v or gate/up): an
/// `scf.forall` over the column blocks of all members, each task computing
/// one block of one member's output into the members' outputs laid side by
/// side (`[M, sum N]`); the results are column slices of it.
void rewrite(ArrayRef<Linear> members, int64_t vl, int64_t blockCols) {
  Linear last = members.back();
  OpBuilder b(last.op);
  Location loc = last.op.getLoc();
  int64_t k = last.k;
  Value xc = collapseTo2D(b, loc, last.x());
  OpFoldResult rowsOfr = tensor::getMixedSize(b, loc, xc, 0);
  Value rows = getValueOrCreateConstantIndexOp(b, loc, rowsOfr);
  bool single = members.size() == 1;

  SmallVector<int64_t> sizes, colStart{0};
  for (const Linear &l : members) {
    sizes.push_back(l.n);
    colStart.push_back(colStart.back() + l.n);
  }
  int64_t nb = blockSize(k, *llvm::max_element(sizes), xc, blockCols);

  Value initc;
  if (single) {
    initc = collapseTo2D(b, loc, last.init());
  } else {
    SmallVector<OpFoldResult> shape{rowsOfr, b.getIndexAttr(colStart.back())};
    initc = tensor::EmptyOp::create(b, loc, shape, b.getF32Type());
    if (llvm::all_of(members, [](const Linear &l) { return isZeroFill(l.init()); })) {
      Value zero = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0.0));
      initc = linalg::FillOp::create(b, loc, zero, initc).getResult(0);
    } else {
      for (auto [g, l] : llvm::enumerate(members)) {
        Value part = collapseTo2D(b, loc, l.init());
        initc = tensor::InsertSliceOp::create(
            b, loc, part, initc,
            ArrayRef<OpFoldResult>{b.getIndexAttr(0),
                                   b.getIndexAttr(colStart[g])},
            ArrayRef<OpFoldResult>{shape[0], b.getIndexAttr(l.n)},
            ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)});
      }
    }
  }

  Value result = blockLoop(
      b, loc, initc, rowsOfr, nb, sizes,
      [&](const BlockPlace &p, function_ref<Value()> tile) {
        Value w;
        if (single) {
          w = weightRows(b, loc, last.w(), p.n0, p.width, k);
        } else {
          // Every member's weights are a separate tensor; the task picks
          // its member's (a view: no copy).
          std::optional<int64_t> len = getConstantIntValue(p.width);
          Type sliceType = RankedTensorType::get(
              {len ? *len : ShapedType::kDynamic, k}, b.getF32Type());
          SmallVector<int64_t> cases(members.size() - 1);
          std::iota(cases.begin(), cases.end(), 0);
          auto sw = scf::IndexSwitchOp::create(b, loc, TypeRange{sliceType},
                                               p.member, cases, cases.size());
          for (auto [g, l] : llvm::enumerate(members)) {
            Region &r = g < cases.size() ? sw.getCaseRegions()[g]
                                         : sw.getDefaultRegion();
            OpBuilder::InsertionGuard gg(b);
            b.setInsertionPointToStart(&r.emplaceBlock());
            Value s = weightRows(b, loc, l.w(), p.n0, p.width, k);
            if (s.getType() != sliceType)
              s = tensor::CastOp::create(b, loc, sliceType, s);
            scf::YieldOp::create(b, loc, s);
          }
          w = sw.getResult(0);
        }
        KernelBuilder kb(b, loc, w, k, vl);
        return kb.block(xc, tile(), rows,
                        getValueOrCreateConstantIndexOp(b, loc, p.width), nb);
      });
  for (auto [g, member] : llvm::enumerate(members)) {
    Linear l = member;
    Value mine = single ? result
                        : columnSlice(b, loc, result, rowsOfr,
                                      b.getIndexAttr(colStart[g]),
                                      b.getIndexAttr(l.n));
    l.op.getResult(0).replaceAllUsesWith(expandLike(b, loc, mine, l.init()));
  }
  for (Linear l : members)
    l.op.erase();
}

/// Splits the contractions into groups that become one kernel each:
/// siblings that read the same `x` with the same K in one block (q/k/v,
/// gate/up) when none of their results is used before the last of them (the
/// kernel takes the last one's place), and every other contraction alone.
SmallVector<SmallVector<Linear>> groupSiblings(ArrayRef<Linear> found) {
  SmallVector<SmallVector<Linear>> groups;
  llvm::MapVector<std::pair<Value, int64_t>, SmallVector<Linear>> byInput;
  for (const Linear &l : found)
    byInput[{l.x(), l.k}].push_back(l);
  for (auto &[key, ls] : byInput) {
    // Program order within each block.
    llvm::MapVector<Block *, SmallVector<Linear>> byBlock;
    for (const Linear &l : ls)
      byBlock[l.op->getBlock()].push_back(l);
    for (auto &[block, candidates] : byBlock) {
      llvm::sort(candidates, [](const Linear &a, const Linear &c) {
        return a.op->isBeforeInBlock(c.op);
      });
      Operation *lastOp = candidates.back().op;
      bool ok = candidates.size() > 1;
      for (const Linear &l : candidates) {
        for (Operation *user : l.op->getUsers()) {
          Operation *a = block->findAncestorOpInBlock(*user);
          if (!a || a == lastOp || a->isBeforeInBlock(lastOp))
            ok = false;
        }
      }
      if (ok) {
        groups.push_back(candidates);
      } else {
        for (const Linear &l : candidates)
          groups.push_back({l});
      }
    }
  }
  return groups;
}

/// `y = r + x W^T` in one kernel: an elementwise `linalg.generic` adding the
/// result of a contraction (initialised with zeros, no other use) to `r`
/// becomes that contraction initialised with `r`. The result is bitwise the
/// same (0 + s = s; r + s is computed once either way).
void fuseResidualAdds(func::FuncOp func) {
  DominanceInfo dom(func);
  SmallVector<linalg::GenericOp> adds;
  func.walk([&](linalg::GenericOp op) {
    if (!isElementwiseBinary(op))
      return;
    Block &body = op.getRegion().front();
    if (body.getOperations().size() != 2)
      return;
    auto add = body.front().getNumResults() == 1
                   ? dyn_cast<arith::AddFOp>(body.front())
                   : arith::AddFOp();
    if (!add || body.getTerminator()->getOperand(0) != add.getResult() ||
        !((add.getLhs() == body.getArgument(0) &&
           add.getRhs() == body.getArgument(1)) ||
          (add.getLhs() == body.getArgument(1) &&
           add.getRhs() == body.getArgument(0))))
      return;
    adds.push_back(op);
  });
  for (linalg::GenericOp op : adds) {
    for (unsigned i = 0; i < 2; ++i) {
      Value mine = op.getDpsInputs()[i], other = op.getDpsInputs()[1 - i];
      auto producer = mine.getDefiningOp<linalg::GenericOp>();
      if (!producer || !producer->hasOneUse() || mine.getType() != other.getType())
        continue;
      std::optional<Linear> l = matchLinear(producer);
      if (!l || !isZeroFill(l->init()) || !dom.properlyDominates(other, producer))
        continue;
      producer.getDpsInitsMutable()[0].set(other);
      op.getResult(0).replaceAllUsesWith(producer.getResult(0));
      op.erase();
      break;
    }
  }
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
    fuseResidualAdds(getOperation());
    SmallVector<Linear> found;
    SmallVector<linalg::GenericOp> others;
    llvm::DenseMap<Operation *, Linear> linears;
    getOperation().walk([&](linalg::GenericOp op) {
      if (auto l = matchLinear(op)) {
        found.push_back(*l);
        linears.try_emplace(op, *l);
      } else {
        others.push_back(op);
      }
    });
    // Epilogues first: their products are not grouped with other siblings.
    SmallVector<Epilogue> epilogues;
    llvm::SmallPtrSet<Operation *, 8> taken;
    llvm::erase_if(others, [&](linalg::GenericOp op) {
      std::optional<Epilogue> e = matchEpilogue(op, linears);
      if (!e || taken.contains(e->a.op) || taken.contains(e->b.op))
        return false;
      taken.insert(e->a.op);
      taken.insert(e->b.op);
      epilogues.push_back(*e);
      return true;
    });
    llvm::erase_if(found, [&](const Linear &l) { return taken.contains(l.op); });
    for (Epilogue &e : epilogues)
      rewriteEpilogue(e, bits / 32, blockCols);
    for (ArrayRef<Linear> group : groupSiblings(found))
      rewrite(group, bits / 32, blockCols);
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
