//===- TransformerOps.cpp - Transformer op verification and folding -------===//
//
// Result types are inferred from operand types (InferTypeOpAdaptor); the
// inference doubles as the verifier, so every malformed graph is reported
// with the op, the shapes involved and what was expected.
//
//===----------------------------------------------------------------------===//

#include "kiln/Dialect/Transformer/IR/Transformer.h"
#include <cmath>

#include "mlir/IR/Builders.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Interfaces/CallInterfaces.h"
#include "mlir/IR/PatternMatch.h"

using namespace mlir;
using namespace kiln::transformer;

namespace {
/// Emits "'transformer.<op>' op <msg...>" at `loc` (if any) and fails.
template <typename... Args>
LogicalResult opError(std::optional<Location> loc, StringRef op,
                      Args &&...args) {
  return emitOptionalError(loc, "'transformer.", op, "' op ",
                           std::forward<Args>(args)...);
}

bool dimsCompatible(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b;
}

/// Prints a dimension the way tensor types do.
std::string dimStr(int64_t d) {
  return ShapedType::isDynamic(d) ? "?" : std::to_string(d);
}
} // namespace

//===----------------------------------------------------------------------===//
// WeightOp
//===----------------------------------------------------------------------===//

LogicalResult WeightOp::verify() {
  if (getName().empty())
    return emitOpError("weight name must not be empty");
  if (getIndex() < 0)
    return emitOpError("weight index must be non-negative, got ") << getIndex();
  if (!getType().hasStaticShape())
    return emitOpError("weight must have a static shape, got ") << getType();
  // A stored weight (#transformer.encoding) is read where its values are
  // streamed or looked up: the matrix of a linear or feed-forward product,
  // an embedding or position table, or a call that passes it on (outlined
  // layers).
  if (std::optional<WeightEncoding> encoding = getWeightEncoding(getType()))
    for (OpOperand &use : getResult().getUses()) {
      Operation *user = use.getOwner();
      unsigned n = use.getOperandNumber();
      bool ok = (isa<LinearOp>(user) && n == 1) ||
                (isa<EmbeddingOp, PositionEmbeddingOp>(user) && n == 1) ||
                isa<CallOpInterface>(user);
      if (auto ff = dyn_cast<FeedForwardOp>(user))
        ok = use.get() != ff.getInput() &&
             cast<RankedTensorType>(use.get().getType()).getRank() == 2;
      if (!ok)
        return emitOpError("weight '")
               << getName() << "' is stored as "
               << stringifyWeightEncoding(*encoding) << " but read by "
               << user->getName()
               << "; only the matrices of linear and feed_forward and "
                  "embedding and position tables may be stored in a non-f32 "
                  "encoding";
    }
  return success();
}

//===----------------------------------------------------------------------===//
// EmbeddingOp
//===----------------------------------------------------------------------===//

LogicalResult EmbeddingOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location> loc,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &types) {
  auto ids = cast<RankedTensorType>(adaptor.getIds().getType());
  auto table = cast<RankedTensorType>(adaptor.getTable().getType());
  if (ids.getRank() != 2)
    return opError(loc, "embedding", "expects ids of shape [batch, seq], got ",
                   ids);
  if (table.getRank() != 2)
    return opError(loc, "embedding",
                   "expects a table of shape [vocab, dim], got ", table);
  types.push_back(RankedTensorType::get(
      {ids.getDimSize(0), ids.getDimSize(1), table.getDimSize(1)},
      table.getElementType()));
  return success();
}

//===----------------------------------------------------------------------===//
// PositionEmbeddingOp
//===----------------------------------------------------------------------===//

LogicalResult PositionEmbeddingOp::inferReturnTypes(
    MLIRContext *, std::optional<Location> loc, Adaptor adaptor,
    SmallVectorImpl<Type> &types) {
  auto x = cast<RankedTensorType>(adaptor.getInput().getType());
  auto table = cast<RankedTensorType>(adaptor.getTable().getType());
  if (x.getRank() != 3)
    return opError(loc, "position_embedding",
                   "expects input of shape [batch, seq, dim], got ", x);
  if (table.getRank() != 2 ||
      !dimsCompatible(table.getDimSize(1), x.getDimSize(2)))
    return opError(loc, "position_embedding",
                   "expects a table of shape [positions, ",
                   dimStr(x.getDimSize(2)), "], got ", table);
  if (x.getElementType() != table.getElementType())
    return opError(loc, "position_embedding", "element types differ: ", x,
                   " and ", table);
  if (!x.isDynamicDim(1) && !table.isDynamicDim(0) &&
      x.getDimSize(1) > table.getDimSize(0))
    return opError(loc, "position_embedding", "sequence of ", x.getDimSize(1),
                   " positions exceeds the table's ", table.getDimSize(0));
  types.push_back(x);
  return success();
}

