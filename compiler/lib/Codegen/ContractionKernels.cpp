//===- ContractionKernels.cpp - Tiled, vectorized, parallel matmuls -------===//
//
// Implements `kiln-contraction-kernels`: the matrix products of a model
// (`linear` after convert-transformer-to-linalg) become explicit kernels on
// tensors: an `scf.forall` over blocks of output columns for the thread
// pool, register tiles inside each block, vectors over the reduction. The
// configuration of each kernel (block width, vector length, tiles, packing)
// is the `kiln.kernel` strategy kiln-kernel-strategy recorded on the op.
//
// Both operands of `y = x W^T` are contiguous along k (x [M, K] row-major,
// W [N, K] as stored), so matrix-vector products (decode) and short
// prompts use dot-product kernels: one stream through each row of W. Longer
// prompts first pack each task's block of W transposed ([K, block], in L2)
// and run outer-product tiles on it (a broadcast element of x times a
// vector of packed weights; no horizontal sums), the layout that reaches the
// FMA units' throughput. Sibling products that read the same x (q/k/v,
// gate/up) are one kernel, an RMSNorm is folded into the prompt kernels
// that read it (gain along k, the row's scale on the sums), and in decode
// RoPE is the epilogue of the q/k/v kernel.
//
//===----------------------------------------------------------------------===//

#include "Contraction.h"
#include "kiln/Codegen/Passes.h"
#include "kiln/Conversion/Dequantize.h"

#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Utils/ReshapeOpsUtils.h"
#include "mlir/Dialect/X86Vector/Transforms.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/Sequence.h"
#include "llvm/ADT/SetVector.h"

#include <numeric>

namespace kiln {
#define GEN_PASS_DEF_KILNCONTRACTIONKERNELS
#include "kiln/Codegen/Passes.h.inc"
} // namespace kiln

using namespace mlir;
using kiln::transformer::WeightEncoding;

namespace {

using kiln::isElementwiseBinary;
using kiln::isZeroFill;
using kiln::KernelConfig;
using kiln::Linear;
using kiln::matchLinear;
using kiln::ScaledInput;

/// A contraction and the configuration kiln-kernel-strategy chose for it.
struct Contraction : kiln::ConfiguredLinear {
  /// W's stored bytes when W is a stored weight's dequantization: the
  /// kernels read (and dequantize) those instead.
  std::optional<kiln::StoredWeight> stored;

  std::optional<WeightEncoding> encoding() const {
    if (stored)
      return stored->encoding;
    return std::nullopt;
  }
  /// What the kernels read for W: [N, k] f32, or [N, row bytes] i8.
  Value weights() const { return stored ? stored->storage : w(); }
  int64_t weightCols() const {
    if (!stored)
      return k;
    return cast<RankedTensorType>(stored->storage.getType()).getDimSize(1);
  }
};

/// What a kernel reads for x: `xc` ([M, K]), and when x is a ScaledInput,
/// its [K] factor `g` and the rows' scales `scale` ([M]). With int8
/// activations, also x quantized (quantizeActivations): `xq` ([M, K] i8),
/// the scale of every 4 values `xd` ([M, K / 4] f32), and that scale times
/// the sum of the 4 integers `xm` ([M, K / 4] f32), and the sum of xm
/// over each 32 values `xs` ([M, K / 32] f32: x's sum over a group, for
/// weights whose offsets are taken per block, kiln::blockOffsets). With int8
/// activations in a prompt (quantizePromptActivations): x times `g` as
/// 16-bit integers split into two signed bytes, x ~ pd (256 q1 + q2), one
/// scale `pd` per kiln::kPromptActivationGroup values ([M, K / 32] f32),
/// `pq` ([M, K / 2] i32: per 4 values of k, q1's 4 bytes then q2's), and
/// x's sums over every 16 values as quantized, pd (256 q1 + q2) summed
/// (`ps`, [M, K / 16] f32).
struct KernelInput {
  Value xc, g, scale;
  Value xq, xd, xm, xs;
  Value pq, pd, ps;
};

/// Values per group of quantized activations: what one integer dot
/// product instruction reads (32 bytes: vpdpbusd on 256-bit vectors).
constexpr int64_t kActivationGroup = 32;
/// Values per scale of quantized activations: the 4 bytes that one i32
/// lane of the dot product sums, so that every lane is scaled by its own
/// factor at no cost (one vector of 8 scales per group instead of one
/// broadcast scale). Per 32 values, as llama.cpp's Q8_0 activations, the
/// logits of the test models were 1.2e-2 x max|logit| from float64 and
/// greedy tokens flipped on half of them.
constexpr int64_t kActivationScaleGroup = 4;
/// Columns per step of the int8 matrix-vector loop, at least (a step is
/// whole blocks of W): two pairs of groups, one per accumulator chain, so
/// that a step's multiply-adds do not wait on each other (a Q4_0 block per
/// step, with one chain, was latency-bound: 4 cycles per 32 values).
constexpr int64_t kInt8StepValues = 128;
/// Independent accumulators of each kind (d xd dot, m xm) in the int8
/// matrix-vector loop.
constexpr int64_t kInt8Chains = 2;

/// Quantizes `in.xc` ([M, K], K a multiple of kActivationGroup) to 8-bit
/// integers: per kActivationScaleGroup values, d = max|x| / 127 and q = x *
/// (1 / d) rounded to nearest even (0 where d is 0); fills in.xq, in.xd,
/// in.xm and in.xs. One pass over x, before the kernel's parallel loop (every
/// task reads the same quantized x).
void quantizeActivations(OpBuilder &b, Location loc, int64_t k,
                         KernelInput &in) {
  const int64_t G = kActivationGroup, S = kActivationScaleGroup, L = G / S;
  Type f32 = b.getF32Type(), i8 = b.getI8Type(), i32 = b.getI32Type();
  VectorType vf = VectorType::get({G}, f32), vi = VectorType::get({G}, i32),
             v8 = VectorType::get({G}, i8), lanesF = VectorType::get({L}, f32);
  OpFoldResult rows = tensor::getMixedSize(b, loc, in.xc, 0);
  Value rowCount = getValueOrCreateConstantIndexOp(b, loc, rows);
  auto idx = [&](int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); };
  auto splat = [&](OpBuilder &nb, VectorType t, float v) {
    return arith::ConstantOp::create(
        nb, loc, DenseElementsAttr::get(t, nb.getF32FloatAttr(v)));
  };
  Value xq = tensor::EmptyOp::create(
      b, loc, ArrayRef<OpFoldResult>{rows, b.getIndexAttr(k)}, i8);
  Value xd = tensor::EmptyOp::create(
      b, loc, ArrayRef<OpFoldResult>{rows, b.getIndexAttr(k / S)}, f32);
  Value xm = tensor::EmptyOp::create(
      b, loc, ArrayRef<OpFoldResult>{rows, b.getIndexAttr(k / S)}, f32);
  Value xs = tensor::EmptyOp::create(
      b, loc, ArrayRef<OpFoldResult>{rows, b.getIndexAttr(k / G)}, f32);
  auto outer = scf::ForOp::create(
      b, loc, idx(0), rowCount, idx(1), ValueRange{xq, xd, xm, xs},
      [&](OpBuilder &ob, Location, Value m, ValueRange rowIter) {
        auto inner = scf::ForOp::create(
            ob, loc, idx(0), idx(k / G), idx(1), rowIter,
            [&](OpBuilder &nb, Location, Value g, ValueRange it) {
              Value col = arith::MulIOp::create(nb, loc, g, idx(G));
              Value zero = arith::ConstantOp::create(nb, loc, nb.getF32FloatAttr(0));
              Value x = vector::TransferReadOp::create(
                  nb, loc, vf, in.xc, ValueRange{m, col}, zero,
                  ArrayRef<bool>{true});
              // Values j, S + j, 2 S + j, ... of a [G] vector: element j
              // of every lane (1-D shuffles: LLVM's vector lowering takes
              // no 2-D reductions or transposes here).
              auto column = [&](Value v, int64_t j) {
                SmallVector<int64_t> mask;
                for (int64_t l = 0; l < L; ++l)
                  mask.push_back(l * S + j);
                return vector::ShuffleOp::create(nb, loc, v, v, mask)
                    .getResult();
              };
              // Per lane: the max |x| of its S values.
              Value ax = math::AbsFOp::create(nb, loc, x);
              Value amax = column(ax, 0);
              for (int64_t j = 1; j < S; ++j)
                amax = arith::MaxNumFOp::create(nb, loc, amax, column(ax, j));
              Value d = arith::DivFOp::create(nb, loc, amax,
                                              splat(nb, lanesF, 127.0f));
              Value nonzero = arith::CmpFOp::create(
                  nb, loc, arith::CmpFPredicate::ONE, d,
                  splat(nb, lanesF, 0.0f));
              Value id = arith::SelectOp::create(
                  nb, loc, nonzero,
                  arith::DivFOp::create(nb, loc, splat(nb, lanesF, 1.0f), d),
                  splat(nb, lanesF, 0.0f));
              // 1 / d for each of the G values (lane l's for values
              // l S ... l S + S - 1).
              SmallVector<int64_t> spread;
              for (int64_t i = 0; i < G; ++i)
                spread.push_back(i / S);
              Value idAll = vector::ShuffleOp::create(nb, loc, id, id, spread);
              Value scaled = arith::MulFOp::create(nb, loc, x, idAll);
              Value qi = arith::FPToSIOp::create(
                  nb, loc, vi, math::RoundEvenOp::create(nb, loc, scaled));
              Value q = arith::TruncIOp::create(nb, loc, v8, qi);
              // Per lane: d times the sum of its integers.
              Value sums = column(qi, 0);
              for (int64_t j = 1; j < S; ++j)
                sums = arith::AddIOp::create(nb, loc, sums, column(qi, j));
              Value dsum = arith::MulFOp::create(
                  nb, loc, d, arith::SIToFPOp::create(nb, loc, lanesF, sums));
              Value nq = vector::TransferWriteOp::create(
                             nb, loc, q, it[0], ValueRange{m, col},
                             ArrayRef<bool>{true})
                             .getResult();
              Value dCol = arith::MulIOp::create(nb, loc, g, idx(L));
              Value nd = vector::TransferWriteOp::create(
                             nb, loc, d, it[1], ValueRange{m, dCol},
                             ArrayRef<bool>{true})
                             .getResult();
              Value nm = vector::TransferWriteOp::create(
                             nb, loc, dsum, it[2], ValueRange{m, dCol},
                             ArrayRef<bool>{true})
                             .getResult();
              Value groupSum = vector::ReductionOp::create(
                  nb, loc, vector::CombiningKind::ADD, dsum);
              Value ns = vector::TransferWriteOp::create(
                             nb, loc,
                             vector::BroadcastOp::create(
                                 nb, loc, VectorType::get({1}, f32), groupSum),
                             it[3], ValueRange{m, g}, ArrayRef<bool>{true})
                             .getResult();
              scf::YieldOp::create(nb, loc, ValueRange{nq, nd, nm, ns});
            });
        scf::YieldOp::create(ob, loc, inner.getResults());
      });
  in.xq = outer.getResult(0);
  in.xd = outer.getResult(1);
  in.xm = outer.getResult(2);
  in.xs = outer.getResult(3);
}

