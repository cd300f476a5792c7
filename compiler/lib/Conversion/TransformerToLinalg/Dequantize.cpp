//===- Dequantize.cpp - Stored weights read as f32 values -----------------===//
//
// One element of a stored weight, as ggml's dequantize_row_* computes it
// (llama.cpp's ggml/src/ggml-quants.c; block layouts in ggml-common.h and
// /work/shared/QUANT.md), and the generic that dequantizes a whole weight.
//
//===----------------------------------------------------------------------===//

#include "kiln/Conversion/Dequantize.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace kiln::transformer;

namespace {

/// Scalar reads of one row of a weight's bytes, and the integer arithmetic
/// ggml's reference dequantizers do on them.
class RowReader {
public:
  RowReader(OpBuilder &b, Location loc, Value storage, Value row)
      : b(b), loc(loc), storage(storage), row(row) {}

  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value i32(int64_t v) {
    return arith::ConstantIntOp::create(b, loc, b.getI32Type(), v);
  }
  Value addIdx(Value a, int64_t c) {
    return c ? arith::AddIOp::create(b, loc, a, idx(c)).getResult() : a;
  }
  Value addIdx(Value a, Value c) { return arith::AddIOp::create(b, loc, a, c); }
  Value mulIdx(Value a, int64_t c) {
    return arith::MulIOp::create(b, loc, a, idx(c));
  }
  Value divIdx(Value a, int64_t c) {
    return arith::DivUIOp::create(b, loc, a, idx(c));
  }
  Value remIdx(Value a, int64_t c) {
    return arith::RemUIOp::create(b, loc, a, idx(c));
  }

  /// The byte at `offset` of the row, zero-extended to i32.
  Value u8(Value offset) {
    Value v = tensor::ExtractOp::create(b, loc, storage, ValueRange{row, offset});
    return arith::ExtUIOp::create(b, loc, b.getI32Type(), v);
  }
  /// The byte at `offset`, sign-extended to i32.
  Value s8(Value offset) {
    Value v = tensor::ExtractOp::create(b, loc, storage, ValueRange{row, offset});
    return arith::ExtSIOp::create(b, loc, b.getI32Type(), v);
  }
  /// The little-endian 16 bits at `offset`, in the low half of an i32.
  Value u16(Value offset) {
    return orI(u8(offset), shl(u8(addIdx(offset, 1)), 8));
  }
  /// The IEEE half at `offset`, widened (exactly) to f32.
  Value half(Value offset) {
    Value bits = arith::TruncIOp::create(b, loc, b.getI16Type(), u16(offset));
    Value h = arith::BitcastOp::create(b, loc, b.getF16Type(), bits);
    return arith::ExtFOp::create(b, loc, b.getF32Type(), h);
  }
  /// The bfloat16 at `offset`, widened (exactly) to f32.
  Value bhalf(Value offset) {
    return arith::BitcastOp::create(b, loc, b.getF32Type(),
                                    shl(u16(offset), 16));
  }

  /// `v` as an integer constant of type `like` (a splat for a vector).
  Value intLike(Value like, int64_t v) {
    Type t = like.getType();
    if (auto vt = dyn_cast<VectorType>(t))
      return arith::ConstantOp::create(
          b, loc, DenseElementsAttr::get(
                      vt, IntegerAttr::get(vt.getElementType(), v)));
    return arith::ConstantIntOp::create(b, loc, t, v);
  }
  /// A scalar `s` broadcast to the vector type of `like` (itself otherwise).
  Value splatLike(Value like, Value s) {
    if (isa<VectorType>(like.getType()) && !isa<VectorType>(s.getType()))
      return vector::BroadcastOp::create(b, loc, like.getType(), s);
    return s;
  }

