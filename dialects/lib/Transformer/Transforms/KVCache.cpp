//===- KVCache.cpp - Derive the incremental form over a KV cache ----------===//
//
// Implements `transformer-kv-cache`: from the whole-sequence function
// (every causal self-attention sees keys/values of all positions) derive
// `prefill` and `decode` functions that append new keys/values to a
// `!transformer.kv_cache` and attend over the cached prefix.
//
//===----------------------------------------------------------------------===//

#include "kiln/Dialect/Transformer/IR/Transformer.h"
#include "kiln/Dialect/Transformer/Transforms/Passes.h"
#include "kiln/Dialect/Transformer/Transforms/TypeRefinement.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/Analysis/SliceAnalysis.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Transforms/RegionUtils.h"

namespace kiln::transformer {
#define GEN_PASS_DEF_TRANSFORMERKVCACHE
#include "kiln/Dialect/Transformer/Transforms/Passes.h.inc"
} // namespace kiln::transformer

using namespace mlir;
using namespace kiln::transformer;

namespace {

/// Values that are per-position activations (as opposed to weights): ranked
/// tensors of rank >= 2 whose dimension 1 is the sequence.
bool isSequenceValue(Value v) {
  auto type = dyn_cast<RankedTensorType>(v.getType());
  if (!type || type.getRank() < 2)
    return false;
  Operation *def = v.getDefiningOp();
  return !def ||
         !(isa<WeightOp>(def) || def->hasTrait<mlir::OpTrait::ConstantLike>());
}

/// Rewrites `value` ([batch, seq, ...]) into the same computation restricted
/// to the single position `index` ([batch, 1, ...]), moving the slice up
/// through position-wise ops. New ops are created at the builder's insertion
/// point, where all of the function's values dominate.
class PositionNarrower {
public:
  PositionNarrower(OpBuilder &builder, Value index)
      : builder(builder), index(index) {}

  FailureOr<Value> narrow(Value value) {
    if (Value cached = memo.lookup(value))
      return cached;
    Operation *def = value.getDefiningOp();
    Value result;
    if (def && def->hasTrait<kiln::transformer::OpTrait::PositionWise>() &&
        def->getNumResults() == 1 && def->getNumRegions() == 0) {
      IRMapping mapping;
      for (Value operand : def->getOperands()) {
        if (!isSequenceValue(operand))
          continue;
        FailureOr<Value> narrowed = narrow(operand);
        if (failed(narrowed))
          return failure();
        mapping.map(operand, *narrowed);
      }
      Operation *clone = builder.clone(*def, mapping);
      if (failed(refineResultTypes(clone)))
        return failure();
      result = clone->getResult(0);
    } else {
      result = slice(value);
    }
    memo[value] = result;
    return result;
  }

private:
  Value slice(Value value) {
    auto type = cast<RankedTensorType>(value.getType());
    Location loc = value.getLoc();
    SmallVector<OpFoldResult> offsets(type.getRank(), builder.getIndexAttr(0));
    SmallVector<OpFoldResult> sizes,
        strides(type.getRank(), builder.getIndexAttr(1));
    offsets[1] = index;
    for (int64_t d = 0; d < type.getRank(); ++d)
      sizes.push_back(d == 1 ? builder.getIndexAttr(1)
                             : tensor::getMixedSize(builder, loc, value, d));
    return tensor::ExtractSliceOp::create(builder, loc, value, offsets, sizes,
                                          strides);
  }