/// Quantizes x ([M, K] `in.xc`, times `in.g` when x is a ScaledInput; K a
/// multiple of kiln::kPromptActivationGroup) for a prompt's integer GEMM:
/// per group of 32 values, u = max|x| / 32512 (127 x 256) and v = x / u
/// rounded to nearest even (0 where u is 0), a 16-bit integer in
/// [-32512, 32512], written as two signed bytes: q1 = floor((v + 128) /
/// 256) in [-127, 127] and q2 = v - 256 q1 in [-128, 127]. The GEMM's dot
/// products with W's bytes are then 256 (W . q1) + W . q2 in i32, and x is
/// within u / 2 (1.5e-5 of its group's largest value) instead of 8-bit
/// quantization's 4e-3. Fills in.pq, in.pd and in.ps. One pass over x
/// before the kernel's parallel loop.
void quantizePromptActivations(OpBuilder &b, Location loc, int64_t k,
                               KernelInput &in) {
  const int64_t G = kiln::kPromptActivationGroup, H = G / 2;
  Type f32 = b.getF32Type(), i32 = b.getI32Type();
  VectorType vf = VectorType::get({G}, f32), vi = VectorType::get({G}, i32),
             v8 = VectorType::get({G}, b.getI8Type()),
             quads = VectorType::get({G / 4}, i32),
             halves = VectorType::get({2}, f32),
             one = VectorType::get({1}, f32);
  OpFoldResult rows = tensor::getMixedSize(b, loc, in.xc, 0);
  Value rowCount = getValueOrCreateConstantIndexOp(b, loc, rows);
  auto idx = [&](int64_t v) {
    return arith::ConstantIndexOp::create(b, loc, v);
  };
  auto empty = [&](int64_t cols, Type t) {
    return tensor::EmptyOp::create(
        b, loc, ArrayRef<OpFoldResult>{rows, b.getIndexAttr(cols)}, t);
  };
  Value init[] = {empty(k / 2, i32), empty(k / G, f32), empty(k / H, f32)};
  auto outer = scf::ForOp::create(
      b, loc, idx(0), rowCount, idx(1), ValueRange(init),
      [&](OpBuilder &ob, Location, Value m, ValueRange rowIter) {
        auto inner = scf::ForOp::create(
            ob, loc, idx(0), idx(k / G), idx(1), rowIter,
            [&](OpBuilder &nb, Location, Value g, ValueRange it) {
              auto cst = [&](int64_t v) {
                return arith::ConstantIndexOp::create(nb, loc, v);
              };
              auto fconst = [&](float v) {
                return arith::ConstantOp::create(nb, loc,
                                                 nb.getF32FloatAttr(v));
              };
              auto splatI = [&](int64_t v) {
                return arith::ConstantOp::create(
                    nb, loc,
                    DenseElementsAttr::get(vi, nb.getI32IntegerAttr(v)));
              };
              Value col = arith::MulIOp::create(nb, loc, g, cst(G));
              Value zero = fconst(0);
              Value x = vector::TransferReadOp::create(nb, loc, vf, in.xc,
                                                       ValueRange{m, col}, zero,
                                                       ArrayRef<bool>{true});
              if (in.g)
                x = arith::MulFOp::create(
                    nb, loc, x,
                    vector::TransferReadOp::create(nb, loc, vf, in.g,
                                                   ValueRange{col}, zero,
                                                   ArrayRef<bool>{true}));
              Value amax = vector::ReductionOp::create(
                  nb, loc, vector::CombiningKind::MAXNUMF,
                  math::AbsFOp::create(nb, loc, x));
              Value u = arith::DivFOp::create(nb, loc, amax, fconst(32512));
              Value nonzero = arith::CmpFOp::create(
                  nb, loc, arith::CmpFPredicate::ONE, u, zero);
              Value iu = arith::SelectOp::create(
                  nb, loc, nonzero,
                  arith::DivFOp::create(nb, loc, fconst(1), u), zero);
              Value scaled = arith::MulFOp::create(
                  nb, loc, x, vector::BroadcastOp::create(nb, loc, vf, iu));
              Value v = arith::FPToSIOp::create(
                  nb, loc, vi, math::RoundEvenOp::create(nb, loc, scaled));
              Value q1 = arith::ShRSIOp::create(
                  nb, loc, arith::AddIOp::create(nb, loc, v, splatI(128)),
                  splatI(8));
              Value q2 = arith::SubIOp::create(
                  nb, loc, v, arith::ShLIOp::create(nb, loc, q1, splatI(8)));
              // x's sum over each half as quantized: u times the sum of v.
              SmallVector<Value> sums;
              for (int64_t h = 0; h < 2; ++h)
                sums.push_back(arith::MulFOp::create(
                    nb, loc, u,
                    arith::SIToFPOp::create(
                        nb, loc, f32,
                        vector::ReductionOp::create(
                            nb, loc, vector::CombiningKind::ADD,
                            vector::ExtractStridedSliceOp::create(
                                nb, loc, v, h * H, H, 1)))));
              auto asQuads = [&](Value q) {
                return vector::BitCastOp::create(
                    nb, loc, quads, arith::TruncIOp::create(nb, loc, v8, q));
              };
              // Per 4 values, q1's quad then q2's.
              SmallVector<int64_t> interleave;
              for (int64_t i = 0; i < G / 4; ++i)
                interleave.append({i, G / 4 + i});
              Value both = vector::ShuffleOp::create(nb, loc, asQuads(q1),
                                                     asQuads(q2), interleave);
              Value nq = vector::TransferWriteOp::create(
                             nb, loc, both, it[0],
                             ValueRange{m, arith::MulIOp::create(nb, loc, g,
                                                                 cst(G / 2))},
                             ArrayRef<bool>{true})
                             .getResult();
              Value nd =
                  vector::TransferWriteOp::create(
                      nb, loc, vector::BroadcastOp::create(nb, loc, one, u),
                      it[1], ValueRange{m, g}, ArrayRef<bool>{true})
                      .getResult();
              Value ns =
                  vector::TransferWriteOp::create(
                      nb, loc,
                      vector::FromElementsOp::create(nb, loc, halves, sums),
                      it[2],
                      ValueRange{m, arith::MulIOp::create(nb, loc, g, cst(2))},
                      ArrayRef<bool>{true})
                      .getResult();
              scf::YieldOp::create(nb, loc, ValueRange{nq, nd, ns});
            });
        scf::YieldOp::create(ob, loc, inner.getResults());
      });
  in.pq = outer.getResult(0);
  in.pd = outer.getResult(1);
  in.ps = outer.getResult(2);
}

/// Emits the kernels for one contraction, configured by `cfg`.
class KernelBuilder {
public:
  /// `w`: the rows of W that this block computes ([nlen, k]).
  /// `encoding`: W is a stored weight's bytes ([nlen, row bytes]).
  KernelBuilder(OpBuilder &b, Location loc, const KernelInput &in, Value w,
                int64_t k, const KernelConfig &cfg,
                std::optional<WeightEncoding> encoding)
      : b(b), loc(loc), in(in), w(w), encoding(encoding), k(k),
        vl(cfg.vectorLanes), cfg(cfg),
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

  /// `len` values of row `row` of W from column `group + offset`
  /// (`offset` a constant in [0, align)), dequantized in registers when W
  /// is stored. For a block-stored W, `group` is a multiple of `align`, a
  /// multiple of kiln::kDequantizeGroup, so that the reads of a group's
  /// scales are shared by its vectors (and, when `align` spans whole
  /// blocks, where each vector lies in its block is a constant).
  Value readW(Value row, Value group, int64_t offset, int64_t len,
              int64_t align) {
    if (!encoding)
      return read(w, row, offset ? add(group, idx(offset)) : group, len);
    return kiln::dequantizeVector(b, loc, *encoding, w, row, group, offset,
                                  len, align);
  }

  /// Whether W is stored in blocks of quantized values (not f32, f16 or
  /// bf16 elements).
  bool blockStored() const {
    return encoding && *encoding != WeightEncoding::f16 &&
           *encoding != WeightEncoding::bf16;
  }

  /// Columns along k that one step of the packing covers at least: a
  /// whole dequantization group for block-stored weights (K is a multiple
  /// of it), one value otherwise.
  int64_t kGroup() const { return blockStored() ? kiln::kDequantizeGroup : 1; }

  /// Columns along k that one step of a dot tile covers at least: a whole
  /// block for block-stored weights (K is a multiple of it: the verifier's
  /// rule), so that every vector's place in its block, and with it the
  /// k-quants' sub-block scales and bit positions, is a constant; one
  /// value otherwise.
  int64_t kBlock() const {
    return blockStored() ? kiln::transformer::getEncodingBlock(*encoding).elements
                         : 1;
  }