  Value shl(Value v, int64_t s) {
    return s ? arith::ShLIOp::create(b, loc, v, intLike(v, s)).getResult() : v;
  }
  Value shl(Value v, Value s) {
    return arith::ShLIOp::create(b, loc, v, splatLike(v, s));
  }
  Value shr(Value v, Value s) {
    return arith::ShRUIOp::create(b, loc, v, splatLike(v, s));
  }
  Value shr(Value v, int64_t s) { return s ? shr(v, intLike(v, s)) : v; }
  Value andI(Value v, int64_t m) {
    return arith::AndIOp::create(b, loc, v, intLike(v, m));
  }
  Value orI(Value a, Value c) {
    return arith::OrIOp::create(b, loc, a, splatLike(a, c));
  }
  Value subI(Value a, int64_t c) {
    return arith::SubIOp::create(b, loc, a, intLike(a, c));
  }
  Value toI32(Value index) {
    return arith::IndexCastUIOp::create(b, loc, b.getI32Type(), index);
  }
  Value toF32(Value i) {
    Type f32 = b.getF32Type();
    if (auto vt = dyn_cast<VectorType>(i.getType()))
      f32 = VectorType::get(vt.getShape(), f32);
    return arith::SIToFPOp::create(b, loc, f32, i);
  }
  /// Float products and sums; a scalar operand is broadcast to the other's
  /// vector type (the operand order is kept: it is ggml's).
  Value mulF(Value a, Value c) {
    return arith::MulFOp::create(b, loc, splatLike(c, a), splatLike(a, c));
  }
  Value addF(Value a, Value c) {
    return arith::AddFOp::create(b, loc, splatLike(c, a), splatLike(a, c));
  }
  Value subF(Value a, Value c) {
    return arith::SubFOp::create(b, loc, splatLike(c, a), splatLike(a, c));
  }
  Value select(Value c, Value t, Value f) {
    return arith::SelectOp::create(b, loc, c, t, f);
  }
  Value ult(Value a, int64_t c) {
    return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, a, idx(c));
  }