//===----------------------------------------------------------------------===//
// SinusoidalPositionOp
//===----------------------------------------------------------------------===//

LogicalResult SinusoidalPositionOp::inferReturnTypes(
    MLIRContext *, std::optional<Location> loc, Adaptor adaptor,
    SmallVectorImpl<Type> &types) {
  auto x = cast<RankedTensorType>(adaptor.getInput().getType());
  if (x.getRank() != 3 || x.isDynamicDim(2))
    return opError(loc, "sinusoidal_position",
                   "expects input of shape [batch, seq, dim] with a static "
                   "last dimension, got ",
                   x);
  if (x.getDimSize(2) % 2 != 0)
    return opError(loc, "sinusoidal_position",
                   "feature dimension must be even, got ", x.getDimSize(2));
  if (!(adaptor.getBase().convertToFloat() > 1.0f))
    return opError(loc, "sinusoidal_position",
                   "base must be greater than 1, got ",
                   adaptor.getBase().convertToFloat());
  types.push_back(x);
  return success();
}

//===----------------------------------------------------------------------===//
// PaddingMaskOp
//===----------------------------------------------------------------------===//

LogicalResult PaddingMaskOp::inferReturnTypes(MLIRContext *ctx,
                                              std::optional<Location> loc,
                                              Adaptor adaptor,
                                              SmallVectorImpl<Type> &types) {
  auto ids = cast<RankedTensorType>(adaptor.getIds().getType());
  if (ids.getRank() != 2)
    return opError(loc, "padding_mask",
                   "expects ids of shape [batch, seq], got ", ids);
  if ((int64_t)adaptor.getPadId() < 0)
    return opError(loc, "padding_mask", "pad_id must be non-negative, got ",
                   (int64_t)adaptor.getPadId());
  types.push_back(RankedTensorType::get(ids.getShape(), IntegerType::get(ctx, 1)));
  return success();
}

//===----------------------------------------------------------------------===//
// RopeOp
//===----------------------------------------------------------------------===//

LogicalResult RopeOp::inferReturnTypes(MLIRContext *,
                                       std::optional<Location> loc,
                                       Adaptor adaptor,
                                       SmallVectorImpl<Type> &types) {
  auto x = cast<RankedTensorType>(adaptor.getInput().getType());
  int64_t headDim = adaptor.getHeadDim();
  if (x.getRank() != 3 || x.isDynamicDim(2))
    return opError(loc, "rope",
                   "expects input of shape [batch, seq, heads * head_dim] "
                   "with a static last dimension, got ",
                   x);
  if (headDim <= 0 || headDim % 2 != 0)
    return opError(loc, "rope", "head_dim must be positive and even, got ",
                   headDim);
  if (x.getDimSize(2) % headDim != 0)
    return opError(loc, "rope", "feature dimension ", x.getDimSize(2),
                   " is not a multiple of head_dim ", headDim);
  if (!(adaptor.getTheta().convertToFloat() > 0.0f))
    return opError(loc, "rope", "theta must be positive, got ",
                   adaptor.getTheta().convertToFloat());
  if (std::optional<ArrayRef<float>> factors = adaptor.getFreqFactors()) {
    if ((int64_t)factors->size() != headDim / 2)
      return opError(loc, "rope", "freq_factors has ", factors->size(),
                     " values; expected head_dim / 2 = ", headDim / 2);
    for (auto [i, f] : llvm::enumerate(*factors))
      if (!(f > 0.0f) || !std::isfinite(f))
        return opError(loc, "rope", "freq_factors[", (int64_t)i,
                       "] must be positive and finite, got ", f);
  }
  float attentionFactor = adaptor.getAttentionFactor().convertToFloat();
  if (!(attentionFactor > 0.0f) || !std::isfinite(attentionFactor))
    return opError(loc, "rope",
                   "attention_factor must be positive and finite, got ",
                   attentionFactor);
  types.push_back(x);
  return success();
}

//===----------------------------------------------------------------------===//
// Norms
//===----------------------------------------------------------------------===//

