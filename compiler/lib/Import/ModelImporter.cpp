//===- ModelImporter.cpp - .kiln model file -> transformer dialect --------===//
//
// Builds the whole-sequence (training) form of a model file's graph. Nothing
// in the file is trusted before the FlatBuffers verifier and the semantic
// checks here have passed: every name resolves, every weight's bytes match
// its dtype and shape, and every op's shapes are checked by the op's own
// type inference, whose messages name the node.
//
//===----------------------------------------------------------------------===//

#include "kiln/Import/ModelImporter.h"
#include "kiln/Dialect/Transformer/IR/Transformer.h"
#include "kiln/Dialect/Transformer/Transforms/Passes.h"

#include "kiln/rt/model.h"
#include "kiln_generated.h"
#include "kiln_runtime.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <cmath>

using namespace mlir;
using namespace kiln::transformer;
namespace fb = kiln::fb;

namespace {

class Importer {
public:
  Importer(MLIRContext *ctx, StringRef path, const fb::Model *model,
           const uint8_t *base, const kiln::ImportOptions &options)
      : ctx(ctx), b(ctx), model(model), base(base), options(options),
        fileLoc(FileLineColLoc::get(ctx, path, 0, 0)) {}

  OwningOpRef<ModuleOp> run();

private:
  InFlightDiagnostic error() { return emitError(fileLoc); }
  /// The location of a graph node: its name over the file. Diagnostics at
  /// this location are printed with the node's name (kiln-compile:
  /// `model.kiln: node 'h.0.attn': error: ...`), so their text must not
  /// name the node again.
  Location nodeLoc(const fb::Node *node) {
    return NameLoc::get(StringAttr::get(ctx, node->name()->string_view()),
                        fileLoc);
  }

  LogicalResult checkWeights();
  LogicalResult importNode(const fb::Node *node);
  /// Input `i` of `node`; null when it is "" and `optional`.
  FailureOr<Value> input(const fb::Node *node, unsigned i,
                         bool optional = false);
  Value weight(unsigned index);

  template <typename OpTy, typename... Args>
  FailureOr<Value> build(Location loc, Args &&...args);