  /// `n` consecutive bytes of the row from `offset`, zero- or sign-extended
  /// to i32 lanes.
  Value bytes(Value offset, int64_t n) {
    Value pad = arith::ConstantIntOp::create(b, loc, b.getI8Type(), 0);
    return vector::TransferReadOp::create(
        b, loc, VectorType::get({n}, b.getI8Type()), storage,
        ValueRange{row, offset}, pad, ArrayRef<bool>{true});
  }
  Value u8s(Value offset, int64_t n) {
    return arith::ExtUIOp::create(
        b, loc, VectorType::get({n}, b.getI32Type()), bytes(offset, n));
  }
  Value s8s(Value offset, int64_t n) {
    return arith::ExtSIOp::create(
        b, loc, VectorType::get({n}, b.getI32Type()), bytes(offset, n));
  }
  /// 0, 1, ..., n - 1 plus `start` (an i32), as i32 lanes.
  Value lanesFrom(Value start, int64_t n) {
    SmallVector<int32_t> iota;
    for (int64_t i = 0; i < n; ++i)
      iota.push_back(i);
    Value v = arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(VectorType::get({n}, b.getI32Type()),
                                       ArrayRef<int32_t>(iota)));
    return arith::AddIOp::create(b, loc, v, splatLike(v, start));
  }
  /// The little-endian 32 bits at `offset`.
  Value u32(Value offset) {
    return orI(u16(offset), shl(u16(addIdx(offset, 2)), 16));
  }

  /// Nibble `high` (0 or 1, an i32) of `byte` (i32 or i32 lanes).
  Value nibble(Value byte, Value high) {
    return andI(shr(byte, shl(high, 2)), 15);
  }

  /// The IEEE half at `offset` read as one 16-bit value (a vector read of
  /// 2 bytes), widened (exactly) to f32: what the kernels use; the scalar
  /// form (half) assembles it from two byte reads.
  Value halfLoad(Value offset) {
    Value two = vector::BitCastOp::create(
        b, loc, VectorType::get({1}, b.getF16Type()), bytes(offset, 2));
    Value h = vector::ExtractOp::create(b, loc, two, 0);
    return arith::ExtFOp::create(b, loc, b.getF32Type(), h);
  }

  /// Lanes `mask` of the bytes `v` (a vector of i8), zero-extended to i32.
  Value pick(Value v, ArrayRef<int64_t> mask) {
    Value s = vector::ShuffleOp::create(b, loc, v, v, mask);
    return arith::ExtUIOp::create(
        b, loc, VectorType::get({(int64_t)mask.size()}, b.getI32Type()), s);
  }

  /// The 6-bit scales and mins of all 8 sub-blocks of a Q4_K/Q5_K block
  /// whose 12 scale bytes start at `scales` (get_scale_min_k4 for j = 0..7
  /// at once), as two vector<8xi32>.
  std::pair<Value, Value> scalesMinsK4(Value scales) {
    // 16 bytes from `scales`: the 12 scale bytes and 4 of the block's next
    // field (in bounds; never used).
    Value q = bytes(scales, 16);
    // Lane j: q[j] or q[j + 4] (j < 4), and the bytes j >= 4 combine.
    Value a = pick(q, {0, 1, 2, 3, 8, 9, 10, 11});  // sc, j < 4: q[j]
    Value bb = pick(q, {0, 1, 2, 3, 0, 1, 2, 3});   // j >= 4: q[j - 4]
    Value c = pick(q, {4, 5, 6, 7, 8, 9, 10, 11});  // m, j < 4: q[j + 4]
    Value dd = pick(q, {4, 5, 6, 7, 4, 5, 6, 7});   // j >= 4: q[j]
    auto i1s = VectorType::get({8}, b.getI1Type());
    Value low = arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(
                    i1s, ArrayRef<bool>{true, true, true, true, false, false,
                                        false, false}));
    Value scHigh = orI(andI(a, 15), shl(shr(bb, 6), 4));
    Value mHigh = orI(shr(c, 4), shl(shr(dd, 6), 4));
    return {select(low, andI(a, 63), scHigh), select(low, andI(c, 63), mHigh)};
  }

  /// Where the 32-value group at column `group + offset` lies (`group` a
  /// multiple of `groupAlign`, `offset` a constant below it): the byte
  /// offset of its block (`base`), its sub-block in the block (`sub`, a
  /// constant when `groupAlign` spans whole blocks: `aligned`, `j`), and
  /// the offset left within the group.
  struct GroupPlace {
    Value base, sub;
    bool aligned;
    int64_t j, offset;
  };
  GroupPlace place(EncodingBlock block, Value group, int64_t offset,
                   int64_t groupAlign) {
    assert(groupAlign % kiln::kDequantizeGroup == 0 && offset < groupAlign &&
           "offset outside the aligned group");
    GroupPlace p;
    int64_t groupOffset =
        offset / kiln::kDequantizeGroup * kiln::kDequantizeGroup;
    p.offset = offset % kiln::kDequantizeGroup;
    p.aligned = groupAlign % block.elements == 0;
    p.j = groupOffset % block.elements / kiln::kDequantizeGroup;
    if (p.aligned) {
      p.base = addIdx(mulIdx(divIdx(group, block.elements), block.bytes),
                      groupOffset / block.elements * block.bytes);
      p.sub = idx(p.j);
    } else {
      group = addIdx(group, groupOffset);
      p.base = mulIdx(divIdx(group, block.elements), block.bytes);
      p.sub = divIdx(remIdx(group, block.elements), kiln::kDequantizeGroup);
    }
    return p;
  }

  /// A Q4_K/Q5_K sub-block's d * sc and dmin * m. With the sub-block a
  /// constant, those of all 8 sub-blocks are computed by vector operations
  /// (the same for every vector of the block, shared by CSE) and one lane
  /// is taken.
  std::pair<Value, Value> subBlockScaleMinK4(const GroupPlace &p) {
    Value d = halfLoad(p.base), dmin = halfLoad(addIdx(p.base, 2));
    if (p.aligned) {
      auto [scs, ms] = scalesMinsK4(addIdx(p.base, 4));
      Value d1s = mulF(d, toF32(scs)), m1s = mulF(dmin, toF32(ms));
      return {vector::ExtractOp::create(b, loc, d1s, p.j),
              vector::ExtractOp::create(b, loc, m1s, p.j)};
    }
    auto [sc, m] = scaleMinK4(addIdx(p.base, 4), p.sub);
    return {mulF(d, toF32(sc)), mulF(dmin, toF32(m))};
  }

  /// The 6-bit scale and min of sub-block `j` (an index in [0, 8)) of a
  /// Q4_K/Q5_K block whose 12 scale bytes start at `scales`
  /// (get_scale_min_k4).
  std::pair<Value, Value> scaleMinK4(Value scales, Value j) {
    Value lowSub = ult(j, 4);
    // j < 4: sc = q[j] & 63, m = q[j + 4] & 63.
    Value qj = u8(addIdx(scales, j)), qj4 = u8(addIdx(scales, addIdx(j, 4)));
    // j >= 4: sc = (q[j + 4] & 15) | ((q[j - 4] >> 6) << 4),
    //         m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4).
    Value jm4 = arith::SubIOp::create(b, loc, j, idx(4));
    // Clamp so that the (unused) read for j < 4 stays inside the block.
    jm4 = select(lowSub, idx(0), jm4);
    Value qjm4 = u8(addIdx(scales, jm4));
    Value scHigh = orI(andI(qj4, 15), shl(shr(qjm4, 6), 4));
    Value mHigh = orI(shr(qj4, 4), shl(shr(qj, 6), 4));
    return {select(lowSub, andI(qj, 63), scHigh),
            select(lowSub, andI(qj4, 63), mHigh)};
  }

private:
  OpBuilder &b;
  Location loc;
  Value storage, row;
};

} // namespace