/// A norm parameter is [features] (x's last dimension), or [group] for a
/// norm over groups of that many features.
static LogicalResult verifyNormParam(std::optional<Location> loc, StringRef op,
                                     StringRef what, RankedTensorType x,
                                     Type paramType,
                                     std::optional<int64_t> group = {}) {
  auto p = cast<RankedTensorType>(paramType);
  int64_t dim = group ? *group : x.getDimSize(x.getRank() - 1);
  if (p.getRank() != 1 || !dimsCompatible(p.getDimSize(0), dim))
    return opError(loc, op, "expects ", what, " of shape [", dimStr(dim), "]",
                   group ? " (group_size)" : "", ", got ", p);
  if (p.getElementType() != x.getElementType())
    return opError(loc, op, "element types differ: ", x, " and ", p);
  return success();
}

static LogicalResult verifyEpsilon(std::optional<Location> loc, StringRef op,
                                   APFloat eps) {
  if (!(eps.convertToFloat() >= 0.0f))
    return opError(loc, op, "epsilon must be non-negative, got ",
                   eps.convertToFloat());
  return success();
}

LogicalResult LayerNormOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location> loc,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &types) {
  auto x = cast<RankedTensorType>(adaptor.getInput().getType());
  if (x.getRank() < 1)
    return opError(loc, "layer_norm", "expects a ranked input, got ", x);
  if (failed(verifyNormParam(loc, "layer_norm", "gamma", x,
                             adaptor.getGamma().getType())) ||
      failed(verifyNormParam(loc, "layer_norm", "beta", x,
                             adaptor.getBeta().getType())) ||
      failed(verifyEpsilon(loc, "layer_norm", adaptor.getEpsilon())))
    return failure();
  types.push_back(x);
  return success();
}

LogicalResult RMSNormOp::inferReturnTypes(MLIRContext *,
                                          std::optional<Location> loc,
                                          Adaptor adaptor,
                                          SmallVectorImpl<Type> &types) {
  auto x = cast<RankedTensorType>(adaptor.getInput().getType());
  if (x.getRank() < 1)
    return opError(loc, "rms_norm", "expects a ranked input, got ", x);
  if (failed(verifyEpsilon(loc, "rms_norm", adaptor.getEpsilon())))
    return failure();
  std::optional<int64_t> group;
  if (std::optional<uint64_t> g = adaptor.getGroupSize()) {
    group = (int64_t)*g;
    int64_t dim = x.getDimSize(x.getRank() - 1);
    if (*group <= 0)
      return opError(loc, "rms_norm", "group_size must be positive, got ",
                     *group);
    if (ShapedType::isDynamic(dim) || dim % *group != 0)
      return opError(loc, "rms_norm", "group_size ", *group,
                     " does not divide the last dimension of ", x);
  }
  if (failed(verifyNormParam(loc, "rms_norm", "gamma", x,
                             adaptor.getGamma().getType(), group)))
    return failure();
  types.push_back(x);
  return success();
}

//===----------------------------------------------------------------------===//
// LinearOp
//===----------------------------------------------------------------------===//

/// Checks `weight` is [out, in] for an input whose last dim is `in` and
/// returns `out`; checks `bias` (if any) is [out].
static FailureOr<int64_t> verifyMatrix(std::optional<Location> loc,
                                       StringRef op, StringRef what,
                                       RankedTensorType x, int64_t in,
                                       Type weightType, Value bias,
                                       StringRef biasWhat) {
  auto w = cast<RankedTensorType>(weightType);
  if (w.getRank() != 2 || !dimsCompatible(w.getDimSize(1), in)) {
    (void)opError(loc, op, "expects ", what, " of shape [out, ", dimStr(in),
                  "] for input ", x, ", got ", w);
    return failure();
  }
  if (w.getElementType() != x.getElementType()) {
    (void)opError(loc, op, "element types differ: ", x, " and ", w);
    return failure();
  }
  int64_t out = w.getDimSize(0);
  if (bias) {
    auto b = cast<RankedTensorType>(bias.getType());
    if (b.getRank() != 1 || !dimsCompatible(b.getDimSize(0), out) ||
        b.getElementType() != x.getElementType()) {
      (void)opError(loc, op, "expects ", biasWhat, " of shape [", dimStr(out),
                    "], got ", b);
      return failure();
    }
  }
  return out;
}