  /// `len` floats of a 1-D tensor from `at`.
  Value read1D(Value t, Value at, int64_t len) {
    Value pad = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0.0));
    return vector::TransferReadOp::create(b, loc, VectorType::get({len}, f32),
                                          t, ValueRange{at}, pad,
                                          ArrayRef<bool>{true});
  }

  /// The output starts as zeros (no reads of the tile) or as columns
  /// [col, ...) of `src` (rows as the output's) instead of as the tile's
  /// contents: every element of a block is written exactly once, so the
  /// output can be a fresh buffer (no fill, and no write into the init's
  /// buffer, such as the residual stream's).
  void initZero() { zeroInit = true; }
  void initFrom(Value src, Value col) {
    initSrc = src;
    initCol = col;
  }

  /// `sums` (row `m`, columns [col, col + len) of the tile) plus the
  /// output's initial values there.
  Value withInit(Value sums, Value tile, Value m, Value col) {
    if (zeroInit)
      return sums;
    int64_t len = cast<VectorType>(sums.getType()).getNumElements();
    Value old = initSrc ? read(initSrc, m, add(initCol, col), len)
                        : read(tile, m, col, len);
    return arith::AddFOp::create(b, loc, old, sums);
  }

  /// A vector of sums for row `m` of x, times the row's scale when x is a
  /// ScaledInput.
  Value scaleRow(Value v, Value m) {
    if (!in.scale)
      return v;
    Value s = tensor::ExtractOp::create(b, loc, in.scale, ValueRange{m});
    return arith::MulFOp::create(
        b, loc, v, vector::BroadcastOp::create(b, loc, v.getType(), s));
  }

  /// The MR x NR tile at rows [m, m + MR) of x, columns [nl, nl + NR) of
  /// `tile` (= rows nl ... of the block's W): tile[m + i, nl + j] +=
  /// dot(x[m + i, :], w[nl + j, :]). `unroll` accumulators per output
  /// element (steps of unroll * vl along k). Returns the updated tile.
  Value microKernel(Value tile, Value m, Value nl, int64_t mr,
                    int64_t nr, int64_t unroll) {
    // A block-stored W is read a group or a block at a time (`chunks`
    // vectors per step, into the `unroll` accumulators in turn). Row by row (decode's matrix-vector products) a step covers a whole
    // block; wider tiles (prompt rows left over by the packed path) step
    // by a group, which keeps their unrolled bodies (and compile time)
    // small.
    int64_t chunks = std::max(unroll, (nr == 1 ? kBlock() : kGroup()) / vl);
    int64_t step = vl * chunks;
    int64_t kMain = k / step * step;
    Value zero = zeros();
    SmallVector<Value> xRows = consecutive(m, mr), wRows = consecutive(nl, nr);

    // accs[(i * nr + j) * unroll + u]; columns kv + off, ...
    auto step1 = [&](Value kv, int64_t off, int64_t len,
                     SmallVector<Value> &accs, int64_t u) {
      SmallVector<Value> xs, ws;
      Value kx = off ? add(kv, idx(off)) : kv;
      Value g = in.g ? read1D(in.g, kx, len) : Value();
      for (Value r : xRows) {
        xs.push_back(read(in.xc, r, kx, len));
        if (g)
          xs.back() = arith::MulFOp::create(b, loc, xs.back(), g);
      }
      for (Value r : wRows)
        ws.push_back(readW(r, kv, off, len, std::max<int64_t>(step, kiln::kDequantizeGroup)));
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
    if (kMain > 0)
      accs = loopCarrying(idx(0), idx(kMain), step, accs,
                          [&](Value kv, SmallVector<Value> &a) {
                            for (int64_t u = 0; u < chunks; ++u)
                              step1(kv, u * vl, vl, a, u % unroll);
                          });
    // Static tail along k: whole vectors, then a short one widened with
    // zeros.
    int64_t u = 0;
    for (int64_t kk = kMain; kk < k; kk += vl, u = (u + 1) % unroll)
      step1(idx(kk), 0, std::min(vl, k - kk), accs, u);

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
      row = scaleRow(row, xRows[i]);
      Value upd = withInit(row, tile, xRows[i], nl);
      tile = vector::TransferWriteOp::create(b, loc, upd, tile,
                                             ValueRange{xRows[i], nl},
                                             ArrayRef<bool>{true})
                 .getResult();
    }
    return tile;
  }

  /// acc (vector<lanes x i32>) plus the integer dot products of W's bytes
  /// `wQuads` (unsigned) and x's `xQuads` (signed), both vector<lanes x 4 x
  /// i8>, lane i summing the 4 products of row i: a vector.contract of their
  /// extensions to i32, which kiln-lower-int8-dot makes vpdpbusd (or, where
  /// marked kiln.lhs_below_128, vpmaddubsw + vpmaddwd).
  Value integerDot(Value wQuads, Value xQuads, Value acc) {
    MLIRContext *ctx = b.getContext();
    AffineExpr i, kk;
    bindDims(ctx, i, kk);
    AffineMap ik = AffineMap::get(2, 0, {i, kk}, ctx);
    ArrayAttr maps =
        b.getAffineMapArrayAttr({ik, ik, AffineMap::get(2, 0, {i}, ctx)});
    ArrayAttr iters = b.getArrayAttr(
        {vector::IteratorTypeAttr::get(ctx, vector::IteratorType::parallel),
         vector::IteratorTypeAttr::get(ctx, vector::IteratorType::reduction)});
    auto wide = cast<VectorType>(wQuads.getType()).clone(b.getI32Type());
    auto c = vector::ContractionOp::create(
        b, loc, arith::ExtUIOp::create(b, loc, wide, wQuads),
        arith::ExtSIOp::create(b, loc, wide, xQuads), acc, maps, iters);
    // The 4-, 5- and 6-bit types' integers are 0 to 63 (q8_0's up to 255).
    if (*encoding != WeightEncoding::q8_0)
      c->setAttr(kiln::kLhsBelow128Attr, b.getUnitAttr());
    return c.getResult();
  }

  /// Whether this kernel's matrix-vector products take integer dot
  /// products on quantized x (KernelInput::xq) and W's integers.
  bool int8Dot() const {
    return in.xq && encoding && kiln::hasIntegerGroups(*encoding);
  }

  /// tile[m, nl] (+)= dot(x[m, :], w[nl, :]) with int8 activations: per
  /// 32-value group, the integer dot product of W's unsigned integers q
  /// (value = d q - m) with x's signed 8-bit integers xq (x ~ xd xq) is a
  /// vector.contract of their extensions to i32 (extui, extsi) into 8 lanes
  /// (kiln-lower-int8-dot makes it vpdpbusd, or vpmaddubsw + vpmaddwd where
  /// q is below 128; lane i sums 4 values, which share one of x's
  /// scales). Two consecutive groups make one contraction into 16 lanes (one
  /// 512-bit vpdpbusd), converted and scaled by d times the lanes' scales
  /// into an f32 accumulator; the groups' m sum(xd xq) (xm) go into another
  /// and are subtracted at the end. A step covers whole blocks of W and at
  /// least kInt8StepValues values, its pairs rotating over kInt8Chains
  /// accumulators of each kind; the columns past the last whole step (Q4_0
  /// rows whose length is not a multiple of the step) take one group at a
  /// time.
  Value int8MicroKernel(Value tile, Value m, Value nl) {
    const int64_t G = kActivationGroup, S = kActivationScaleGroup;
    int64_t step = std::max(kBlock(), kInt8StepValues);
    int64_t kMain = k / step * step;
    Value pad8 = arith::ConstantIntOp::create(b, loc, b.getI8Type(), 0);
    Value zeroS = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0));
    auto zerosOf = [&](VectorType t, Attribute v) {
      return arith::ConstantOp::create(b, loc, DenseElementsAttr::get(t, v))
          .getResult();
    };
    // The offsets m xm: taken a block at a time (blockM), or summed as d xm
    // where m = mPerD d and scaled once at the end, or summed as m xm.
    bool blockM = kiln::hasBlockOffsets(*encoding);
    float mPerD = kiln::offsetPerScale(*encoding);
    // `groups` (1 or 2) consecutive groups from column `col`: adds d xd
    // dot into `acc` and, unless blockM, m xm (d xm) into `accM`.
    auto accumulate = [&](ArrayRef<kiln::IntegerGroup> grp, Value col,
                          Value &acc, Value *accM) {
      int64_t n = grp.size(), lanes = n * G / S;
      Value q = grp[0].q, d = grp[0].d, mm = grp[0].m;
      if (n == 2) {
        auto concat = [&](Value a, Value c, int64_t len) {
          return vector::ShuffleOp::create(
                     b, loc, a, c,
                     llvm::to_vector(llvm::seq<int64_t>(0, 2 * len)))
              .getResult();
        };
        q = concat(q, grp[1].q, G);
        d = concat(d, grp[1].d, G / S);
        if (accM && !mPerD)
          mm = concat(mm, grp[1].m, G / S);
      }
      VectorType lanesF = VectorType::get({lanes}, f32);
      VectorType lanesI = VectorType::get({lanes}, b.getI32Type());
      VectorType quads = VectorType::get({lanes, S}, b.getI8Type());
      Value xv = vector::TransferReadOp::create(
          b, loc, VectorType::get({n * G}, b.getI8Type()), in.xq,
          ValueRange{m, col}, pad8, ArrayRef<bool>{true});
      Value dot = integerDot(vector::ShapeCastOp::create(b, loc, quads, q),
                             vector::ShapeCastOp::create(b, loc, quads, xv),
                             zerosOf(lanesI, b.getI32IntegerAttr(0)));
      // The lanes' scales (one per 4 values of x), and the lanes' scale
      // times the sum of their integers.
      Value lane = arith::DivUIOp::create(b, loc, col, idx(S));
      Value xd = vector::TransferReadOp::create(b, loc, lanesF, in.xd,
                                                ValueRange{m, lane}, zeroS,
                                                ArrayRef<bool>{true});
      acc = vector::FMAOp::create(b, loc,
                                  arith::SIToFPOp::create(b, loc, lanesF, dot),
                                  arith::MulFOp::create(b, loc, d, xd), acc);
      if (!accM)
        return;
      Value xm = vector::TransferReadOp::create(b, loc, lanesF, in.xm,
                                                ValueRange{m, lane}, zeroS,
                                                ArrayRef<bool>{true});
      *accM = vector::FMAOp::create(b, loc, mPerD ? d : mm, xm, *accM);
    };
    auto group = [&](Value kv, int64_t off, int64_t align) {
      return *kiln::integerGroup(b, loc, *encoding, w, nl, kv, off, align);
    };

    // Whole steps: accs[c] of chain c, then either (blockM) one vector of
    // the blocks' offsets times x's group sums (a lane per sub-block), or
    // the chains' offsets accs[kInt8Chains + c].
    VectorType pairF = VectorType::get({2 * G / S}, f32);
    VectorType subBlocksF = VectorType::get({kBlock() / G}, f32);
    Value zeroPair = zerosOf(pairF, b.getF32FloatAttr(0));
    SmallVector<Value> init(kInt8Chains, zeroPair);
    if (blockM)
      init.push_back(zerosOf(subBlocksF, b.getF32FloatAttr(0)));
    else
      init.append(kInt8Chains, zeroPair);
    SmallVector<Value> accs = loopCarrying(
        idx(0), idx(kMain), step, init, [&](Value kv, SmallVector<Value> &a) {
          for (int64_t off = 0; blockM && off < step; off += kBlock()) {
            Value col = off ? add(kv, idx(off)) : kv;
            Value mins = *kiln::blockOffsets(b, loc, *encoding, w, nl, col);
            Value sums = vector::TransferReadOp::create(
                b, loc, subBlocksF, in.xs,
                ValueRange{m, arith::DivUIOp::create(b, loc, col, idx(G))},
                zeroS, ArrayRef<bool>{true});
            a.back() = vector::FMAOp::create(b, loc, mins, sums, a.back());
          }
          for (int64_t off = 0; off < step; off += 2 * G) {
            int64_t c = off / (2 * G) % kInt8Chains;
            kiln::IntegerGroup pair[2] = {group(kv, off, step),
                                          group(kv, off + G, step)};
            accumulate(pair, off ? add(kv, idx(off)) : kv, a[c],
                       blockM ? nullptr : &a[kInt8Chains + c]);
          }
        });
    Value sum = accs[0];
    for (int64_t c = 1; c < kInt8Chains; ++c)
      sum = arith::AddFOp::create(b, loc, sum, accs[c], fm);
    // m xm: where m = mPerD d, accM holds d xm.
    auto offsets = [&](Value accM) -> Value {
      if (!mPerD)
        return accM;
      auto t = cast<VectorType>(accM.getType());
      return arith::MulFOp::create(
          b, loc, accM,
          arith::ConstantOp::create(
              b, loc, DenseElementsAttr::get(t, b.getF32FloatAttr(mPerD))),
          fm);
    };
    Value total;
    if (blockM) {
      total = arith::SubFOp::create(
          b, loc,
          vector::ReductionOp::create(b, loc, vector::CombiningKind::ADD, sum,
                                      fm),
          vector::ReductionOp::create(b, loc, vector::CombiningKind::ADD,
                                      accs.back(), fm),
          fm);
    } else {
      Value sumM = accs[kInt8Chains];
      for (int64_t c = 1; c < kInt8Chains; ++c)
        sumM = arith::AddFOp::create(b, loc, sumM, accs[kInt8Chains + c], fm);
      total = vector::ReductionOp::create(
          b, loc, vector::CombiningKind::ADD,
          arith::SubFOp::create(b, loc, sum, offsets(sumM), fm), fm);
    }
    assert((!blockM || kMain == k) && "block offsets need whole steps");
    if (kMain < k) {
      VectorType oneF = VectorType::get({G / S}, f32);
      Value z = zerosOf(oneF, b.getF32FloatAttr(0));
      SmallVector<Value> rest =
          loopCarrying(idx(kMain), idx(k), kBlock(), {z, z},
                       [&](Value kv, SmallVector<Value> &a) {
                         for (int64_t off = 0; off < kBlock(); off += G)
                           accumulate(group(kv, off, kBlock()),
                                      off ? add(kv, idx(off)) : kv, a[0],
                                      &a[1]);
                       });
      total = arith::AddFOp::create(
          b, loc, total,
          vector::ReductionOp::create(
              b, loc, vector::CombiningKind::ADD,
              arith::SubFOp::create(b, loc, rest[0], offsets(rest[1]), fm), fm),
          fm);
    }
    Value row =
        vector::BroadcastOp::create(b, loc, VectorType::get({1}, f32), total);
    Value upd = withInit(row, tile, m, nl);
    return vector::TransferWriteOp::create(b, loc, upd, tile,
                                           ValueRange{m, nl},
                                           ArrayRef<bool>{true})
        .getResult();
  }

  /// for iv in [lb, ub) step s, carrying `values` (their final values are
  /// returned): fn(iv, values) updates them.
  SmallVector<Value> loopCarrying(Value lb, Value ub, int64_t s,
                                  ValueRange values,
                                  function_ref<void(Value, SmallVector<Value> &)> fn) {
    auto f = scf::ForOp::create(
        b, loc, lb, ub, idx(s), values,
        [&](OpBuilder &nb, Location, Value iv, ValueRange iter) {
          OpBuilder::InsertionGuard g(b);
          b.setInsertionPointToStart(nb.getInsertionBlock());
          SmallVector<Value> v(iter.begin(), iter.end());
          fn(iv, v);
          scf::YieldOp::create(b, loc, v);
        });
    return SmallVector<Value>(f.getResults());
  }

  /// for iv in [lb, ub) step s: tile = fn(iv, tile).
  Value loop(Value lb, Value ub, int64_t s, Value tile,
             function_ref<Value(Value, Value)> fn) {
    return loopCarrying(lb, ub, s, tile, [&](Value iv, SmallVector<Value> &v) {
      v[0] = fn(iv, v[0]);
    })[0];
  }

  /// floor(v / s) * s
  Value roundDown(Value v, int64_t s) {
    Value q = arith::DivUIOp::create(b, loc, v, idx(s));
    return arith::MulIOp::create(b, loc, q, idx(s));
  }

  /// Dot-product tiles on W as stored: rows [from, rows) x columns
  /// [0, nlen) of `tile`.
  Value dotBlock(Value tile, Value from, Value rows, Value nlen) {
    const int64_t MR = cfg.dotRows, NR = 4;
    Value rowsMain =
        add(from, roundDown(arith::SubIOp::create(b, loc, rows, from), MR));
    Value colsMain = roundDown(nlen, NR);
    tile = loop(from, rowsMain, MR, tile, [&](Value m, Value t) {
      t = loop(idx(0), colsMain, NR, t, [&](Value nl, Value t2) {
        return microKernel(t2, m, nl, MR, NR, 1);
      });
      return loop(colsMain, nlen, 1, t, [&](Value nl, Value t2) {
        return microKernel(t2, m, nl, MR, 1, 1);
      });
    });
    // Rows left over, and matrix-vector products: one row of W at a time
    // (a single stream through the weights), two accumulators.
    return loop(rowsMain, rows, 1, tile, [&](Value m, Value t) {
      return loop(idx(0), nlen, 1, t, [&](Value nl, Value t2) {
        if (int8Dot())
          return int8MicroKernel(t2, m, nl);
        return microKernel(t2, m, nl, 1, 1, 2);
      });
    });
  }

  /// The block's first `cols` rows of W (a multiple of 8) transposed into
  /// `packed` ([k, nb]): packed[kk, j] = w[j, kk], in 8 x 8 register
  /// transposes. One pass over the block's weights, into L2.
  Value pack(Value packed, Value cols) {
    int64_t kStep = std::max<int64_t>(8, kGroup());
    return loop(idx(0), cols, 8, packed, [&](Value n, Value p) {
      return loop(idx(0), idx(k), kStep, p, [&](Value group, Value p2) {
        for (int64_t off = 0; off < kStep; off += 8) {
          Value kk = off ? add(group, idx(off)) : group;
          // x's factor along k goes into the packed weights.
          Value g = in.g ? read1D(in.g, kk, 8) : Value();
          SmallVector<Value> rows;
          for (Value row : consecutive(n, 8)) {
            rows.push_back(readW(row, group, off, 8, kStep));
            if (g)
              rows.back() = arith::MulFOp::create(b, loc, rows.back(), g);
          }
          // Upstream's AVX network (unpacks, shuffles, blends and 128-bit
          // lane permutes in registers; a vector.transpose of a 2-D vector
          // would canonicalize into element-wise extracts and inserts,
          // which spill).
          SmallVector<Value> t(rows);
          ImplicitLocOpBuilder ib(loc, b);
          x86vector::avx2::transpose8x8xf32(ib, t);
          for (auto [i, row] : llvm::enumerate(consecutive(kk, 8)))
            p2 = vector::TransferWriteOp::create(b, loc, t[i], p2,
                                                 ValueRange{row, n},
                                                 ArrayRef<bool>{true})
                     .getResult();
        }
        return p2;
      });
    });
  }

  /// Outer-product tile on packed weights: tile[m + i, n + j] +=
  /// sum_k x[m + i, k] * packed[k, n + j] for i < mr, j < 2 vl. Each k step
  /// loads two vectors of weights and broadcasts mr elements of x into
  /// 2 mr accumulators; no horizontal sums.
  Value outerKernel(Value packed, Value tile, Value m, Value n,
                    int64_t mr) {
    constexpr int64_t kUnroll = 4;
    VectorType vt = VectorType::get({vl}, f32);
    SmallVector<Value> xRows = consecutive(m, mr);
    Value n1 = add(n, idx(vl));
    SmallVector<Value> accs = loopCarrying(
        idx(0), idx(k), kUnroll, SmallVector<Value>(2 * mr, zeros()),
        [&](Value kv, SmallVector<Value> &a) {
          for (int64_t u = 0; u < kUnroll; ++u) {
            Value kk = u ? add(kv, idx(u)) : kv;
            Value w0 = read(packed, kk, n, vl), w1 = read(packed, kk, n1, vl);
            for (int64_t i = 0; i < mr; ++i) {
              Value s = tensor::ExtractOp::create(b, loc, in.xc,
                                                  ValueRange{xRows[i], kk});
              Value x = vector::BroadcastOp::create(b, loc, vt, s);
              a[2 * i] = vector::FMAOp::create(b, loc, x, w0, a[2 * i]);
              a[2 * i + 1] = vector::FMAOp::create(b, loc, x, w1, a[2 * i + 1]);
            }
          }
        });
    for (int64_t i = 0; i < mr; ++i)
      for (int64_t h = 0; h < 2; ++h) {
        Value col = h ? n1 : n;
        Value upd = withInit(scaleRow(accs[2 * i + h], xRows[i]),
                             tile, xRows[i], col);
        tile = vector::TransferWriteOp::create(b, loc, upd, tile,
                                               ValueRange{xRows[i], col},
                                               ArrayRef<bool>{true})
                   .getResult();
      }
    return tile;
  }

  /// Whether the packed tiles are the integer GEMM: x quantized per 32
  /// values (KernelInput::pq) times W's integers packed as bytes.
  bool int8Gemm() const {
    return in.pq && encoding && kiln::hasIntegerGroups(*encoding);
  }

  /// Values per scale of W in the integer GEMM: q6_k's 16, else 32.
  int64_t gemmScaleGroup() const {
    return *encoding == WeightEncoding::q6_k ? 16 : 32;
  }

  /// A block's weights as the integer GEMM reads them: `q` ([k / 4, nb]
  /// i32: q[kq, j] holds W's unsigned integers 4 kq ... 4 kq + 3 of row j,
  /// a byte each, as kiln::integerGroup gives them), `d` ([k / sg, nb] f32:
  /// their scale per gemmScaleGroup() values) and, for weights whose
  /// offsets are not a fixed multiple of d (q4_1, q5_1, q4_k, q5_k), `m`
  /// ([k / 32, nb] f32: value = d q - m).
  struct IntPanels {
    Value q, d, m;
  };

  /// The block's first `cols` rows of W (a multiple of 8) packed into `p`:
  /// per 8 rows and 32 values, each row's kiln::integerGroup, the 8 x 8
  /// transpose of their 4-byte quads (upstream's AVX network, on the quads
  /// as f32 bit patterns) and their scales side by side. One pass over the
  /// block's weights, into L2.
  IntPanels packInt8(IntPanels p, Value cols) {
    const int64_t G = kiln::kDequantizeGroup, blk = kBlock(),
                  sg = gemmScaleGroup();
    bool hasM = static_cast<bool>(p.m);
    Type i32 = b.getI32Type();
    VectorType v8f = VectorType::get({8}, f32), v8i = VectorType::get({8}, i32);
    SmallVector<Value> init{p.q, p.d};
    if (hasM)
      init.push_back(p.m);
    SmallVector<Value> done = loopCarrying(
        idx(0), cols, 8, init, [&](Value n, SmallVector<Value> &outer) {
          outer = loopCarrying(
              idx(0), idx(k), blk, outer, [&](Value kv, SmallVector<Value> &t) {
                for (int64_t off = 0; off < blk; off += G) {
                  SmallVector<Value> quads, ds[2], ms;
                  for (Value row : consecutive(n, 8)) {
                    kiln::IntegerGroup grp = *kiln::integerGroup(
                        b, loc, *encoding, w, row, kv, off, blk);
                    quads.push_back(vector::BitCastOp::create(
                        b, loc, v8f,
                        vector::BitCastOp::create(b, loc, v8i, grp.q)));
                    // Lanes 0 and 4: the scales of the group's halves.
                    for (int64_t h = 0; h < G / sg; ++h)
                      ds[h].push_back(
                          vector::ExtractOp::create(b, loc, grp.d, 4 * h));
                    if (hasM)
                      ms.push_back(vector::ExtractOp::create(b, loc, grp.m, 0));
                  }
                  ImplicitLocOpBuilder ib(loc, b);
                  x86vector::avx2::transpose8x8xf32(ib, quads);
                  Value kq = add(arith::DivUIOp::create(b, loc, kv, idx(4)),
                                 idx(off / 4));
                  for (int64_t j = 0; j < 8; ++j)
                    t[0] = vector::TransferWriteOp::create(
                               b, loc,
                               vector::BitCastOp::create(b, loc, v8i, quads[j]),
                               t[0], ValueRange{add(kq, idx(j)), n},
                               ArrayRef<bool>{true})
                               .getResult();
                  Value kd = add(arith::DivUIOp::create(b, loc, kv, idx(sg)),
                                 idx(off / sg));
                  for (int64_t h = 0; h < G / sg; ++h)
                    t[1] =
                        vector::TransferWriteOp::create(
                            b, loc,
                            vector::FromElementsOp::create(b, loc, v8f, ds[h]),
                            t[1], ValueRange{add(kd, idx(h)), n},
                            ArrayRef<bool>{true})
                            .getResult();
                  if (hasM) {
                    Value km = add(arith::DivUIOp::create(b, loc, kv, idx(G)),
                                   idx(off / G));
                    t[2] = vector::TransferWriteOp::create(
                               b, loc,
                               vector::FromElementsOp::create(b, loc, v8f, ms),
                               t[2], ValueRange{km, n}, ArrayRef<bool>{true})
                               .getResult();
                  }
                }
              });
        });
    return IntPanels{done[0], done[1], hasM ? done[2] : Value()};
  }

  /// The integer GEMM's tile on packed weights: tile[m + i, n + j] +=
  /// sum_k x[m + i, k] * W[n + j, k] for i < mr, j < 2 vl, x as its two
  /// bytes (x ~ pd (256 q1 + q2)). Per group of sg values of k (one scale
  /// of W; a 32-value group of x or half of one), per 4 values: two vectors
  /// of packed bytes times x's q1 and q2 quads broadcast, i8 contractions
  /// into 16 lanes of i32 (vpdpbusd after kiln-lower-int8-dot), one
  /// accumulator for each of q1 and q2. At the group's end, 256 A1 + A2 =
  /// W's integers . v exactly (|sum| < 2^29), converted, scaled by x's pd
  /// and W's d, minus W's offsets (offsetPerScale d, or the m of q4_1,
  /// q5_1 and the k-quants but q6_k) times x's sum.
  Value int8OuterKernel(const IntPanels &p, Value tile, Value m, Value n,
                        int64_t mr) {
    const int64_t G = kiln::kPromptActivationGroup, sg = gemmScaleGroup();
    Type i8 = b.getI8Type(), i32 = b.getI32Type();
    VectorType vf = VectorType::get({vl}, f32), vi = VectorType::get({vl}, i32),
               bytes = VectorType::get({4 * vl}, i8),
               quads = VectorType::get({vl, 4}, i8);
    float mPerD = kiln::offsetPerScale(*encoding);
    bool hasM = static_cast<bool>(p.m);
    Value padI = arith::ConstantIntOp::create(b, loc, i32, 0);
    // vector<vl x i32> as vl x 4 bytes (integerDot's operands).
    auto asQuads = [&](Value v) -> Value {
      return vector::ShapeCastOp::create(
          b, loc, quads, vector::BitCastOp::create(b, loc, bytes, v));
    };
    auto splatI = [&](int64_t v) {
      return arith::ConstantOp::create(
          b, loc, DenseElementsAttr::get(vi, b.getI32IntegerAttr(v)));
    };
    SmallVector<Value> xRows = consecutive(m, mr);
    Value n1 = add(n, idx(vl));
    SmallVector<Value> accs = loopCarrying(
        idx(0), idx(k / sg), 1, SmallVector<Value>(2 * mr, zeros()),
        [&](Value g, SmallVector<Value> &a) {
          // acc[(2 r + h) * 2 + level]: row r, columns n + h vl, q1 or q2.
          SmallVector<Value> iacc(4 * mr, splatI(0));
          Value kq0 = arith::MulIOp::create(b, loc, g, idx(sg / 4));
          // Each row's quads of the group in one read (one tensor op per
          // row, not one per quad: bufferization's analysis grows with
          // them); LLVM folds each lane's broadcast into a load.
          VectorType rowQuads = VectorType::get({sg / 2}, i32);
          Value at0 = arith::MulIOp::create(b, loc, kq0, idx(2));
          SmallVector<Value> xq;
          for (Value r : xRows)
            xq.push_back(vector::TransferReadOp::create(
                b, loc, rowQuads, in.pq, ValueRange{r, at0}, padI,
                ArrayRef<bool>{true}));
          for (int64_t q = 0; q < sg / 4; ++q) {
            Value kq = q ? add(kq0, idx(q)) : kq0;
            Value wv[2];
            for (int64_t h = 0; h < 2; ++h)
              wv[h] = asQuads(vector::TransferReadOp::create(
                  b, loc, vi, p.q, ValueRange{kq, h ? n1 : n}, padI,
                  ArrayRef<bool>{true}));
            for (int64_t r = 0; r < mr; ++r)
              for (int64_t level = 0; level < 2; ++level) {
                Value xs = asQuads(vector::BroadcastOp::create(
                    b, loc, vi,
                    vector::ExtractOp::create(b, loc, xq[r], 2 * q + level)));
                for (int64_t h = 0; h < 2; ++h) {
                  Value &acc = iacc[(2 * r + h) * 2 + level];
                  acc = integerDot(wv[h], xs, acc);
                }
              }
          }
          Value xg =
              sg == G ? g : arith::DivUIOp::create(b, loc, g, idx(G / sg));
          Value s16 = sg == 16 ? g : arith::MulIOp::create(b, loc, g, idx(2));
          Value dv[2], mv[2];
          for (int64_t h = 0; h < 2; ++h) {
            dv[h] = read(p.d, g, h ? n1 : n, vl);
            if (hasM)
              mv[h] = read(p.m, g, h ? n1 : n, vl);
          }
          for (int64_t r = 0; r < mr; ++r) {
            Value u = tensor::ExtractOp::create(b, loc, in.pd,
                                                ValueRange{xRows[r], xg});
            // x's sum over the group.
            Value sum = tensor::ExtractOp::create(b, loc, in.ps,
                                                  ValueRange{xRows[r], s16});
            if (sg == 32)
              sum = arith::AddFOp::create(
                  b, loc, sum,
                  tensor::ExtractOp::create(
                      b, loc, in.ps, ValueRange{xRows[r], add(s16, idx(1))}));
            Value negSum = arith::NegFOp::create(b, loc, sum);
            Value uv = vector::BroadcastOp::create(b, loc, vf, u);
            Value offset = vector::BroadcastOp::create(
                b, loc, vf,
                arith::MulFOp::create(b, loc, negSum,
                                      arith::ConstantOp::create(
                                          b, loc, b.getF32FloatAttr(mPerD))));
            for (int64_t h = 0; h < 2; ++h) {
              Value total = arith::AddIOp::create(
                  b, loc,
                  arith::ShLIOp::create(b, loc, iacc[(2 * r + h) * 2],
                                        splatI(8)),
                  iacc[(2 * r + h) * 2 + 1]);
              Value dot = arith::SIToFPOp::create(b, loc, vf, total);
              Value &acc = a[2 * r + h];
              acc = vector::FMAOp::create(
                  b, loc, dv[h],
                  mPerD ? vector::FMAOp::create(b, loc, dot, uv, offset)
                              .getResult()
                        : arith::MulFOp::create(b, loc, dot, uv).getResult(),
                  acc);
              if (hasM)
                acc = vector::FMAOp::create(
                    b, loc, mv[h],
                    vector::BroadcastOp::create(b, loc, vf, negSum), acc);
            }
          }
        });
    for (int64_t r = 0; r < mr; ++r)
      for (int64_t h = 0; h < 2; ++h) {
        Value col = h ? n1 : n;
        Value upd =
            withInit(scaleRow(accs[2 * r + h], xRows[r]), tile, xRows[r], col);
        tile = vector::TransferWriteOp::create(b, loc, upd, tile,
                                               ValueRange{xRows[r], col},
                                               ArrayRef<bool>{true})
                   .getResult();
      }
    return tile;
  }

  /// Rows of an outer-product tile (by two vectors of columns).
  int64_t outerRows() const { return cfg.outerRows; }

  /// kernel(tile, m, n) over the outer-product tiles of rows [0, rows) and
  /// columns [0, cols): outerRows() rows by two vectors of columns each.
  Value outerTiles(Value tile, Value rows, Value cols,
                   function_ref<Value(Value, Value, Value)> kernel) {
    return loop(idx(0), rows, outerRows(), tile, [&](Value m, Value t) {
      return loop(idx(0), cols, 2 * vl, t,
                  [&](Value n, Value t2) { return kernel(t2, m, n); });
    });
  }

  /// Rows [0, rows) (a multiple of outerRows()) of the block, its weights
  /// packed first (`nb` columns at most; none unless `packIf`, when given):
  /// outer-product tiles of outerRows() rows x 2 vl columns, then the
  /// columns left over with dot products.
  Value packedBlock(Value tile, Value rows, Value nlen, int64_t nb,
                    Value packIf) {
    const int64_t NC = 2 * vl;
    Value cols = roundDown(nlen, NC);
    if (packIf)
      cols = arith::SelectOp::create(b, loc, packIf, cols, idx(0));
    if (int8Gemm()) {
      auto panel = [&](int64_t r, Type t) {
        return tensor::EmptyOp::create(b, loc, ArrayRef<int64_t>{r, nb}, t)
            .getResult();
      };
      IntPanels p{panel(k / 4, b.getI32Type()),
                  panel(k / gemmScaleGroup(), f32),
                  !kiln::offsetPerScale(*encoding)
                      ? panel(k / kiln::kDequantizeGroup, f32)
                      : Value()};
      p = packInt8(p, cols);
      tile = outerTiles(tile, rows, cols, [&](Value t, Value m, Value n) {
        return int8OuterKernel(p, t, m, n, outerRows());
      });
    } else {
      Value packed =
          tensor::EmptyOp::create(b, loc, ArrayRef<int64_t>{k, nb}, f32);
      packed = pack(packed, cols);
      tile = outerTiles(tile, rows, cols, [&](Value t, Value m, Value n) {
        return outerKernel(packed, t, m, n, outerRows());
      });
    }
    return loop(idx(0), rows, 1, tile, [&](Value m, Value t) {
      return loop(cols, nlen, 1, t, [&](Value nl, Value t2) {
        return microKernel(t2, m, nl, 1, 1, 2);
      });
    });
  }

  /// The whole block: rows [0, M) x columns [0, nlen) of `tile`; `nb` is
  /// the most columns a block has. Prompts of cfg.packMinRows rows or more
  /// take the packed outer-product path for their whole tiles of
  /// outerRows() rows, P rows in all; rows [P, M) (all of them for shorter
  /// prompts and decode) the dot-product tiles on W as stored. With a
  /// dynamic row count both paths are emitted and P is chosen at run time
  /// (no branch on tensors).
  Value block(Value tile, Value rows, Value nlen, int64_t nb) {
    // Blocks narrower than one outer-product tile are never packed.
    if (!cfg.packed || nb < 2 * vl)
      return dotBlock(tile, idx(0), rows, nlen);
    std::optional<int64_t> staticRows = getConstantIntValue(rows);
    if (staticRows && *staticRows < cfg.packMinRows)
      return dotBlock(tile, idx(0), rows, nlen);
    Value packedRows = roundDown(rows, outerRows()), big;
    if (!staticRows) {
      big = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, rows,
                                  idx(cfg.packMinRows));
      packedRows = arith::SelectOp::create(b, loc, big, packedRows, idx(0));
    }
    tile = packedBlock(tile, packedRows, nlen, nb, big);
    return dotBlock(tile, packedRows, rows, nlen);
  }