Value kiln::dequantizeElement(OpBuilder &b, Location loc,
                              WeightEncoding encoding, Value storage,
                              Value row, Value col) {
  RowReader r(b, loc, storage, row);
  EncodingBlock block = getEncodingBlock(encoding);
  Value base = r.mulIdx(r.divIdx(col, block.elements), block.bytes);
  Value j = r.remIdx(col, block.elements);
  switch (encoding) {
  case WeightEncoding::f16:
    return r.half(base);
  case WeightEncoding::bf16:
    return r.bhalf(base);
  case WeightEncoding::q8_0:
    // d * qs[j]
    return r.mulF(r.half(base), r.toF32(r.s8(r.addIdx(r.addIdx(base, 2), j))));
  case WeightEncoding::q4_0:
  case WeightEncoding::q4_1:
  case WeightEncoding::q5_0:
  case WeightEncoding::q5_1: {
    // Weight j < 16 is the low nibble of qs[j], weight j >= 16 the high
    // nibble of qs[j - 16]; Q5 adds bit j of qh as the fifth bit.
    bool hasMin = encoding == WeightEncoding::q4_1 ||
                  encoding == WeightEncoding::q5_1;
    bool five = encoding == WeightEncoding::q5_0 ||
                encoding == WeightEncoding::q5_1;
    int64_t qsAt = (hasMin ? 4 : 2) + (five ? 4 : 0);
    Value ji = r.toI32(j);
    Value high = r.shr(ji, 4);
    Value q = r.nibble(r.u8(r.addIdx(base, r.addIdx(r.remIdx(j, 16), qsAt))),
                       high);
    if (five) {
      Value qhAt = r.addIdx(base, hasMin ? 4 : 2);
      // The byte of qh holding bit j, and the bit's place in it.
      Value qhByte = r.u8(r.addIdx(qhAt, r.divIdx(j, 8)));
      Value bit = r.andI(r.shr(qhByte, r.andI(ji, 7)), 1);
      q = r.orI(q, r.shl(bit, 4));
    }
    Value d = r.half(base);
    if (!hasMin)
      return r.mulF(r.toF32(r.subI(q, five ? 16 : 8)), d);
    Value m = r.half(r.addIdx(base, 2));
    return r.addF(r.mulF(r.toF32(q), d), m);
  }
  case WeightEncoding::q4_k:
  case WeightEncoding::q5_k: {
    // 4 chunks of 64: the low nibbles of 32 bytes are sub-block 2c, the
    // high nibbles sub-block 2c + 1. y = d * sc * q - dmin * m.
    bool five = encoding == WeightEncoding::q5_k;
    Value chunk = r.divIdx(j, 64), w = r.remIdx(j, 64);
    Value high = r.toI32(r.divIdx(w, 32)), l = r.remIdx(w, 32);
    Value sub = r.addIdx(r.mulIdx(chunk, 2), r.divIdx(w, 32));
    auto [sc, m] = r.scaleMinK4(r.addIdx(base, 4), sub);
    Value qsAt = r.addIdx(base, five ? 48 : 16);
    Value q = r.nibble(r.u8(r.addIdx(qsAt, r.addIdx(r.mulIdx(chunk, 32), l))),
                       high);
    if (five) {
      // Bit `sub` of qh[l] adds 16.
      Value qh = r.u8(r.addIdx(r.addIdx(base, 16), l));
      Value bit = r.andI(r.shr(qh, r.toI32(sub)), 1);
      q = r.orI(q, r.shl(bit, 4));
    }
    Value d1 = r.mulF(r.half(base), r.toF32(sc));
    Value m1 = r.mulF(r.half(r.addIdx(base, 2)), r.toF32(m));
    return r.subF(r.mulF(d1, r.toF32(q)), m1);
  }
  case WeightEncoding::q6_k: {
    // Two halves of 128; in half h, group g (of 32) element l reads
    // ql[64h + 32 (g & 1) + l] (low nibble for g < 2, high otherwise) and
    // bits 2g, 2g + 1 of qh[32h + l]; scale sc[8h + l / 16 + 2g].
    // y = d * sc * (q - 32).
    Value h = r.divIdx(j, 128), rem = r.remIdx(j, 128);
    Value g = r.divIdx(rem, 32), l = r.remIdx(rem, 32);
    Value gi = r.toI32(g);
    Value ql = r.u8(r.addIdx(
        base, r.addIdx(r.addIdx(r.mulIdx(h, 64), r.mulIdx(r.remIdx(g, 2), 32)),
                       l)));
    Value low4 = r.nibble(ql, r.shr(gi, 1));
    Value qh = r.u8(r.addIdx(base, r.addIdx(r.addIdx(r.mulIdx(h, 32), l), 128)));
    Value high2 = r.andI(r.shr(qh, r.shl(gi, 1)), 3);
    Value q = r.subI(r.orI(low4, r.shl(high2, 4)), 32);
    Value scAt = r.addIdx(
        base, r.addIdx(r.addIdx(r.mulIdx(h, 8), r.divIdx(l, 16)),
                       r.addIdx(r.mulIdx(g, 2), 192)));
    Value sc = r.s8(scAt);
    Value d = r.half(r.addIdx(base, 208));
    return r.mulF(r.mulF(d, r.toF32(sc)), r.toF32(q));
  }
  }
  llvm_unreachable("unknown weight encoding");
}