  OpBuilder &builder;
  Value index;
  DenseMap<Value, Value> memo;
};

struct TransformerKVCachePass
    : public kiln::transformer::impl::TransformerKVCacheBase<
          TransformerKVCachePass> {
  using TransformerKVCacheBase::TransformerKVCacheBase;

  void runOnOperation() override;

private:
  /// What the encoder leaves for the decoder of an encoder-decoder model.
  struct CrossState {
    KVCacheType type;
    /// Hoisting on: the cross-attention ops whose keys/values are cached,
    /// in order (layer l of the cross cache). Off: empty.
    SmallVector<AttentionOp> attentions;
    /// Hoisting off: the encoder output, cached as layer 0 (key and value).
    Value memory;
  };

  FailureOr<func::FuncOp> derive(func::FuncOp forward, StringRef name,
                                 bool singleToken, KVCacheType cacheType,
                                 const CrossState *cross);
  FailureOr<func::FuncOp> deriveEncode(func::FuncOp forward,
                                       const CrossState &cross);
  LogicalResult planCross(func::FuncOp forward, CrossState &cross);
};

/// The ops of `fn`'s body that depend on argument `index`.
llvm::SetVector<Operation *> dependentsOf(func::FuncOp fn, unsigned index) {
  llvm::SetVector<Operation *> slice;
  ForwardSliceOptions options;
  getForwardSlice(fn.getArgument(index), &slice, options);
  return slice;
}

void TransformerKVCachePass::runOnOperation() {
  ModuleOp module = getOperation();
  auto forward = module.lookupSymbol<func::FuncOp>(entry);
  if (!forward) {
    module.emitError("transformer-kv-cache: no function named '")
        << entry << "'";
    return signalPassFailure();
  }
  for (StringRef name : {"prefill", "decode", "encode"}) {
    if (module.lookupSymbol(name)) {
      module.emitError("transformer-kv-cache: a symbol named '")
          << name << "' already exists";
      return signalPassFailure();
    }
  }
  FunctionType fnType = forward.getFunctionType();
  // Decoder-only: (tokens) -> logits. Encoder-decoder: (source, target).
  bool encoderDecoder = fnType.getNumInputs() == 2;
  auto tokensType = fnType.getNumInputs() >= 1 && fnType.getNumInputs() <= 2
                        ? dyn_cast<RankedTensorType>(
                              fnType.getInput(fnType.getNumInputs() - 1))
                        : RankedTensorType();
  if (encoderDecoder && fnType.getInput(0) != fnType.getInput(1)) {
    forward.emitError("transformer-kv-cache: expects source and target ids "
                      "of the same type, got ")
        << fnType;
    return signalPassFailure();
  }
  auto logitsType = fnType.getNumResults() == 1
                        ? dyn_cast<RankedTensorType>(fnType.getResult(0))
                        : RankedTensorType();
  if (!tokensType || tokensType.getRank() != 2 ||
      !isa<IntegerType>(tokensType.getElementType()) || !logitsType ||
      logitsType.getRank() != 3 || tokensType.isDynamicDim(0)) {
    forward.emitError("transformer-kv-cache: expects @")
        << entry
        << " to map token ids [batch, seq] (static batch; an encoder-decoder "
           "model takes source ids first) to logits [batch, seq, vocab], got "
        << fnType;
    return signalPassFailure();
  }

  // Every causal self-attention becomes a cache layer, in program order.
  SmallVector<AttentionOp> layers;
  forward.walk([&](AttentionOp op) {
    if (op.getMode() == AttentionMode::causal)
      layers.push_back(op);
  });
  if (layers.empty()) {
    forward.emitError(
        "transformer-kv-cache: no causal self-attention to cache");
    return signalPassFailure();
  }
  AttentionOp first = layers.front();
  for (AttentionOp op : layers) {
    if (op.getOffset()) {
      op.emitOpError("is already incremental (has an offset); "
                     "transformer-kv-cache expects the whole-sequence form");
      return signalPassFailure();
    }
    if (op.getNumKvHeads() != first.getNumKvHeads() ||
        op.getHeadDim() != first.getHeadDim() ||
        op.getKey().getType().getElementType() !=
            first.getKey().getType().getElementType()) {
      op.emitOpError("has num_kv_heads = ")
          << op.getNumKvHeads() << ", head_dim = " << op.getHeadDim()
          << " but the first layer has " << first.getNumKvHeads() << ", "
          << first.getHeadDim() << "; one cache needs equal layer shapes";
      return signalPassFailure();
    }
  }

  int64_t cap = capacity;
  if (cap <= 0) {
    auto attr = module->getAttrOfType<IntegerAttr>(kContextLengthAttr);
    if (!attr || attr.getInt() <= 0) {
      module.emitError("transformer-kv-cache: no capacity option and no "
                       "positive '")
          << kContextLengthAttr << "' module attribute";
      return signalPassFailure();
    }
    cap = attr.getInt();
  }
  Type elementType = first.getKey().getType().getElementType();
  if (!this->elementType.empty()) {
    Builder b(&getContext());
    if (this->elementType == "f32")
      elementType = b.getF32Type();
    else if (this->elementType == "f16")
      elementType = b.getF16Type();
    else if (this->elementType == "bf16")
      elementType = b.getBF16Type();
    else {
      module.emitError("transformer-kv-cache: element-type must be f32, f16 "
                       "or bf16, not '")
          << this->elementType << "'";
      return signalPassFailure();
    }
    if (!first.getKey().getType().getElementType().isF32()) {
      module.emitError("transformer-kv-cache: element-type needs f32 "
                       "attention keys to round, not ")
          << first.getKey().getType().getElementType();
      return signalPassFailure();
    }
  }
  auto cacheType = KVCacheType::get(
      &getContext(), layers.size(), tokensType.getDimSize(0),
      first.getNumKvHeads(), first.getHeadDim(), cap, elementType);

  if (encoderDecoder) {
    CrossState cross;
    if (failed(planCross(forward, cross)) ||
        failed(deriveEncode(forward, cross)) ||
        failed(derive(forward, "prefill", false, cacheType, &cross)) ||
        failed(derive(forward, "decode", true, cacheType, &cross)))
      return signalPassFailure();
  } else if (failed(derive(forward, "prefill", /*singleToken=*/false,
                           cacheType, nullptr)) ||
             failed(derive(forward, "decode", /*singleToken=*/true, cacheType,
                           nullptr))) {
    return signalPassFailure();
  }
  if (!forward->hasAttr(kEntryAttr))
    forward->setAttr(kEntryAttr, StringAttr::get(&getContext(), "forward"));
}

LogicalResult TransformerKVCachePass::planCross(func::FuncOp forward,
                                                CrossState &cross) {
  MLIRContext *ctx = &getContext();
  llvm::SetVector<Operation *> onTarget = dependentsOf(forward, 1);
  SmallVector<AttentionOp> crossOps;
  forward.walk([&](AttentionOp op) {
    if (op.getMode() == AttentionMode::cross)
      crossOps.push_back(op);
  });
  if (crossOps.empty())
    return forward.emitError(
        "transformer-kv-cache: an encoder-decoder model (two inputs) needs "
        "cross-attention");
  for (AttentionOp op : crossOps) {
    for (Value v : {op.getKey(), op.getValue()}) {
      Operation *def = v.getDefiningOp();
      if (!def || onTarget.contains(def))
        return op.emitOpError(
            "has keys or values that depend on the target sequence; "
            "cross-attention must attend over the encoder output");
    }
  }
  auto keyType = crossOps.front().getKey().getType();
  int64_t batch = keyType.getDimSize(0);

  int64_t cap = sourceCapacity;
  if (cap <= 0) {
    auto attr = forward->getParentOfType<ModuleOp>()->getAttrOfType<IntegerAttr>(
        kSourceLengthAttr);
    if (!attr || attr.getInt() <= 0)
      return forward.emitError("transformer-kv-cache: no source-capacity "
                               "option and no positive '")
             << kSourceLengthAttr << "' module attribute";
    cap = attr.getInt();
  }

  if (hoistCross) {
    AttentionOp first = crossOps.front();
    for (AttentionOp op : crossOps)
      if (op.getNumKvHeads() != first.getNumKvHeads() ||
          op.getHeadDim() != first.getHeadDim())
        return op.emitOpError("has num_kv_heads = ")
               << op.getNumKvHeads() << ", head_dim = " << op.getHeadDim()
               << " but the first cross-attention has "
               << first.getNumKvHeads() << ", " << first.getHeadDim()
               << "; one cross cache needs equal layer shapes";
    cross.attentions = crossOps;
    cross.type = KVCacheType::get(ctx, crossOps.size(), batch,
                                  first.getNumKvHeads(), first.getHeadDim(),
                                  cap, keyType.getElementType());
    return success();
  }

  // Without hoisting the encoder output itself is kept: every cross-attention
  // key and value must be a linear projection of that one value.
  for (AttentionOp op : crossOps) {
    for (Value v : {op.getKey(), op.getValue()}) {
      auto linear = v.getDefiningOp<LinearOp>();
      if (!linear)
        return op.emitOpError("has keys or values that are not a linear "
                              "projection; hoist-cross=false needs one");
      if (cross.memory && linear.getInput() != cross.memory)
        return op.emitOpError("projects keys or values from another value "
                              "than the first cross-attention; "
                              "hoist-cross=false needs one encoder output");
      cross.memory = linear.getInput();
    }
  }
  auto memType = cast<RankedTensorType>(cross.memory.getType());
  if (memType.getRank() != 3 || memType.isDynamicDim(2))
    return forward.emitError("transformer-kv-cache: the encoder output ")
           << memType << " is not [batch, seq, dim]";
  cross.type = KVCacheType::get(ctx, 1, batch, 1, memType.getDimSize(2), cap,
                                memType.getElementType());
  return success();
}

FailureOr<func::FuncOp>
TransformerKVCachePass::deriveEncode(func::FuncOp forward,
                                     const CrossState &cross) {
  MLIRContext *ctx = &getContext();
  Location loc = forward.getLoc();
  auto srcType = cast<RankedTensorType>(forward.getArgumentTypes()[0]);
  OpBuilder builder(ctx);
  builder.setInsertionPointAfter(forward);
  auto fn = func::FuncOp::create(
      builder, loc, "encode",
      FunctionType::get(ctx, {srcType, cross.type}, {cross.type}));
  fn->setAttr(kEntryAttr, StringAttr::get(ctx, "encode"));
  fn.setResultAttr(0, kTiedArgAttr, builder.getI64IntegerAttr(1));
  Block *body = fn.addEntryBlock();

  // Clone what the cached values are computed from, in program order.
  SmallVector<Value> roots;
  if (cross.memory)
    roots.push_back(cross.memory);
  for (AttentionOp op : cross.attentions) {
    roots.push_back(op.getKey());
    roots.push_back(op.getValue());
  }
  llvm::SetVector<Operation *> needed;
  BackwardSliceOptions options;
  options.omitBlockArguments = true;
  for (Value root : roots) {
    if (Operation *def = root.getDefiningOp()) {
      (void)getBackwardSlice(def, &needed, options);
      needed.insert(def);
    }
  }
  IRMapping mapping;
  mapping.map(forward.getArgument(0), body->getArgument(0));
  builder.setInsertionPointToStart(body);
  for (Operation &op : forward.getBody().front())
    if (needed.contains(&op))
      builder.clone(op, mapping);
  for (Operation &op : *body)
    if (failed(refineResultTypes(&op)))
      return failure();

  Value state = body->getArgument(1);
  Value zero = arith::ConstantIndexOp::create(builder, loc, 0);
  if (cross.memory) {
    Value m = mapping.lookup(cross.memory);
    state = KVCacheAppendOp::create(builder, loc, cross.type, state, 0, m, m,
                                    zero);
  }
  for (unsigned layer = 0; layer < cross.attentions.size(); ++layer) {
    AttentionOp op = cross.attentions[layer];
    state = KVCacheAppendOp::create(builder, op.getLoc(), cross.type, state,
                                    layer, mapping.lookup(op.getKey()),
                                    mapping.lookup(op.getValue()), zero);
  }
  func::ReturnOp::create(builder, loc, state);
  if (failed(refineFunctionTypes(fn)))
    return failure();
  return fn;
}

FailureOr<func::FuncOp>
TransformerKVCachePass::derive(func::FuncOp forward, StringRef name,
                               bool singleToken, KVCacheType cacheType,
                               const CrossState *cross) {
  MLIRContext *ctx = &getContext();
  Location loc = forward.getLoc();
  unsigned tgtIndex = cross ? 1 : 0;
  auto tokensType =
      cast<RankedTensorType>(forward.getArgumentTypes()[tgtIndex]);
  auto logitsType = cast<RankedTensorType>(forward.getResultTypes()[0]);
  int64_t batch = tokensType.getDimSize(0);
  if (singleToken)
    tokensType = RankedTensorType::get({batch, 1}, tokensType.getElementType());
  auto lastLogitsType = RankedTensorType::get({batch, logitsType.getDimSize(2)},
                                              logitsType.getElementType());

  OpBuilder builder(ctx);
  builder.setInsertionPointAfter(forward);
  SmallVector<Type> inputs = {tokensType, builder.getIndexType(), cacheType};
  if (cross) {
    inputs.push_back(forward.getArgumentTypes()[0]); // source ids
    inputs.push_back(cross->type);
  }
  auto fn = func::FuncOp::create(
      builder, loc, name,
      FunctionType::get(ctx, inputs, {lastLogitsType, cacheType}));
  fn->setAttr(kEntryAttr, StringAttr::get(ctx, name));
  fn.setResultAttr(1, kTiedArgAttr, builder.getI64IntegerAttr(2));
  Block *body = fn.addEntryBlock();
  Value tokens = body->getArgument(0), pos = body->getArgument(1);
  Value cache = body->getArgument(2);

  // Clone the whole-sequence body, then refine types to the new token shape.
  IRMapping mapping;
  mapping.map(forward.getArgument(tgtIndex), tokens);
  if (cross)
    mapping.map(forward.getArgument(0), body->getArgument(3));
  builder.setInsertionPointToStart(body);
  for (Operation &op : forward.getBody().front())
    builder.clone(op, mapping);
  auto ret = cast<func::ReturnOp>(body->getTerminator());
  Value logits = ret.getOperand(0);
  ret.erase();

  // The decoder reads what @encode cached instead of computing it from the
  // source: the encoder becomes dead code.
  if (cross) {
    Value src = body->getArgument(3), state = body->getArgument(4);
    KVCacheType crossType = cross->type;
    auto rowsType = RankedTensorType::get(
        {crossType.getBatch(), ShapedType::kDynamic, crossType.getWidth()},
        crossType.getElementType());
    if (cross->memory) {
      builder.setInsertionPointToStart(body);
      Value len = tensor::DimOp::create(builder, loc, src, 1);
      auto read = KVCacheReadOp::create(builder, loc, rowsType, rowsType,
                                        state, 0, len);
      mapping.lookup(cross->memory).replaceAllUsesWith(read.getKey());
    }
    for (unsigned layer = 0; layer < cross->attentions.size(); ++layer) {
      AttentionOp op = cross->attentions[layer];
      auto clone = cast<AttentionOp>(mapping.lookup(op.getOperation()));
      builder.setInsertionPoint(clone);
      Value len = tensor::DimOp::create(builder, clone.getLoc(), src, 1);
      auto read = KVCacheReadOp::create(builder, clone.getLoc(), rowsType,
                                        rowsType, state, layer, len);
      clone.getKeyMutable().assign(read.getKey());
      clone.getValueMutable().assign(read.getValue());
    }
  }
  for (Operation &op : *body)
    if (failed(refineResultTypes(&op)))
      return failure();
  // Only what depends on the target moves with %pos (not the encoder).
  llvm::SetVector<Operation *> onTarget = dependentsOf(fn, 0);

  builder.setInsertionPointToStart(body);
  Value seqLen =
      singleToken ? arith::ConstantIndexOp::create(builder, loc, 1).getResult()
                  : tensor::DimOp::create(builder, loc, tokens, 1).getResult();
  Value end = arith::AddIOp::create(builder, loc, pos, seqLen);

  // Positional encodings see absolute positions starting at %pos.
  auto shiftOffset = [&](Operation *op, MutableOperandRange offset) {
    builder.setInsertionPoint(op);
    Value shifted = pos;
    if (!offset.empty())
      shifted =
          arith::AddIOp::create(builder, op->getLoc(), pos, offset[0].get());
    offset.assign(shifted);
  };
  body->walk([&](Operation *op) {
    if (!onTarget.contains(op))
      return;
    if (auto pe = dyn_cast<PositionEmbeddingOp>(op))
      shiftOffset(op, pe.getOffsetMutable());
    else if (auto sin = dyn_cast<SinusoidalPositionOp>(op))
      shiftOffset(op, sin.getOffsetMutable());
    else if (auto rope = dyn_cast<RopeOp>(op))
      shiftOffset(op, rope.getOffsetMutable());
  });

  // Each causal self-attention appends its keys/values and reads the prefix.
  auto kvType =
      RankedTensorType::get({batch, ShapedType::kDynamic, cacheType.getWidth()},
                            cacheType.getElementType());
  int64_t layer = 0;
  SmallVector<AttentionOp> attentions;
  body->walk([&](AttentionOp op) {
    if (op.getMode() == AttentionMode::causal)
      attentions.push_back(op);
  });
  for (AttentionOp op : attentions) {
    builder.setInsertionPoint(op);
    Location opLoc = op.getLoc();
    cache = KVCacheAppendOp::create(builder, opLoc, cacheType, cache, layer,
                                    op.getKey(), op.getValue(), pos);
    auto read = KVCacheReadOp::create(builder, opLoc, kvType, kvType, cache,
                                      layer, end);
    op.getKeyMutable().assign(read.getKey());
    op.getValueMutable().assign(read.getValue());
    op.getOffsetMutable().assign(pos);
    ++layer;
  }

  // Only the last position's logits leave the function.
  builder.setInsertionPointToEnd(body);
  Value last = arith::SubIOp::create(
      builder, loc, seqLen, arith::ConstantIndexOp::create(builder, loc, 1));
  PositionNarrower narrower(builder, last);
  FailureOr<Value> narrowed = narrower.narrow(logits);
  if (failed(narrowed))
    return failure();
  Value lastLogits = tensor::CollapseShapeOp::create(
      builder, loc, lastLogitsType, *narrowed,
      ArrayRef<ReassociationIndices>{{0, 1}, {2}});
  func::ReturnOp::create(builder, loc, ValueRange{lastLogits, cache});

  // The full-sequence computations that only fed the logits are now dead.
  for (Operation &op : llvm::make_early_inc_range(llvm::reverse(*body)))
    if (isOpTriviallyDead(&op))
      op.erase();
  if (failed(refineFunctionTypes(fn)))
    return failure();
  return fn;
}

} // namespace