  MLIRContext *ctx;
  OpBuilder b;
  const fb::Model *model;
  const uint8_t *base;
  kiln::ImportOptions options;
  Location fileLoc;
  llvm::StringMap<Value> values;
  llvm::StringMap<unsigned> weightIndex;
  DenseMap<unsigned, Value> weightValues;
};

/// Creates OpTy with its result type inferred; reports inference failures as
/// diagnostics (at `loc`, the node) instead of aborting like the generated
/// inferring builders do.
template <typename OpTy, typename... Args>
FailureOr<Value> Importer::build(Location loc, Args &&...args) {
  OperationState state(loc, OpTy::getOperationName());
  Type placeholder = b.getNoneType();
  OpTy::build(b, state, placeholder, std::forward<Args>(args)...);
  SmallVector<Type> types;
  if (failed(OpTy::inferReturnTypes(
          ctx, loc, state.operands, state.attributes.getDictionary(ctx),
          state.getRawProperties(), state.regions, types)))
    return failure();
  state.types.assign(types.begin(), types.end());
  return b.create(state)->getResult(0);
}

LogicalResult Importer::checkWeights() {
  // Shapes, dtypes, sizes and places in the data section were checked by
  // kiln::rt::checkModelLayout before the importer was made.
  const auto *weights = model->weights();
  for (unsigned i = 0; i < weights->size(); ++i) {
    const fb::Weight *w = weights->Get(i);
    StringRef name = w->name()->string_view();
    if (name.empty())
      return error() << "weight #" << i << " has an empty name";
    if (!weightIndex.try_emplace(name, i).second)
      return error() << "weight '" << name << "' is defined twice";
    if (w->dtype() != fb::DType::F32 && w->shape()->size() != 2)
      return error() << "weight '" << name << "' has dtype "
                     << fb::EnumNameDType(w->dtype()) << " and rank "
                     << w->shape()->size()
                     << "; only matrices may be stored in a type other than "
                        "F32";
  }
  return success();
}

Value Importer::weight(unsigned index) {
  if (Value v = weightValues.lookup(index))
    return v;
  const fb::Weight *w = model->weights()->Get(index);
  SmallVector<int64_t> shape(w->shape()->begin(), w->shape()->end());
  // A weight kept as published carries its encoding; DType and
  // WeightEncoding share their values.
  Attribute encoding;
  if (w->dtype() != fb::DType::F32)
    encoding = WeightEncodingAttr::get(
        ctx, static_cast<WeightEncoding>(static_cast<int>(w->dtype())));
  auto type = RankedTensorType::get(shape, b.getF32Type(), encoding);
  Value v = WeightOp::create(
      b, NameLoc::get(StringAttr::get(ctx, w->name()->string_view()), fileLoc),
      type, w->name()->string_view(), index);
  weightValues[index] = v;
  return v;
}

FailureOr<Value> Importer::input(const fb::Node *node, unsigned i,
                                 bool optional) {
  StringRef name = node->inputs()->Get(i)->string_view();
  if (name.empty()) {
    if (optional)
      return Value();
    emitError(nodeLoc(node)) << "input #" << i << " must not be empty";
    return failure();
  }
  if (Value v = values.lookup(name))
    return v;
  auto it = weightIndex.find(name);
  if (it != weightIndex.end())
    return weight(it->second);
  emitError(nodeLoc(node)) << "reads '" << name
                           << "', which is neither a weight nor produced by "
                              "an earlier node";
  return failure();
}

LogicalResult Importer::importNode(const fb::Node *node) {
  Location loc = nodeLoc(node);
  unsigned numInputs = node->inputs()->size();
  auto arity = [&](unsigned lo, unsigned hi) -> LogicalResult {
    if (numInputs >= lo && numInputs <= hi)
      return success();
    auto diag = emitError(loc) << fb::EnumNameOp(node->op_type()) << " has "
                               << numInputs << " inputs; expected ";
    if (lo == hi)
      diag << lo;
    else
      diag << lo << " to " << hi;
    return failure();
  };
  if (node->outputs()->size() != 1)
    return emitError(loc) << "has " << node->outputs()->size()
                          << " outputs; every op has exactly one";
  SmallVector<Value> in;
  auto get = [&](unsigned i, bool optional = false) -> LogicalResult {
    FailureOr<Value> v = input(node, i, optional);
    if (failed(v))
      return failure();
    in.push_back(*v);
    return success();
  };

  FailureOr<Value> result = failure();
  switch (node->op_type()) {
  case fb::Op::EmbeddingOp: {
    if (failed(arity(2, 2)) || failed(get(0)) || failed(get(1)))
      return failure();
    float scale = node->op_as_EmbeddingOp()->scale();
    if (!std::isfinite(scale) || scale <= 0.0f)
      return emitError(loc)
             << "embedding scale must be positive and finite, got " << scale;
    result = build<EmbeddingOp>(loc, in[0], in[1], b.getF32FloatAttr(scale));
    break;
  }
  case fb::Op::SinusoidalPositionOp: {
    if (failed(arity(1, 1)) || failed(get(0)))
      return failure();
    float base = node->op_as_SinusoidalPositionOp()->base();
    result = build<SinusoidalPositionOp>(loc, in[0], Value(),
                                         b.getF32FloatAttr(base));
    break;
  }
  case fb::Op::PaddingMaskOp: {
    if (failed(arity(1, 1)) || failed(get(0)))
      return failure();
    if (!isa<IntegerType>(getElementTypeOrSelf(in[0].getType())) ||
        getElementTypeOrSelf(in[0].getType()).getIntOrFloatBitWidth() == 1)
      return emitError(loc)
             << "masks " << in[0].getType() << "; expected token ids";
    int64_t pad = node->op_as_PaddingMaskOp()->pad_id();
    result = build<PaddingMaskOp>(loc, in[0], b.getI64IntegerAttr(pad));
    break;
  }
  case fb::Op::PositionEmbeddingOp: {
    if (failed(arity(2, 2)) || failed(get(0)) || failed(get(1)))
      return failure();
    // Every position the runtime may pass must have a row: the context
    // length, and the source length of encoder-decoder models.
    const fb::Metadata *meta = model->metadata();
    int64_t need = std::max<int64_t>(meta->context_length(),
                                     model->inputs()->size() == 2
                                         ? meta->source_length()
                                         : 0);
    auto table = dyn_cast<RankedTensorType>(in[1].getType());
    if (table && table.getRank() == 2 && table.getDimSize(0) < need)
      return emitError(loc)
             << "the position table " << table << " has fewer rows than the "
             << need << " positions the model reads";
    result = build<PositionEmbeddingOp>(loc, in[0], in[1], Value());
    break;
  }
  case fb::Op::RopeOp: {
    const fb::RopeOp *op = node->op_as_RopeOp();
    if (failed(arity(1, 1)) || failed(get(0)))
      return failure();
    RopeStyle style = op->style() == fb::RopeStyle::Interleaved
                          ? RopeStyle::interleaved
                          : RopeStyle::rotate_half;
    DenseF32ArrayAttr factors;
    if (const auto *f = op->freq_factors())
      factors = b.getDenseF32ArrayAttr(SmallVector<float>(f->begin(), f->end()));
    result = build<RopeOp>(
        loc, in[0], Value(), b.getI64IntegerAttr(op->head_dim()),
        b.getF32FloatAttr(op->theta()), RopeStyleAttr::get(ctx, style),
        factors, b.getF32FloatAttr(op->attention_factor()));
    break;
  }
  case fb::Op::LayerNormOp:
    if (failed(arity(3, 3)) || failed(get(0)) || failed(get(1)) ||
        failed(get(2)))
      return failure();
    result = build<LayerNormOp>(
        loc, in[0], in[1], in[2],
        b.getF32FloatAttr(node->op_as_LayerNormOp()->epsilon()));
    break;
  case fb::Op::RmsNormOp:
    if (failed(arity(2, 2)) || failed(get(0)) || failed(get(1)))
      return failure();
    {
      const fb::RmsNormOp *op = node->op_as_RmsNormOp();
      IntegerAttr group;
      if (op->group_size() != 0)
        group = b.getI64IntegerAttr(op->group_size());
      result = build<RMSNormOp>(loc, in[0], in[1],
                                b.getF32FloatAttr(op->epsilon()), group);
    }
    break;
  case fb::Op::LinearOp:
    if (failed(arity(2, 3)) || failed(get(0)) || failed(get(1)))
      return failure();
    if (numInputs == 3 && failed(get(2, /*optional=*/true)))
      return failure();
    result =
        build<LinearOp>(loc, in[0], in[1], numInputs == 3 ? in[2] : Value());
    break;
  case fb::Op::AddOp: {
    if (failed(arity(2, 2)) || failed(get(0)) || failed(get(1)))
      return failure();
    if (in[0].getType() != in[1].getType())
      return emitError(loc) << "adds " << in[0].getType() << " and "
                            << in[1].getType() << "; the shapes must be equal";
    result = AddOp::create(b, loc, in[0], in[1]).getResult();
    break;
  }
  case fb::Op::AttentionOp: {
    const fb::AttentionOp *op = node->op_as_AttentionOp();
    if (failed(arity(3, 4)) || failed(get(0)) || failed(get(1)) ||
        failed(get(2)))
      return failure();
    Value keyMask;
    if (numInputs == 4) {
      if (failed(get(3, /*optional=*/true)))
        return failure();
      keyMask = in[3];
      if (keyMask && !getElementTypeOrSelf(keyMask.getType()).isInteger(1))
        return emitError(loc) << "key_mask has type " << keyMask.getType()
                              << "; expected a PaddingMaskOp output";
    }
    AttentionMode mode;
    switch (op->mode()) {
    case fb::AttentionMode::Causal:
      mode = AttentionMode::causal;
      break;
    case fb::AttentionMode::Bidirectional:
      mode = AttentionMode::bidirectional;
      break;
    case fb::AttentionMode::Cross:
      mode = AttentionMode::cross;
      break;
    default:
      return emitError(loc) << "unknown attention mode " << (int)op->mode()
                            << " (supported: Causal, Bidirectional, Cross)";
    }
    if (op->head_dim() <= 0)
      return emitError(loc)
             << "head_dim must be positive, got " << op->head_dim();
    float scale = op->scale();
    if (scale == 0.0f)
      scale = 1.0f / std::sqrt((float)op->head_dim());
    IntegerAttr window;
    if (op->window() != 0)
      window = b.getI64IntegerAttr(op->window());
    result = build<AttentionOp>(
        loc, in[0], in[1], in[2], keyMask, Value(),
        AttentionModeAttr::get(ctx, mode), b.getI64IntegerAttr(op->num_heads()),
        b.getI64IntegerAttr(op->num_kv_heads()),
        b.getI64IntegerAttr(op->head_dim()), b.getF32FloatAttr(scale), window);
    break;
  }
  case fb::Op::FeedForwardOp: {
    fb::Activation fa = node->op_as_FeedForwardOp()->activation();
    Activation act;
    switch (fa) {
    case fb::Activation::ReLU:
      act = Activation::relu;
      break;
    case fb::Activation::GELU:
      act = Activation::gelu;
      break;
    case fb::Activation::GELUTanh:
      act = Activation::gelu_tanh;
      break;
    case fb::Activation::SiLU:
      act = Activation::silu;
      break;
    case fb::Activation::SwiGLU:
      act = Activation::swiglu;
      break;
    case fb::Activation::GEGLU:
      act = Activation::geglu;
      break;
    case fb::Activation::GEGLUTanh:
      act = Activation::geglu_tanh;
      break;
    default:
      return emitError(loc) << "unknown activation " << (int)fa;
    }
    auto actAttr = ActivationAttr::get(ctx, act);
    if (isGatedActivation(act)) {
      if (failed(arity(4, 4)) || failed(get(0)) || failed(get(1)) ||
          failed(get(2)) || failed(get(3)))
        return failure();
      // inputs: x, gate, up, down
      result = build<FeedForwardOp>(loc, in[0], in[2], Value(), in[1], in[3],
                                    Value(), actAttr);
    } else {
      if (failed(arity(5, 5)) || failed(get(0)) || failed(get(1)) ||
          failed(get(2, true)) || failed(get(3)) || failed(get(4, true)))
        return failure();
      result = build<FeedForwardOp>(loc, in[0], in[1], in[2], Value(), in[3],
                                    in[4], actAttr);
    }
    break;
  }
  default:
    return emitError(loc) << "unknown op (type " << (int)node->op_type()
                          << "); the file may come from a newer Kiln";
  }
  if (failed(result))
    return failure();
  StringRef out = node->outputs()->Get(0)->string_view();
  if (out.empty() || values.count(out) || weightIndex.count(out))
    return emitError(loc) << "defines '" << out
                          << "', which is empty or already defined";
  values[out] = *result;
  return success();
}

OwningOpRef<ModuleOp> Importer::run() {
  const fb::Metadata *meta = model->metadata();
  if (meta->context_length() <= 0 || meta->vocab_size() <= 0) {
    error() << "metadata: context_length (" << meta->context_length()
            << ") and vocab_size (" << meta->vocab_size()
            << ") must be positive";
    return nullptr;
  }
  for (int64_t id :
       {(int64_t)meta->bos_token_id(), (int64_t)meta->eos_token_id(),
        (int64_t)meta->pad_token_id()}) {
    if (id < -1 || id >= meta->vocab_size()) {
      error() << "metadata: special token id " << id
              << " is outside the vocabulary of " << meta->vocab_size();
      return nullptr;
    }
  }
  if (const auto *ends = meta->end_token_ids())
    for (int32_t id : *ends)
      if (id < 0 || id >= meta->vocab_size()) {
        error() << "metadata: end token id " << id
                << " is outside the vocabulary of " << meta->vocab_size();
        return nullptr;
      }
  unsigned numInputs = model->inputs()->size();
  if (numInputs < 1 || numInputs > 2 || model->outputs()->size() != 1) {
    error() << "the graph must have one input (token ids) or two (source "
               "and target ids of an encoder-decoder model) and one output "
               "(logits), got "
            << numInputs << " and " << model->outputs()->size();
    return nullptr;
  }
  bool encoderDecoder = numInputs == 2;
  if (encoderDecoder && meta->source_length() <= 0) {
    error() << "metadata: an encoder-decoder model needs a positive "
               "source_length, got "
            << meta->source_length();
    return nullptr;
  }
  if (meta->source_vocab_size() < 0) {
    error() << "metadata: source_vocab_size must not be negative, got "
            << meta->source_vocab_size();
    return nullptr;
  }
  if (encoderDecoder && meta->bos_token_id() < 0) {
    error() << "metadata: an encoder-decoder model needs bos_token_id (the "
               "token decoding starts from)";
    return nullptr;
  }
  if (failed(checkWeights()))
    return nullptr;

  OwningOpRef<ModuleOp> module = ModuleOp::create(fileLoc);
  (*module)->setAttr(kContextLengthAttr,
                     b.getI64IntegerAttr(meta->context_length()));
  (*module)->setAttr("transformer.num_weights",
                     b.getI64IntegerAttr(model->weights()->size()));
  uint64_t fingerprint = kiln_fingerprint_begin();
  for (const fb::Weight *w : *model->weights()) {
    std::vector<int64_t> shape(w->shape()->begin(), w->shape()->end());
    fingerprint = kiln_fingerprint_weight(
        fingerprint, w->name()->c_str(), w->name()->size(), (uint8_t)w->dtype(),
        shape.data(), shape.size());
  }
  (*module)->setAttr("kiln.weights_fingerprint",
                     b.getI64IntegerAttr((int64_t)fingerprint));
  if (meta->name())
    (*module)->setAttr("kiln.model_name",
                       b.getStringAttr(meta->name()->string_view()));

  int64_t vocab = meta->vocab_size();
  auto tokensType = RankedTensorType::get({options.batch, ShapedType::kDynamic},
                                          b.getI32Type());
  auto logitsType = RankedTensorType::get(
      {options.batch, ShapedType::kDynamic, vocab}, b.getF32Type());
  b.setInsertionPointToEnd(module->getBody());
  SmallVector<Type> inputTypes(numInputs, tokensType);
  auto func = func::FuncOp::create(
      b, fileLoc, "forward", b.getFunctionType(inputTypes, {logitsType}));
  func->setAttr(kEntryAttr, b.getStringAttr("forward"));
  Block *body = func.addEntryBlock();
  b.setInsertionPointToStart(body);
  for (unsigned i = 0; i < numInputs; ++i) {
    StringRef inName = model->inputs()->Get(i)->string_view();
    if (inName.empty() || values.count(inName) || weightIndex.count(inName)) {
      error() << "graph input '" << inName
              << "' is empty, repeated or the name of a weight";
      return nullptr;
    }
    values[inName] = body->getArgument(i);
  }
  if (encoderDecoder) {
    (*module)->setAttr(kSourceLengthAttr,
                       b.getI64IntegerAttr(meta->source_length()));
    (*module)->setAttr("transformer.source_vocab_size",
                       b.getI64IntegerAttr(meta->source_vocab_size() > 0
                                               ? meta->source_vocab_size()
                                               : vocab));
  }

  for (const fb::Node *node : *model->nodes())
    if (failed(importNode(node)))
      return nullptr;

  StringRef outName = model->outputs()->Get(0)->string_view();
  Value logits = values.lookup(outName);
  if (!logits) {
    error() << "graph output '" << outName << "' is not produced by any node";
    return nullptr;
  }
  if (logits.getType() != logitsType) {
    error() << "graph output '" << outName << "' has type " << logits.getType()
            << "; expected logits " << logitsType
            << " (metadata vocab_size = " << vocab << ")";
    return nullptr;
  }
  func::ReturnOp::create(b, fileLoc, logits);
  if (failed(verify(*module)))
    return nullptr;
  return module;
}

} // namespace