Value kiln::weightElement(OpBuilder &b, Location loc,
                          std::optional<WeightEncoding> encoding, Value weight,
                          Value row, Value col) {
  if (encoding)
    return dequantizeElement(b, loc, *encoding, weight, row, col);
  return tensor::ExtractOp::create(b, loc, weight, ValueRange{row, col});
}

Value kiln::dequantizeVector(OpBuilder &b, Location loc,
                             WeightEncoding encoding, Value storage, Value row,
                             Value group, int64_t offset, int64_t lanes,
                             int64_t groupAlign) {
  RowReader r(b, loc, storage, row);
  const int64_t n = lanes;
  EncodingBlock block = getEncodingBlock(encoding);

  VectorType f32s = VectorType::get({n}, b.getF32Type());
  switch (encoding) {
  case WeightEncoding::f16:
  case WeightEncoding::bf16: {
    Value at = r.mulIdx(r.addIdx(group, offset), 2);
    if (encoding == WeightEncoding::f16) {
      Value h = vector::BitCastOp::create(
          b, loc, VectorType::get({n}, b.getF16Type()), r.bytes(at, 2 * n));
      return arith::ExtFOp::create(b, loc, f32s, h);
    }
    Value h = vector::BitCastOp::create(
        b, loc, VectorType::get({n}, b.getI16Type()), r.bytes(at, 2 * n));
    Value w = arith::ExtUIOp::create(
        b, loc, VectorType::get({n}, b.getI32Type()), h);
    return arith::BitcastOp::create(b, loc, f32s, r.shl(w, 16));
  }
  default:
    break;
  }
  RowReader::GroupPlace at = r.place(block, group, offset, groupAlign);
  Value base = at.base, sub = at.sub;
  bool blockAligned = at.aligned;
  offset = at.offset;
  switch (encoding) {
  case WeightEncoding::q8_0:
    return r.mulF(r.halfLoad(base), r.toF32(r.s8s(r.addIdx(base, 2 + offset), n)));
  case WeightEncoding::q4_0:
  case WeightEncoding::q4_1:
  case WeightEncoding::q5_0:
  case WeightEncoding::q5_1: {
    // The group is the block: weight j = offset + lane.
    bool hasMin = encoding == WeightEncoding::q4_1 ||
                  encoding == WeightEncoding::q5_1;
    bool five = encoding == WeightEncoding::q5_0 ||
                encoding == WeightEncoding::q5_1;
    int64_t qsAt = (hasMin ? 4 : 2) + (five ? 4 : 0);
    Value q = r.andI(
        r.shr(r.u8s(r.addIdx(base, qsAt + offset % 16), n), offset / 16 * 4),
        15);
    if (five) {
      Value qh = r.u32(r.addIdx(base, hasMin ? 4 : 2));
      Value bits = r.andI(r.shr(r.splatLike(q, qh), r.lanesFrom(r.i32(offset), n)), 1);
      q = r.orI(q, r.shl(bits, 4));
    }
    Value d = r.halfLoad(base);
    if (!hasMin)
      return r.mulF(r.toF32(r.subI(q, five ? 16 : 8)), d);
    Value m = r.halfLoad(r.addIdx(base, 2));
    return r.addF(r.mulF(r.toF32(q), d), m);
  }
  case WeightEncoding::q4_k:
  case WeightEncoding::q5_k: {
    bool five = encoding == WeightEncoding::q5_k;
    Value chunk = r.divIdx(sub, 2);
    Value high = r.toI32(r.remIdx(sub, 2));
    auto [d1, m1] = r.subBlockScaleMinK4(at);
    Value qsAt = r.addIdx(base, (five ? 48 : 16) + offset);
    Value q = r.nibble(r.u8s(r.addIdx(qsAt, r.mulIdx(chunk, 32)), n), high);
    if (five) {
      Value qh = r.u8s(r.addIdx(base, 16 + offset), n);
      Value bit = r.andI(r.shr(qh, r.toI32(sub)), 1);
      q = r.orI(q, r.shl(bit, 4));
    }
    return r.subF(r.mulF(d1, r.toF32(q)), m1);
  }
  case WeightEncoding::q6_k: {
    // Group g of half h: sub = 4h + g.
    Value h = r.divIdx(sub, 4), g = r.remIdx(sub, 4);
    Value gi = r.toI32(g);
    Value ql = r.u8s(
        r.addIdx(base, r.addIdx(r.addIdx(r.mulIdx(h, 64),
                                         r.mulIdx(r.remIdx(g, 2), 32)),
                                offset)),
        n);
    Value low4 = r.nibble(ql, r.shr(gi, 1));
    Value qh = r.u8s(r.addIdx(base, r.addIdx(r.mulIdx(h, 32), 128 + offset)), n);
    Value high2 = r.andI(r.shr(qh, r.shl(gi, 1)), 3);
    Value q = r.subI(r.orI(low4, r.shl(high2, 4)), 32);
    Value scAt = r.addIdx(
        base, r.addIdx(r.addIdx(r.mulIdx(h, 8), r.mulIdx(g, 2)),
                       192 + offset / 16));
    Value d = r.halfLoad(r.addIdx(base, 208));
    Value scale;
    if (blockAligned) {
      // d * sc of all 16 scales by vector operations (shared by CSE), one
      // lane taken.
      Value scs = arith::ExtSIOp::create(
          b, loc, VectorType::get({16}, b.getI32Type()),
          r.bytes(r.addIdx(base, 192), 16));
      Value scales = r.mulF(d, r.toF32(scs));
      int64_t j = at.j * 2 + offset / 16;
      scale = vector::ExtractOp::create(b, loc, scales, j);
    } else {
      scale = r.mulF(d, r.toF32(r.s8(scAt)));
    }
    return r.mulF(scale, r.toF32(q));
  }
  default:
    break;
  }
  llvm_unreachable("unknown weight encoding");
}