LogicalResult LinearOp::inferReturnTypes(MLIRContext *,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &types) {
  auto x = cast<RankedTensorType>(adaptor.getInput().getType());
  if (x.getRank() < 1)
    return opError(loc, "linear", "expects a ranked input, got ", x);
  FailureOr<int64_t> out =
      verifyMatrix(loc, "linear", "weight", x, x.getDimSize(x.getRank() - 1),
                   adaptor.getWeight().getType(), adaptor.getBias(), "bias");
  if (failed(out))
    return failure();
  SmallVector<int64_t> shape(x.getShape());
  shape.back() = *out;
  types.push_back(RankedTensorType::get(shape, x.getElementType()));
  return success();
}

//===----------------------------------------------------------------------===//
// AttentionOp
//===----------------------------------------------------------------------===//

LogicalResult AttentionOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location> loc,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &types) {
  auto q = cast<RankedTensorType>(adaptor.getQuery().getType());
  auto k = cast<RankedTensorType>(adaptor.getKey().getType());
  auto v = cast<RankedTensorType>(adaptor.getValue().getType());
  int64_t heads = adaptor.getNumHeads(), kvHeads = adaptor.getNumKvHeads(),
          headDim = adaptor.getHeadDim();
  if (heads <= 0 || kvHeads <= 0 || headDim <= 0)
    return opError(
        loc, "attention",
        "num_heads, num_kv_heads and head_dim must be positive, got ", heads,
        ", ", kvHeads, ", ", headDim);
  if (heads % kvHeads != 0)
    return opError(loc, "attention", "num_heads (", heads,
                   ") must be a multiple of num_kv_heads (", kvHeads, ")");
  if (!(adaptor.getScale().convertToFloat() > 0.0f))
    return opError(loc, "attention", "scale must be positive, got ",
                   adaptor.getScale().convertToFloat());
  if (q.getRank() != 3 || q.getDimSize(2) != heads * headDim)
    return opError(loc, "attention", "expects query of shape [batch, seq, ",
                   heads * headDim, "] (num_heads * head_dim), got ", q);
  for (auto [what, t] :
       {std::pair<StringRef, RankedTensorType>{"key", k}, {"value", v}}) {
    if (t.getRank() != 3 || t.getDimSize(2) != kvHeads * headDim)
      return opError(loc, "attention", "expects ", what,
                     " of shape [batch, kv_seq, ", kvHeads * headDim,
                     "] (num_kv_heads * head_dim), got ", t);
    if (!dimsCompatible(t.getDimSize(0), q.getDimSize(0)))
      return opError(loc, "attention", "batch of ", what, " ", t,
                     " differs from the query's ", q);
    // Keys and values read from a narrower cache (f16, bf16) are widened
    // as they are read.
    Type kt = t.getElementType();
    if (kt != q.getElementType() &&
        !(q.getElementType().isF32() && (kt.isF16() || kt.isBF16())))
      return opError(loc, "attention", "element types differ: ", q, " and ", t,
                     " (keys and values may be f16 or bf16 with f32 queries)");
  }
  if (!dimsCompatible(k.getDimSize(1), v.getDimSize(1)))
    return opError(loc, "attention", "key ", k, " and value ", v,
                   " have different lengths");
  if (Value maskValue = adaptor.getKeyMask()) {
    auto m = cast<RankedTensorType>(maskValue.getType());
    if (m.getRank() != 2 || !dimsCompatible(m.getDimSize(0), q.getDimSize(0)) ||
        !dimsCompatible(m.getDimSize(1), k.getDimSize(1)))
      return opError(loc, "attention", "expects key_mask of shape [",
                     dimStr(q.getDimSize(0)), ", ", dimStr(k.getDimSize(1)),
                     "] (batch, kv_seq), got ", m);
  }
  AttentionMode mode = adaptor.getMode();
  if (mode != AttentionMode::causal && adaptor.getOffset())
    return opError(loc, "attention", "only causal attention takes an offset");
  if (std::optional<uint64_t> window = adaptor.getWindow()) {
    if (mode != AttentionMode::causal)
      return opError(loc, "attention", "only causal attention takes a window");
    if ((int64_t)*window <= 0)
      return opError(loc, "attention", "window must be positive, got ",
                     (int64_t)*window);
  }
  if (mode == AttentionMode::causal && !adaptor.getOffset() &&
      !dimsCompatible(q.getDimSize(1), k.getDimSize(1)))
    return opError(loc, "attention",
                   "causal attention without an offset needs as many keys as "
                   "queries, got ",
                   q, " and ", k);
  types.push_back(q);
  return success();
}

//===----------------------------------------------------------------------===//
// FeedForwardOp
//===----------------------------------------------------------------------===//

