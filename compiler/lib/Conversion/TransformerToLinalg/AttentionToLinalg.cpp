//===- AttentionToLinalg.cpp - Attention as one fused kernel --------------===//
//
// The lowering of `transformer.attention` for convert-transformer-to-linalg.
// Unlike the other ops, which become `linalg.generic` ops for the codegen
// passes to schedule, attention is scheduled here: an `scf.forall` over
// (batch, head, query) rows with an online softmax over blocks of keys in
// vectors, which never builds the score matrix.
//
//===----------------------------------------------------------------------===//

#include "LoweringUtils.h"
#include "kiln/Conversion/Passes.h"
#include "kiln/Dialect/Transformer/IR/Transformer.h"

#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <limits>

using namespace mlir;
using namespace kiln::transformer;
using namespace kiln::lowering;

namespace {

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
  /// Keys per step of the online softmax: a vector of 16 scores (one
  /// 512-bit register) between rescalings.
  static constexpr int64_t kKeyBlock = 16;
  /// One iteration serves a whole GQA group of at most this many query
  /// heads (one accumulator row each), and only when there are at least
  /// kMinKvHeadsToGroup kv heads, so that the iterations still spread over
  /// the threads. The configuration measured when grouping was introduced:
  /// base-GQA (12 heads, 4 kv heads), 896-token prefill 471-551 -> 611
  /// tok/s; other bounds were not tried.
  static constexpr int64_t kMaxGroupPerIteration = 8;
  static constexpr int64_t kMinKvHeadsToGroup = 4;

  LogicalResult
  matchAndRewrite(AttentionOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    // Keys and values may come from an f16 or bf16 cache: widened as read.
    if (failed(requireF32(op, rewriter, /*storedWeights=*/false,
                          {op.getKey(), op.getValue()})))
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
    int64_t perIter = (group > 1 && group <= kMaxGroupPerIteration &&
                       op.getNumKvHeads() >= kMinKvHeadsToGroup)
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
    // A row of head_dim values as f32 (a narrower cache's widened).
    auto readRow = [&](Value t, Value row, Value col) -> Value {
      Type te = cast<RankedTensorType>(t.getType()).getElementType();
      if (te == elt)
        return vector::TransferReadOp::create(b, loc, rowType, t,
                                              ValueRange{bi, row, col}, pad,
                                              ArrayRef<bool>{true});
      Value narrow = vector::TransferReadOp::create(
          b, loc, VectorType::get({headDim}, te), t, ValueRange{bi, row, col},
          floatConst(b, loc, te, 0.0), ArrayRef<bool>{true});
      return arith::ExtFOp::create(b, loc, rowType, narrow);
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
    // Keys [first, limit) are visible: all, or up to the query's own
    // position, and with a window of W only the last W of those (the keys
    // before are not visited).
    Value limit = keys, first = c(0);
    if (causal) {
      Value end = arith::AddIOp::create(
          b, loc, arith::AddIOp::create(b, loc, si, offset), c(1));
      limit = arith::MinSIOp::create(b, loc, keys, end);
      if (std::optional<uint64_t> window = op.getWindow())
        first = arith::MaxSIOp::create(
            b, loc, first,
            arith::SubIOp::create(b, loc, end, c((int64_t)*window)));
    }
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
        b, loc, first, limit, c(kKeyBlock), inits,
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


} // namespace

void kiln::populateAttentionToLinalgPatterns(TypeConverter &converter,
                                             RewritePatternSet &patterns) {
  patterns.add<AttentionLowering>(converter, patterns.getContext());
}