OwningOpRef<ModuleOp> kiln::importModelBuffer(ArrayRef<uint8_t> bytes,
                                              StringRef path,
                                              MLIRContext *context,
                                              const ImportOptions &options) {
  context->loadDialect<TransformerDialect, func::FuncDialect>();
  Location loc = FileLineColLoc::get(context, path, 0, 0);
  if (options.batch <= 0) {
    emitError(loc) << "batch must be positive";
    return nullptr;
  }
  if (reinterpret_cast<uintptr_t>(bytes.data()) % 8 != 0) {
    emitError(loc) << "internal error: model buffer is not 8-byte aligned";
    return nullptr;
  }
  // The framing, the FlatBuffers verifier, the version and the weight table
  // (dtypes, shapes, sizes, places in the data section), as the runtime
  // checks them: only the FlatBuffer's bytes are read.
  kiln::rt::ModelLayout layout;
  if (auto msg = kiln::rt::checkModelLayout(bytes.data(), bytes.size(),
                                            "compiler", layout)) {
    emitError(loc) << *msg;
    return nullptr;
  }
  Importer importer(context, path, fb::GetModel(bytes.data()), bytes.data(),
                    options);
  return importer.run();
}

OwningOpRef<ModuleOp> kiln::importModelFile(StringRef path,
                                            MLIRContext *context,
                                            const ImportOptions &options) {
  Location loc = FileLineColLoc::get(context, path, 0, 0);
  // Mapped, not read: the importer reads the FlatBuffer at the file's
  // start, never the data section (which may be larger than memory).
  auto file = llvm::MemoryBuffer::getFile(path, /*IsText=*/false,
                                          /*RequiresNullTerminator=*/false);
  if (!file) {
    emitError(loc) << "cannot read model file: " << file.getError().message();
    return nullptr;
  }
  auto bytes = ArrayRef<uint8_t>(
      reinterpret_cast<const uint8_t *>((*file)->getBufferStart()),
      (*file)->getBufferSize());
  OwningOpRef<ModuleOp> module =
      importModelBuffer(bytes, path, context, options);
  if (!module)
    return nullptr;
  SmallString<256> abs(path);
  if (!llvm::sys::fs::make_absolute(abs))
    llvm::sys::path::remove_dots(abs, /*remove_dot_dot=*/true);
  (*module)->setAttr("kiln.model_path", StringAttr::get(context, abs));
  return module;
}