LogicalResult FeedForwardOp::inferReturnTypes(MLIRContext *,
                                              std::optional<Location> loc,
                                              Adaptor adaptor,
                                              SmallVectorImpl<Type> &types) {
  auto x = cast<RankedTensorType>(adaptor.getInput().getType());
  if (x.getRank() < 1)
    return opError(loc, "feed_forward", "expects a ranked input, got ", x);
  Activation act = adaptor.getActivation();
  bool gated = isGatedActivation(act);
  if (gated && !adaptor.getWGate())
    return opError(loc, "feed_forward", "gated activation '",
                   stringifyActivation(act), "' needs a gate weight");
  if (!gated && adaptor.getWGate())
    return opError(loc, "feed_forward", "activation '",
                   stringifyActivation(act), "' takes no gate weight");
  if (gated && (adaptor.getBUp() || adaptor.getBDown()))
    return opError(loc, "feed_forward", "gated activation '",
                   stringifyActivation(act), "' takes no biases");
  int64_t dim = x.getDimSize(x.getRank() - 1);
  FailureOr<int64_t> hidden =
      verifyMatrix(loc, "feed_forward", "up weight", x, dim,
                   adaptor.getWUp().getType(), adaptor.getBUp(), "up bias");
  if (failed(hidden))
    return failure();
  if (gated) {
    // Shapes must agree; each matrix may be stored its own way.
    auto g = cast<RankedTensorType>(adaptor.getWGate().getType());
    if (dropEncoding(g) !=
        dropEncoding(cast<RankedTensorType>(adaptor.getWUp().getType())))
      return opError(loc, "feed_forward", "gate weight ", g,
                     " differs from the up weight ",
                     adaptor.getWUp().getType());
  }
  auto down = cast<RankedTensorType>(adaptor.getWDown().getType());
  if (down.getRank() != 2 || !dimsCompatible(down.getDimSize(0), dim) ||
      !dimsCompatible(down.getDimSize(1), *hidden))
    return opError(loc, "feed_forward", "expects down weight of shape [",
                   dimStr(dim), ", ", dimStr(*hidden), "], got ", down);
  if (down.getElementType() != x.getElementType())
    return opError(loc, "feed_forward", "element types differ: ", x, " and ",
                   down);
  if (Value b = adaptor.getBDown()) {
    auto bt = cast<RankedTensorType>(b.getType());
    if (bt.getRank() != 1 || !dimsCompatible(bt.getDimSize(0), dim) ||
        bt.getElementType() != x.getElementType())
      return opError(loc, "feed_forward", "expects down bias of shape [",
                     dimStr(dim), "], got ", bt);
  }
  types.push_back(x);
  return success();
}

//===----------------------------------------------------------------------===//
// KV cache
//===----------------------------------------------------------------------===//

/// Checks `t` is a [batch, len, width] slice of `cache`'s rows, of the
/// cache's element type or, where `widerAllowed` (rows appended), f32
/// rounded into a narrower cache.
static LogicalResult verifyCacheRows(Operation *op, KVCacheType cache,
                                     StringRef what, Type type,
                                     bool widerAllowed = false) {
  auto t = cast<RankedTensorType>(type);
  if (t.getRank() != 3 || !dimsCompatible(t.getDimSize(0), cache.getBatch()) ||
      !dimsCompatible(t.getDimSize(2), cache.getWidth()))
    return op->emitOpError("expects ")
           << what << " of shape [" << cache.getBatch() << ", seq, "
           << cache.getWidth() << "] (batch, seq, kv_heads * head_dim), got "
           << t;
  if (t.getElementType() != cache.getElementType() &&
      !(widerAllowed && t.getElementType().isF32()))
    return op->emitOpError("expects ")
           << what << " of element type " << cache.getElementType()
           << (widerAllowed && !cache.getElementType().isF32() ? " or f32" : "")
           << ", got " << t;
  if (!t.isDynamicDim(1) && t.getDimSize(1) > cache.getCapacity())
    return op->emitOpError() << what << " of " << t.getDimSize(1)
                             << " positions exceeds the cache capacity of "
                             << cache.getCapacity();
  return success();
}

/// A cache op's layer: a constant within the cache's layers, or a dynamic
/// index (then checked by whoever passes it), never both.
static LogicalResult verifyLayer(Operation *op, KVCacheType cache,
                                 Value dynamicLayer, IntegerAttr layer) {
  if ((dynamicLayer != nullptr) == (layer != nullptr))
    return op->emitOpError("needs either a constant or a dynamic layer");
  if (layer && (layer.getInt() < 0 || layer.getInt() >= cache.getLayers()))
    return op->emitOpError("layer ")
           << layer.getInt() << " is out of range for a cache of "
           << cache.getLayers() << " layers";
  return success();
}