std::optional<kiln::IntegerGroup>
kiln::integerGroup(OpBuilder &b, Location loc, WeightEncoding encoding,
                   Value storage, Value row, Value group, int64_t offset,
                   int64_t groupAlign) {
  if (!hasIntegerGroups(encoding))
    return std::nullopt;
  assert(groupAlign % kDequantizeGroup == 0 && offset < groupAlign &&
         offset % kDequantizeGroup == 0 && "offset outside the aligned group");
  RowReader r(b, loc, storage, row);
  EncodingBlock block = getEncodingBlock(encoding);
  RowReader::GroupPlace at = r.place(block, group, offset, groupAlign);
  Value base = at.base, sub = at.sub;
  VectorType bytes16 = VectorType::get({16}, b.getI8Type());
  VectorType bytes32 = VectorType::get({32}, b.getI8Type());
  VectorType lanes = VectorType::get({8}, b.getF32Type());
  auto splat8 = [&](VectorType t, int64_t v) {
    return arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(t, b.getI8IntegerAttr(v)));
  };
  // One scale for all 8 lanes.
  auto all = [&](Value scalar) {
    return vector::BroadcastOp::create(b, loc, lanes, scalar).getResult();
  };
  if (encoding == WeightEncoding::q6_k) {
    // Only whole blocks (the decode kernels' steps): group j = 4h + g of
    // half h reads ql[64h + 32 (g % 2) + l] (high nibbles for g >= 2) and
    // bits 2g, 2g + 1 of qh[128 + 32h + l]; q = low4 | high2 << 4 in
    // [0, 63], value = d sc (q - 32), one 8-bit scale per 16 values.
    if (!at.aligned)
      return std::nullopt;
    int64_t h = at.j / 4, g = at.j % 4;
    Value ql = r.bytes(r.addIdx(base, 64 * h + 32 * (g % 2)), 32);
    Value low4 = g / 2 ? arith::ShRUIOp::create(b, loc, ql, splat8(bytes32, 4))
                             .getResult()
                       : arith::AndIOp::create(b, loc, ql, splat8(bytes32, 15))
                             .getResult();
    Value qh = r.bytes(r.addIdx(base, 128 + 32 * h), 32);
    if (g)
      qh = arith::ShRUIOp::create(b, loc, qh, splat8(bytes32, 2 * g));
    Value high2 = arith::AndIOp::create(b, loc, qh, splat8(bytes32, 3));
    Value q = arith::OrIOp::create(
        b, loc, low4,
        arith::ShLIOp::create(b, loc, high2, splat8(bytes32, 4)));
    // d * sc of all 16 scales (as dequantizeVector computes them), lanes
    // 0-3 taking scale 2j, lanes 4-7 scale 2j + 1.
    Value scs = arith::ExtSIOp::create(b, loc,
                                       VectorType::get({16}, b.getI32Type()),
                                       r.bytes(r.addIdx(base, 192), 16));
    Value scales = r.mulF(r.halfLoad(r.addIdx(base, 208)), r.toF32(scs));
    int64_t s0 = 2 * at.j, s1 = 2 * at.j + 1;
    Value d = vector::ShuffleOp::create(
        b, loc, scales, scales,
        ArrayRef<int64_t>{s0, s0, s0, s0, s1, s1, s1, s1});
    Value m = arith::MulFOp::create(
        b, loc,
        arith::ConstantOp::create(
            b, loc,
            DenseElementsAttr::get(
                lanes, b.getF32FloatAttr(offsetPerScale(encoding)))),
        d);
    return IntegerGroup{q, d, m};
  }
  if (encoding == WeightEncoding::q8_0) {
    // Bytes 2..33: the 32 signed integers; q + 128 (unsigned) is the byte
    // with its sign bit flipped.
    Value qs = r.bytes(r.addIdx(base, 2), 32);
    Value q = arith::XOrIOp::create(b, loc, qs, splat8(bytes32, -128));
    Value d = r.halfLoad(base);
    Value zeroPoint = arith::ConstantOp::create(
        b, loc, b.getF32FloatAttr(offsetPerScale(encoding)));
    return IntegerGroup{q, all(d),
                        all(arith::MulFOp::create(b, loc, zeroPoint, d))};
  }
  // Bit l of the 32 bits `qh` (an i32) as bit 4 of byte l, or'd into q.
  auto withHighBits = [&](Value q, Value qh) {
    VectorType i32s = VectorType::get({32}, b.getI32Type());
    SmallVector<int32_t> iota;
    for (int32_t i = 0; i < 32; ++i)
      iota.push_back(i);
    Value bits = arith::AndIOp::create(
        b, loc,
        arith::ShRUIOp::create(
            b, loc, vector::BroadcastOp::create(b, loc, i32s, qh),
            arith::ConstantOp::create(
                b, loc, DenseElementsAttr::get(i32s, ArrayRef<int32_t>(iota)))),
        arith::ConstantOp::create(
            b, loc, DenseElementsAttr::get(i32s, b.getI32IntegerAttr(1))));
    Value high = arith::ShLIOp::create(
        b, loc, arith::TruncIOp::create(b, loc, bytes32, bits),
        splat8(bytes32, 4));
    return arith::OrIOp::create(b, loc, q, high).getResult();
  };
  if (encoding == WeightEncoding::q4_0 || encoding == WeightEncoding::q4_1 ||
      encoding == WeightEncoding::q5_0 || encoding == WeightEncoding::q5_1) {
    // d (and q4_1/q5_1's min m: value = d q + m), the five-bit types' 32
    // high bits, then 16 bytes: low nibbles are values 0-15, high nibbles
    // 16-31.
    bool hasMin =
        encoding == WeightEncoding::q4_1 || encoding == WeightEncoding::q5_1;
    bool five =
        encoding == WeightEncoding::q5_0 || encoding == WeightEncoding::q5_1;
    int64_t qhAt = hasMin ? 4 : 2, qsAt = qhAt + (five ? 4 : 0);
    Value qs = r.bytes(r.addIdx(base, qsAt), 16);
    Value lo = arith::AndIOp::create(b, loc, qs, splat8(bytes16, 15));
    Value hi = arith::ShRUIOp::create(b, loc, qs, splat8(bytes16, 4));
    SmallVector<int64_t> concat;
    for (int64_t i = 0; i < 32; ++i)
      concat.push_back(i);
    Value q = vector::ShuffleOp::create(b, loc, lo, hi, concat);
    if (five)
      q = withHighBits(q, r.u32(r.addIdx(base, qhAt)));
    Value d = r.halfLoad(base);
    if (hasMin)
      return IntegerGroup{
          q, all(d),
          all(arith::NegFOp::create(b, loc, r.halfLoad(r.addIdx(base, 2))))};
    Value zeroPoint = arith::ConstantOp::create(
        b, loc, b.getF32FloatAttr(offsetPerScale(encoding)));
    return IntegerGroup{q, all(d),
                        all(arith::MulFOp::create(b, loc, zeroPoint, d))};
  }
  // q4_k, q5_k: 32 bytes of chunk sub / 2, low nibbles for even
  // sub-blocks; q5_k's bit `sub` of its 32 high-bit bytes adds 16.
  bool five = encoding == WeightEncoding::q5_k;
  auto [d1, m1] = r.subBlockScaleMinK4(at);
  Value qs = r.bytes(
      r.addIdx(r.addIdx(base, five ? 48 : 16), r.mulIdx(r.divIdx(sub, 2), 32)),
      32);
  Value q;
  if (at.aligned) {
    q = at.j % 2
            ? arith::ShRUIOp::create(b, loc, qs, splat8(bytes32, 4)).getResult()
            : arith::AndIOp::create(b, loc, qs, splat8(bytes32, 15)).getResult();
  } else {
    // Shift by 4 * (sub % 2), then keep 4 bits.
    Value sh = arith::IndexCastUIOp::create(
        b, loc, b.getI8Type(), r.mulIdx(r.remIdx(sub, 2), 4));
    Value shifted = arith::ShRUIOp::create(
        b, loc, qs, vector::BroadcastOp::create(b, loc, bytes32, sh));
    q = arith::AndIOp::create(b, loc, shifted, splat8(bytes32, 15));
  }
  if (five) {
    Value qh = r.bytes(r.addIdx(base, 16), 32);
    Value bit;
    if (at.aligned) {
      bit = at.j ? arith::ShRUIOp::create(b, loc, qh, splat8(bytes32, at.j))
                       .getResult()
                 : qh;
    } else {
      Value sh = arith::IndexCastUIOp::create(b, loc, b.getI8Type(), sub);
      bit = arith::ShRUIOp::create(
          b, loc, qh, vector::BroadcastOp::create(b, loc, bytes32, sh));
    }
    bit = arith::AndIOp::create(b, loc, bit, splat8(bytes32, 1));
    q = arith::OrIOp::create(
        b, loc, q, arith::ShLIOp::create(b, loc, bit, splat8(bytes32, 4)));
  }
  return IntegerGroup{q, all(d1), all(m1)};
}