private:
  OpBuilder &b;
  Location loc;
  const KernelInput &in;
  bool zeroInit = false;
  Value initSrc, initCol;
  Value w;
  std::optional<WeightEncoding> encoding;
  int64_t k;
  int64_t vl;
  const KernelConfig &cfg;
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

/// An elementwise generic over the results of two products that read the
/// same `x` (the gated activation `act(x Wg^T) * (x Wu^T)` in @decode),
/// marked by kiln-fuse-epilogues: one kernel computes the same columns of
/// both and applies it.
struct Epilogue {
  linalg::GenericOp op;
  Contraction a, b;
};

/// `op` (marked kiln.epilogue with two inputs) as an Epilogue; an error on
/// the op when it cannot be one.
FailureOr<Epilogue>
readPairEpilogue(linalg::GenericOp op,
                 const llvm::DenseMap<Operation *, Contraction> &linears) {
  auto fail = [&](const Twine &why) {
    op.emitOpError("is marked '")
        << kiln::kEpilogueAttr << "' of two products but " << why;
    return failure();
  };
  if (op.getNumDpsInputs() != 2)
    return fail("is not an elementwise generic of two inputs");
  auto a = linears.find(op.getDpsInputs()[0].getDefiningOp());
  auto b = linears.find(op.getDpsInputs()[1].getDefiningOp());
  if (a == linears.end() || b == linears.end())
    return fail("its inputs are not two configured products used by it "
                "alone");
  const Contraction &la = a->second, &lb = b->second;
  if (std::optional<StringRef> why = kiln::pairEpilogueMismatch(op, la, lb))
    return fail(*why);
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

/// Rows [n0, n0 + len) of what a contraction reads for W ([N, cols]: f32
/// values or a stored weight's bytes): a view.
Value weightRows(OpBuilder &b, Location loc, const Contraction &l,
                 OpFoldResult n0, OpFoldResult len) {
  return tensor::ExtractSliceOp::create(
      b, loc, l.weights(), ArrayRef<OpFoldResult>{n0, b.getIndexAttr(0)},
      ArrayRef<OpFoldResult>{len, b.getIndexAttr(l.weightCols())},
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
/// returns it; `tile()` gives the output's columns [col, col + width) (they
/// hold the output's initial values, if it has any), where the task wants
/// them.
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


/// Products' inputs that are ScaledInputs read by products alone.
using ScaledMap = llvm::DenseMap<Value, ScaledInput>;

/// What the kernels for products of `x` read: `h` and its factors when x is
/// a fused ScaledInput, x itself otherwise.
/// With int8 activations (`cfg`), x is also quantized, as the kernels of
/// its role read it.
KernelInput kernelInput(OpBuilder &b, Location loc, Value x,
                        const ScaledMap &scaled, const KernelConfig &cfg) {
  KernelInput in;
  auto it = scaled.find(x);
  // A prompt's integer GEMM quantizes x (h times g for a ScaledInput; the
  // rows' scales apply to the sums), decode's dot products x unless it is
  // a fused ScaledInput (the kernels then read it as f32).
  auto quantize = [&] {
    int64_t k = cast<RankedTensorType>(in.xc.getType()).getDimSize(1);
    if (!cfg.int8Activations || ShapedType::isDynamic(k))
      return;
    if (!cfg.isDecode() && k % kiln::kPromptActivationGroup == 0)
      quantizePromptActivations(b, loc, k, in);
    else if (cfg.isDecode() && it == scaled.end() && k % kActivationGroup == 0)
      quantizeActivations(b, loc, k, in);
  };
  if (it == scaled.end()) {
    in.xc = collapseTo2D(b, loc, x);
    quantize();
    return in;
  }
  const ScaledInput &s = it->second;
  in.xc = collapseTo2D(b, loc, s.op->getOperand(s.h));
  if (s.g >= 0)
    in.g = s.op->getOperand(s.g);
  quantize();
  if (s.rowFactors.empty())
    return in;
  // The rows' scales, once per row: [M] = product of the row factors,
  // cloned over the row inputs collapsed to [M].
  SmallVector<Value> rows;
  for (unsigned i : s.rowInputs) {
    Value r = s.op->getOperand(i);
    int64_t rank = cast<RankedTensorType>(r.getType()).getRank();
    if (rank > 1) {
      ReassociationIndices all;
      for (int64_t d = 0; d < rank; ++d)
        all.push_back(d);
      r = tensor::CollapseShapeOp::create(b, loc, r,
                                          ArrayRef<ReassociationIndices>{all});
    }
    rows.push_back(r);
  }
  Block &body = linalg::GenericOp(s.op).getRegion().front();
  llvm::SetVector<Operation *> needed;
  SmallVector<Value> work(s.rowFactors.begin(), s.rowFactors.end());
  while (!work.empty()) {
    Operation *def = work.pop_back_val().getDefiningOp();
    if (!def || def->getBlock() != &body || !needed.insert(def))
      continue;
    llvm::append_range(work, def->getOperands());
  }
  Value empty = tensor::EmptyOp::create(
      b, loc, ArrayRef<OpFoldResult>{tensor::getMixedSize(b, loc, in.xc, 0)},
      b.getF32Type());
  AffineMap id = b.getMultiDimIdentityMap(1);
  SmallVector<AffineMap> maps(rows.size() + 1, id);
  in.scale =
      linalg::GenericOp::create(
          b, loc, TypeRange{empty.getType()}, rows, ValueRange{empty}, maps,
          ArrayRef<utils::IteratorType>{utils::IteratorType::parallel},
          [&](OpBuilder &nb, Location nloc, ValueRange args) {
            IRMapping map;
            for (auto [i, arg] : llvm::enumerate(s.rowInputs))
              map.map(body.getArgument(arg), args[i]);
            for (Operation &op : body.without_terminator())
              if (needed.contains(&op))
                nb.clone(op, map);
            Value scale;
            for (Value f : s.rowFactors) {
              Value v = map.lookupOrDefault(f);
              scale = scale ? arith::MulFOp::create(nb, nloc, scale, v)
                                  .getResult()
                            : v;
            }
            linalg::YieldOp::create(nb, nloc, scale);
          })
          .getResult(0);
  return in;
}

/// Ends a generic's body cloned from `body`: yields its results, mapped.
void yieldMapped(OpBuilder &b, Location loc, Block &body, IRMapping &map) {
  SmallVector<Value> yields;
  for (Value v : body.getTerminator()->getOperands())
    yields.push_back(map.lookupOrDefault(v));
  linalg::YieldOp::create(b, loc, yields);
}

/// One kernel for an epilogue and its two products: each task computes the
/// same block of columns of both (into task-local tiles) and applies the
/// epilogue's body to them, writing only the epilogue's result.
void rewriteEpilogue(RewriterBase &b, Epilogue e, const ScaledMap &scaled) {
  b.setInsertionPoint(e.op);
  Location loc = e.op.getLoc();
  int64_t k = e.a.k, n = e.a.n;
  KernelInput in = kernelInput(b, loc, e.a.x(), scaled, e.a.config);
  Value xc = in.xc;
  // A constant when static, so that the kernels pick their strategy at
  // compile time.
  OpFoldResult rowsOfr = tensor::getMixedSize(b, loc, xc, 0);
  Value rows = getValueOrCreateConstantIndexOp(b, loc, rowsOfr);
  const KernelConfig &cfg = e.a.config;
  int64_t nb = cfg.blockCols;
  Value outInit = e.op.getDpsInits()[0];
  Block &body = e.op.getRegion().front();
  Value result = blockLoop(
      b, loc, collapseTo2D(b, loc, outInit), rowsOfr, nb, {n},
      [&](const BlockPlace &p, function_ref<Value()> tile) {
        Value width = getValueOrCreateConstantIndexOp(b, loc, p.width);
        SmallVector<OpFoldResult> tileSizes{rowsOfr, p.width};
        auto product = [&](const Contraction &l) {
          Value local =
              tensor::EmptyOp::create(b, loc, tileSizes, b.getF32Type());
          KernelBuilder kb(b, loc, in, weightRows(b, loc, l, p.n0, p.width),
                           k, cfg, l.encoding());
          if (isZeroFill(l.init()))
            kb.initZero();
          else
            kb.initFrom(collapseTo2D(b, loc, l.init()), p.col);
          return kb.block(local, rows, width, nb);
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
                     yieldMapped(nb, nloc, body, map);
                   })
            .getResult(0);
      });
  b.replaceOp(e.op, expandLike(b, loc, result, outInit));
  b.eraseOp(e.a.op);
  b.eraseOp(e.b.op);
}

/// A generic over one product's result, marked by kiln-fuse-epilogues
/// (RoPE): it reads the product's other columns only within aligned groups
/// of `group` columns of the same row, so a kernel task that computes whole
/// groups applies it to its block (the rotated result is written once, the
/// product's never).
struct GroupEpilogue {
  linalg::GenericOp op;
  int64_t group;
};

/// `r` (marked kiln.epilogue = `group` with one input) as the GroupEpilogue
/// of its input's product; an error on the op when it cannot be one.
FailureOr<std::pair<Operation *, GroupEpilogue>>
readGroupEpilogue(linalg::GenericOp r, int64_t group,
                  const llvm::DenseMap<Operation *, Contraction> &linears) {
  auto fail = [&](const Twine &why) {
    r.emitOpError("is marked '")
        << kiln::kEpilogueAttr << "' of one product but " << why;
    return failure();
  };
  if (std::optional<StringRef> why = kiln::columnEpilogueMismatch(r))
    return fail(*why);
  Value p = r.getDpsInputs()[0];
  auto l = linears.find(p.getDefiningOp());
  if (l == linears.end())
    return fail("its input is not a configured product");
  if (l->second.n % group != 0)
    return fail("its column groups do not tile the product's columns");
  std::optional<int64_t> reads = kiln::readColumnGroup(r, p, l->second.n);
  if (!reads || group % *reads != 0)
    return fail("it reads its input outside aligned groups of that many "
                "columns of the same row");
  return std::make_pair(l->first, GroupEpilogue{r, group});
}

/// `e` applied to a kernel task's block `t` ([rows, width], columns
/// [n0, n0 + width) of the product), written into `dest` (the task's tile
/// of the kernel's output): its body with the product's element and reads
/// of the product taken from `t`.
Value applyGroupEpilogue(OpBuilder &b, Location loc, const GroupEpilogue &e,
                         Value t, Value n0, Value dest) {
  linalg::GenericOp r = e.op;
  Value p = r.getDpsInputs()[0];
  int64_t rank = cast<RankedTensorType>(p.getType()).getRank();
  Block &body = r.getRegion().front();
  AffineMap id = b.getMultiDimIdentityMap(2);
  return linalg::GenericOp::create(
             b, loc, TypeRange{dest.getType()}, ValueRange{t},
             ValueRange{dest}, ArrayRef<AffineMap>{id, id},
             ArrayRef<utils::IteratorType>{utils::IteratorType::parallel,
                                           utils::IteratorType::parallel},
             [&](OpBuilder &nb, Location nloc, ValueRange args) {
               IRMapping map;
               map.map(body.getArgument(0), args[0]);
               map.map(body.getArgument(1), args[1]);
               Value row = linalg::IndexOp::create(nb, nloc, 0);
               Value col = arith::AddIOp::create(
                   nb, nloc, n0, linalg::IndexOp::create(nb, nloc, 1));
               Value zero = arith::ConstantIndexOp::create(nb, nloc, 0);
               for (Operation &op : body.without_terminator()) {
                 if (auto index = dyn_cast<linalg::IndexOp>(op)) {
                   int64_t d = index.getDim();
                   map.map(index.getResult(), d == rank - 1   ? col
                                              : d == rank - 2 ? row
                                                              : zero);
                 } else if (auto ex = dyn_cast<tensor::ExtractOp>(op);
                            ex && ex.getTensor() == p) {
                   ValueRange at = ex.getIndices();
                   Value c = arith::SubIOp::create(
                       nb, nloc, map.lookupOrDefault(at[rank - 1]), n0);
                   map.map(ex.getResult(),
                           tensor::ExtractOp::create(
                               nb, nloc, t,
                               ValueRange{rank > 1
                                              ? map.lookupOrDefault(at[rank - 2])
                                              : zero,
                                          c}));
                 } else {
                   nb.clone(op, map);
                 }
               }
               yieldMapped(nb, nloc, body, map);
             })
      .getResult(0);
}

/// `scf.index_switch` on the member of a group's task: case g (the last
/// member: the default) yields `member(g)`.
Value switchOnMember(OpBuilder &b, Location loc, Type type, Value member,
                     size_t count, function_ref<Value(size_t)> body) {
  SmallVector<int64_t> cases(count - 1);
  std::iota(cases.begin(), cases.end(), 0);
  auto sw = scf::IndexSwitchOp::create(b, loc, TypeRange{type}, member, cases,
                                       cases.size());
  for (size_t g = 0; g < count; ++g) {
    Region &r = g < cases.size() ? sw.getCaseRegions()[g] : sw.getDefaultRegion();
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&r.emplaceBlock());
    scf::YieldOp::create(b, loc, body(g));
  }
  return sw.getResult(0);
}

/// The GroupEpilogue of each product, by product.
using GroupEpilogueMap = llvm::DenseMap<Operation *, GroupEpilogue>;

/// Emits one kernel for a group of contractions that read the same `x`
/// (one member, or sibling projections such as q/k/v or gate/up): an
/// `scf.forall` over the column blocks of all members, each task computing
/// one block of one member's output into the members' outputs laid side by
/// side (`[M, sum N]`); the results are column slices of it. Members with a
/// GroupEpilogue (RoPE) have it applied to each block.
LogicalResult rewrite(RewriterBase &b, ArrayRef<Contraction> members,
                      const ScaledMap &scaled,
                      const GroupEpilogueMap &epilogues) {
  Contraction last = members.back();
  for (const Contraction &l : members) {
    std::optional<WeightEncoding> e = l.encoding(), le = last.encoding();
    if (l.x() != last.x() || l.k != last.k || e != le)
      return l.op->emitOpError("is in '")
             << kiln::kGroupAttr << "' " << l.op->getAttr(kiln::kGroupAttr)
             << " with products that do not read the same x, with the same "
                "K and weight encoding";
  }
  // With epilogues, the kernel goes before the first use of any member's
  // result (where the RoPE tables exist), and its tasks cover whole column
  // groups.
  SmallVector<std::optional<GroupEpilogue>> epi;
  SmallVector<Operation *> ops;
  for (const Contraction &l : members) {
    auto it = epilogues.find(l.op);
    epi.push_back(it == epilogues.end() ? std::nullopt
                                        : std::optional(it->second));
    ops.push_back(l.op);
  }
  Operation *at = kiln::firstUseIn(last.op->getBlock(), ops);
  int64_t group = 0;
  for (std::optional<GroupEpilogue> &e : epi) {
    if (!e)
      continue;
    if ((group && e->group != group) || !at ||
        !kiln::operandsAvailableAt(e->op, at))
      return e->op.emitOpError("is marked '")
             << kiln::kEpilogueAttr
             << "' but its kernel cannot apply it: the column groups of its "
                "kernel's epilogues differ, or what it reads is not "
                "available before the first use of the kernel's results";
    group = e->group;
  }
  b.setInsertionPoint(group ? at : last.op.getOperation());
  Location loc = last.op.getLoc();
  int64_t k = last.k;
  KernelInput in = kernelInput(b, loc, last.x(), scaled, last.config);
  Value xc = in.xc;
  OpFoldResult rowsOfr = tensor::getMixedSize(b, loc, xc, 0);
  Value rows = getValueOrCreateConstantIndexOp(b, loc, rowsOfr);
  bool single = members.size() == 1;

  SmallVector<int64_t> sizes, colStart{0};
  for (const Contraction &l : members) {
    sizes.push_back(l.n);
    colStart.push_back(colStart.back() + l.n);
  }
  // Members share K and the target, so their configurations differ at most
  // in block width (a narrow member's block is its whole width): the
  // kernel takes the widest, and packs only when every member may.
  KernelConfig cfg = last.config;
  for (const Contraction &l : members) {
    cfg.blockCols = std::max(cfg.blockCols, l.config.blockCols);
    cfg.packed &= l.config.packed;
  }
  int64_t nb = cfg.blockCols;
  if (group)
    nb = std::max(group, nb / group * group);

  bool zeroInit = llvm::all_of(
      members, [](const Contraction &l) { return isZeroFill(l.init()); });
  // The kernel writes a fresh [M, sum N] output: zero-initialised products
  // start from nothing, one product with an init (a residual add, a bias)
  // reads it alongside (the residual stream is not overwritten in place,
  // which keeps One-Shot Bufferize's alias sets one layer long), and
  // siblings with inits get them copied in first.
  SmallVector<OpFoldResult> shape{rowsOfr, b.getIndexAttr(colStart.back())};
  Value initc = tensor::EmptyOp::create(b, loc, shape, b.getF32Type());
  Value initSrc;
  if (!zeroInit && single) {
    initSrc = collapseTo2D(b, loc, last.init());
  } else if (!zeroInit) {
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

  Value result = blockLoop(
      b, loc, initc, rowsOfr, nb, sizes,
      [&](const BlockPlace &p, function_ref<Value()> tile) {
        Value w;
        if (single) {
          w = weightRows(b, loc, last, p.n0, p.width);
        } else {
          // Every member's weights are a separate tensor; the task picks
          // its member's (a view: no copy).
          std::optional<int64_t> len = getConstantIntValue(p.width);
          // Members are grouped only with the same encoding
          // (groupSiblings): their W views have one type.
          auto wType = cast<RankedTensorType>(last.weights().getType());
          Type sliceType = RankedTensorType::get(
              {len ? *len : ShapedType::kDynamic, last.weightCols()},
              wType.getElementType());
          w = switchOnMember(b, loc, sliceType, p.member, members.size(),
                             [&](size_t g) {
                               Value s = weightRows(b, loc, members[g],
                                                    p.n0, p.width);
                               if (s.getType() != sliceType)
                                 s = tensor::CastOp::create(b, loc, sliceType,
                                                            s);
                               return s;
                             });
        }
        KernelBuilder kb(b, loc, in, w, k, cfg, last.encoding());
        if (zeroInit)
          kb.initZero();
        else if (initSrc)
          kb.initFrom(initSrc, p.col);
        Value width = getValueOrCreateConstantIndexOp(b, loc, p.width);
        if (!group)
          return kb.block(tile(), rows, width, nb);
        // RoPE reads other columns of the product: the task computes its
        // block into a task-local tile (a fixed size in decode: on the
        // stack), then writes the rotated block, or a copy for members
        // without RoPE (v), into the output.
        Value dest = tile();
        Value t = tensor::EmptyOp::create(
            b, loc, ArrayRef<OpFoldResult>{rowsOfr, b.getIndexAttr(nb)},
            b.getF32Type());
        if (getConstantIntValue(p.width) != nb)
          t = columnSlice(b, loc, t, rowsOfr, b.getIndexAttr(0), p.width);
        if (!zeroInit && !initSrc)
          t = linalg::CopyOp::create(b, loc, dest, t).getResult(0);
        t = kb.block(t, rows, width, nb);
        if (single)
          return applyGroupEpilogue(b, loc, *epi[0], t, p.n0, dest);
        return switchOnMember(
            b, loc, dest.getType(), p.member, members.size(), [&](size_t g) {
              return epi[g] ? applyGroupEpilogue(b, loc, *epi[g], t, p.n0, dest)
                            : linalg::CopyOp::create(b, loc, t, dest)
                                  .getResult(0);
            });
      });
  for (auto [g, member] : llvm::enumerate(members)) {
    Contraction l = member;
    Value mine = single ? result
                        : columnSlice(b, loc, result, rowsOfr,
                                      b.getIndexAttr(colStart[g]),
                                      b.getIndexAttr(l.n));
    Operation *replaced = epi[g] ? epi[g]->op : l.op;
    b.replaceAllUsesWith(replaced->getResult(0),
                         expandLike(b, loc, mine, l.init()));
  }
  for (auto [g, member] : llvm::enumerate(members)) {
    if (epi[g])
      b.eraseOp(epi[g]->op);
    b.eraseOp(member.op);
  }
  return success();
}

} // namespace

namespace {

struct KilnContractionKernelsPass
    : public kiln::impl::KilnContractionKernelsBase<
          KilnContractionKernelsPass> {
  void runOnOperation() override {
    // The contractions kiln-kernel-strategy configured.
    FailureOr<SmallVector<kiln::ConfiguredLinear>> configured =
        kiln::configuredLinears(getOperation());
    if (failed(configured))
      return signalPassFailure();
    SmallVector<Contraction> found;
    llvm::DenseMap<Operation *, Contraction> linears;
    for (const kiln::ConfiguredLinear &l : *configured) {
      Contraction c{l, kiln::getStoredWeight(l.w())};
      found.push_back(c);
      linears.try_emplace(l.op, c);
    }
    // The epilogues kiln-fuse-epilogues and the folded norms kiln-fold-norms
    // decided.
    SmallVector<Epilogue> pairs;
    GroupEpilogueMap groupEpilogues;
    ScaledMap scaled;
    WalkResult walk = getOperation().walk([&](linalg::GenericOp op) {
      if (Attribute attr = op->getAttr(kiln::kEpilogueAttr)) {
        auto group = dyn_cast<IntegerAttr>(attr);
        if (!group || group.getInt() < 1) {
          op.emitOpError("has a malformed '")
              << kiln::kEpilogueAttr << "': " << attr
              << " (a positive column count)";
          return WalkResult::interrupt();
        }
        if (op.getNumDpsInputs() == 2 && group.getInt() == 1) {
          FailureOr<Epilogue> e = readPairEpilogue(op, linears);
          if (failed(e))
            return WalkResult::interrupt();
          pairs.push_back(*e);
        } else {
          auto e = readGroupEpilogue(op, group.getInt(), linears);
          if (failed(e))
            return WalkResult::interrupt();
          groupEpilogues.insert(*e);
        }
      }
      if (op->hasAttr(kiln::kFoldIntoProductsAttr)) {
        Value x = op->getResult(0);
        std::optional<kiln::ScaledInput> s = kiln::matchScaledInput(x);
        if (!s || !llvm::all_of(x.getUsers(), [&](Operation *u) {
              return linears.contains(u);
            })) {
          op.emitOpError("is marked '")
              << kiln::kFoldIntoProductsAttr
              << "' but is not a norm (h * f(rows) * g[k]) read by "
                 "configured products alone";
          return WalkResult::interrupt();
        }
        scaled.try_emplace(x, *s);
      }
      return WalkResult::advance();
    });
    if (walk.wasInterrupted())
      return signalPassFailure();
    // A pair epilogue's products are its kernel: out of their group.
    llvm::SmallPtrSet<Operation *, 8> taken;
    for (const Epilogue &e : pairs) {
      taken.insert(e.a.op);
      taken.insert(e.b.op);
    }
    llvm::erase_if(found,
                   [&](const Contraction &l) { return taken.contains(l.op); });
    IRRewriter rewriter(&getContext());
    for (Epilogue &e : pairs)
      rewriteEpilogue(rewriter, e, scaled);
    for (ArrayRef<Contraction> group :
         kiln::splitIntoGroups<Contraction>(found, kiln::kGroupAttr))
      if (failed(rewrite(rewriter, group, scaled, groupEpilogues)))
        return signalPassFailure();
    for (auto &[x, s] : scaled)
      rewriter.eraseOp(s.op);
    // Stored weights the kernels now read directly: their dequantized
    // copies are never made.
    getOperation().walk([&](linalg::GenericOp op) {
      if (op->hasAttr(kiln::kDequantizeAttr) && op->use_empty())
        rewriter.eraseOp(op);
    });
  }
};

} // namespace