/// `[0]` or `[%layer]`: a cache op's layer.
static ParseResult
parseLayer(OpAsmParser &parser,
           std::optional<OpAsmParser::UnresolvedOperand> &dynamicLayer,
           IntegerAttr &layer) {
  OpAsmParser::UnresolvedOperand operand;
  OptionalParseResult dynamic = parser.parseOptionalOperand(operand);
  if (dynamic.has_value()) {
    if (failed(*dynamic))
      return failure();
    dynamicLayer = operand;
    return success();
  }
  int64_t value;
  if (parser.parseInteger(value))
    return failure();
  layer = parser.getBuilder().getI64IntegerAttr(value);
  return success();
}

static void printLayer(OpAsmPrinter &printer, Operation *, Value dynamicLayer,
                       IntegerAttr layer) {
  if (dynamicLayer)
    printer << dynamicLayer;
  else
    printer << layer.getInt();
}

OpFoldResult KVCacheAppendOp::getMixedLayer() {
  if (Value v = getDynamicLayer())
    return v;
  return getLayerAttr();
}

OpFoldResult KVCacheReadOp::getMixedLayer() {
  if (Value v = getDynamicLayer())
    return v;
  return getLayerAttr();
}

LogicalResult KVCacheAppendOp::verify() {
  KVCacheType cache = getCache().getType();
  if (failed(verifyLayer(*this, cache, getDynamicLayer(), getLayerAttr())) ||
      failed(verifyCacheRows(*this, cache, "key", getKey().getType(),
                             /*widerAllowed=*/true)) ||
      failed(verifyCacheRows(*this, cache, "value", getValue().getType(),
                             /*widerAllowed=*/true)))
    return failure();
  if (getKey().getType() != getValue().getType())
    return emitOpError("key ") << getKey().getType() << " and value "
                               << getValue().getType() << " differ";
  return success();
}

LogicalResult KVCacheReadOp::verify() {
  KVCacheType cache = getCache().getType();
  if (failed(verifyLayer(*this, cache, getDynamicLayer(), getLayerAttr())) ||
      failed(verifyCacheRows(*this, cache, "key", getKey().getType())) ||
      failed(verifyCacheRows(*this, cache, "value", getValue().getType())))
    return failure();
  if (getKey().getType() != getValue().getType())
    return emitOpError("key ") << getKey().getType() << " and value "
                               << getValue().getType() << " differ";
  return success();
}

//===----------------------------------------------------------------------===//
// Canonicalization: a constant zero offset is the same as no offset.
//===----------------------------------------------------------------------===//

namespace {
template <typename OpTy> struct DropZeroOffset : public OpRewritePattern<OpTy> {
  using OpRewritePattern<OpTy>::OpRewritePattern;
  LogicalResult matchAndRewrite(OpTy op,
                                PatternRewriter &rewriter) const override {
    Value offset = op.getOffset();
    if (!offset || !matchPattern(offset, m_Zero()))
      return rewriter.notifyMatchFailure(op, "no constant zero offset");
    if constexpr (std::is_same_v<OpTy, AttentionOp>) {
      // Without an offset, causal attention needs as many keys as queries.
      if (!dimsCompatible(op.getQuery().getType().getDimSize(1),
                          op.getKey().getType().getDimSize(1)))
        return rewriter.notifyMatchFailure(op, "key and query lengths differ");
    }
    rewriter.modifyOpInPlace(op, [&] { op.getOffsetMutable().clear(); });
    return success();
  }
};
} // namespace

void PositionEmbeddingOp::getCanonicalizationPatterns(
    RewritePatternSet &results, MLIRContext *context) {
  results.add<DropZeroOffset<PositionEmbeddingOp>>(context);
}

void SinusoidalPositionOp::getCanonicalizationPatterns(
    RewritePatternSet &results, MLIRContext *context) {
  results.add<DropZeroOffset<SinusoidalPositionOp>>(context);
}

void RopeOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                         MLIRContext *context) {
  results.add<DropZeroOffset<RopeOp>>(context);
}

void AttentionOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                              MLIRContext *context) {
  results.add<DropZeroOffset<AttentionOp>>(context);
}

#define GET_OP_CLASSES
#include "kiln/Dialect/Transformer/IR/TransformerOps.cpp.inc"