std::optional<Value> kiln::blockOffsets(OpBuilder &b, Location loc,
                                        WeightEncoding encoding, Value storage,
                                        Value row, Value group) {
  if (!hasBlockOffsets(encoding))
    return std::nullopt;
  RowReader r(b, loc, storage, row);
  EncodingBlock block = getEncodingBlock(encoding);
  RowReader::GroupPlace at = r.place(block, group, 0, block.elements);
  // As subBlockScaleMinK4 computes them (shared with it by CSE).
  auto [scs, ms] = r.scalesMinsK4(r.addIdx(at.base, 4));
  (void)scs;
  return r.mulF(r.halfLoad(r.addIdx(at.base, 2)), r.toF32(ms));
}

Value kiln::dequantizeWeight(OpBuilder &b, Location loc, Value storage,
                             RankedTensorType logical) {
  WeightEncoding encoding = *getWeightEncoding(logical);
  RankedTensorType plain = dropEncoding(logical);
  Value init = tensor::EmptyOp::create(b, loc, plain.getShape(),
                                       plain.getElementType());
  auto generic = linalg::GenericOp::create(
      b, loc, TypeRange{plain}, ValueRange{}, ValueRange{init},
      ArrayRef<AffineMap>{b.getMultiDimIdentityMap(2)},
      SmallVector<utils::IteratorType>(2, utils::IteratorType::parallel),
      [&](OpBuilder &nb, Location l, ValueRange) {
        Value row = linalg::IndexOp::create(nb, l, 0);
        Value col = linalg::IndexOp::create(nb, l, 1);
        linalg::YieldOp::create(
            nb, l, dequantizeElement(nb, l, encoding, storage, row, col));
      });
  generic->setAttr(kDequantizeAttr,
                   WeightEncodingAttr::get(b.getContext(), encoding));
  return generic.getResult(0);
}

std::optional<kiln::StoredWeight> kiln::getStoredWeight(Value v) {
  auto generic = v.getDefiningOp<linalg::GenericOp>();
  if (!generic)
    return std::nullopt;
  auto attr = generic->getAttrOfType<WeightEncodingAttr>(kDequantizeAttr);
  if (!attr)
    return std::nullopt;
  // The one tensor the body reads from above: the stored bytes.
  Value storage;
  generic.getRegion().walk([&](tensor::ExtractOp e) {
    storage = e.getTensor();
    return WalkResult::interrupt();
  });
  if (!storage)
    return std::nullopt;
  return StoredWeight{storage, attr.getValue()};
}
