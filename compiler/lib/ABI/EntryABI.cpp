//===- EntryABI.cpp - Give entry points the runtime's C ABI ---------------===//
//
// Implements `kiln-entry-abi`: entry functions become destination-passing
// functions over memrefs with MLIR's C interface, matching the prototypes in
// runtime/include/kiln_runtime.h, and the `kiln_model` record is emitted.
//
//===----------------------------------------------------------------------===//

#include "kiln/ABI/Passes.h"
#include "kiln/Dialect/Transformer/Transforms/Passes.h"
#include "kiln_runtime.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/BitVector.h"

namespace kiln {
#define GEN_PASS_DEF_KILNENTRYABI
#include "kiln/ABI/Passes.h.inc"
} // namespace kiln

using namespace mlir;
using namespace kiln::transformer;

namespace {

/// What the runtime needs to know about the compiled entry points.
struct ModelShape {
  int64_t batch = 0, layers = 0, width = 0, capacity = 0, vocab = 0;
  /// Encoder-decoder models: the cross state @encode writes.
  int64_t kind = KILN_MODEL_DECODER_ONLY, crossLayers = 0, crossWidth = 0,
          sourceCapacity = 0;
  /// Bytes per KV cache element: 4 (f32), 2 (f16, bf16).
  int64_t kvElementBytes = 4;
};

MemRefType memrefFor(RankedTensorType t) {
  return MemRefType::get(t.getShape(), t.getElementType());
}

LogicalResult rewriteEntry(func::FuncOp func, ModelShape &shape) {
  MLIRContext *ctx = func.getContext();
  OpBuilder b(ctx);
  Block &entry = func.getBody().front();
  Location loc = func.getLoc();
  unsigned numArgs = func.getNumArguments();
  unsigned numResults = func.getNumResults();

  SmallVector<int64_t> tiedArg(numResults, -1);
  for (unsigned r = 0; r < numResults; ++r) {
    if (auto tied = func.getResultAttrOfType<IntegerAttr>(r, kTiedArgAttr)) {
      int64_t a = tied.getInt();
      if (a < 0 || a >= (int64_t)numArgs ||
          func.getArgumentTypes()[a] != func.getResultTypes()[r])
        return func.emitError("result ")
               << r << " is tied to argument " << a
               << ", which does not exist or has another type";
      tiedArg[r] = a;
    }
  }

  // Tensor arguments become memrefs read through to_tensor.
  b.setInsertionPointToStart(&entry);
  for (unsigned a = 0; a < numArgs; ++a) {
    BlockArgument arg = entry.getArgument(a);
    auto type = dyn_cast<RankedTensorType>(arg.getType());
    if (!type)
      continue;
    bool written = llvm::is_contained(tiedArg, (int64_t)a);
    arg.setType(memrefFor(type));
    auto toTensor = bufferization::ToTensorOp::create(
        b, arg.getLoc(), type, arg, /*restrict=*/true, /*writable=*/written);
    arg.replaceAllUsesExcept(toTensor, toTensor);
  }
  func.setType(
      FunctionType::get(ctx, entry.getArgumentTypes(), func.getResultTypes()));

  // Results are written into their destination buffers.
  auto ret = cast<func::ReturnOp>(entry.getTerminator());
  SmallVector<Value> dests;
  for (unsigned r = 0; r < numResults; ++r) {
    auto type = dyn_cast<RankedTensorType>(func.getResultTypes()[r]);
    if (!type)
      return func.emitError("entry point result ")
             << r << " is not a ranked tensor: " << func.getResultTypes()[r];
    if (tiedArg[r] >= 0) {
      dests.push_back(entry.getArgument(tiedArg[r]));
      continue;
    }
    unsigned index = func.getNumArguments();
    if (failed(func.insertArgument(
            index, memrefFor(type),
            b.getDictionaryAttr(
                b.getNamedAttr("transformer.output", b.getI64IntegerAttr(r))),
            loc)))
      return failure();
    dests.push_back(entry.getArgument(index));
  }
  b.setInsertionPoint(ret);
  for (auto [value, dest] : llvm::zip(ret.getOperands(), dests))
    bufferization::MaterializeInDestinationOp::create(
        b, ret.getLoc(), Type(), value, dest, /*restrict=*/true,
        /*writable=*/true);
  func::ReturnOp::create(b, ret.getLoc());
  ret.erase();
  llvm::BitVector all(numResults, true);
  if (failed(func.eraseResults(all)))
    return failure();
  func->setAttr(LLVM::LLVMDialect::getEmitCWrapperAttrName(),
                UnitAttr::get(ctx));

  // Record the shapes the runtime must allocate.
  auto role = func->getAttrOfType<StringAttr>(kEntryAttr);
  bool encode = role && role.getValue() == "encode";
  for (unsigned r = 0; r < numResults; ++r) {
    auto type = cast<MemRefType>(dests[r].getType());
    if (encode && tiedArg[r] >= 0 && type.getRank() == 5) {
      shape.kind = KILN_MODEL_ENCODER_DECODER;
      shape.crossLayers = type.getDimSize(0);
      shape.sourceCapacity = type.getDimSize(3);
      shape.crossWidth = type.getDimSize(4);
    } else if (tiedArg[r] >= 0 && type.getRank() == 5) {
      shape.layers = type.getDimSize(0);
      shape.batch = type.getDimSize(2);
      shape.capacity = type.getDimSize(3);
      shape.width = type.getDimSize(4);
      shape.kvElementBytes = type.getElementTypeBitWidth() / 8;
    } else if (tiedArg[r] < 0) {
      shape.vocab = type.getDimSize(type.getRank() - 1);
      if (!shape.batch)
        shape.batch = type.getDimSize(0);
    }
  }
  return success();
}

/// Emits `const kiln_model_info kiln_model` (see kiln_runtime.h): ABI
/// version, weight count, cache shape, vocabulary, model path, the
/// fingerprint of the weight table (module attribute set by the importer),
/// the cross state's shape and the KV cache's element size.
void emitModelInfo(ModuleOp module, const ModelShape &shape) {
  MLIRContext *ctx = module.getContext();
  OpBuilder b(ctx);
  b.setInsertionPointToEnd(module.getBody());
  Location loc = module.getLoc();
  auto i32 = b.getI32Type(), i64 = b.getI64Type();
  auto ptr = LLVM::LLVMPointerType::get(ctx);

  std::string path;
  if (auto attr = module->getAttrOfType<StringAttr>("kiln.model_path"))
    path = attr.getValue().str();
  path.push_back('\0');
  auto pathType = LLVM::LLVMArrayType::get(b.getI8Type(), path.size());
  LLVM::GlobalOp::create(b, loc, pathType, /*isConstant=*/true,
                         LLVM::Linkage::Private, "kiln_model_path",
                         b.getStringAttr(path));

  int64_t numWeights = 0;
  if (auto attr = module->getAttrOfType<IntegerAttr>("transformer.num_weights"))
    numWeights = attr.getInt();
  int64_t fingerprint = 0;
  if (auto attr =
          module->getAttrOfType<IntegerAttr>("kiln.weights_fingerprint"))
    fingerprint = attr.getInt();
  auto infoType = LLVM::LLVMStructType::getLiteral(
      ctx,
      {i32, i32, i64, i64, i64, i64, i64, ptr, i64, i64, i64, i64, i64, i64});
  auto global = LLVM::GlobalOp::create(b, loc, infoType, /*isConstant=*/true,
                                       LLVM::Linkage::External, "kiln_model",
                                       Attribute());
  Block *init = b.createBlock(&global.getInitializerRegion());
  b.setInsertionPointToStart(init);
  Value info = LLVM::UndefOp::create(b, loc, infoType);
  auto insert = [&](int64_t pos, Value v) {
    info = LLVM::InsertValueOp::create(b, loc, info, v, pos);
  };
  auto c = [&](Type t, int64_t v) -> Value {
    return LLVM::ConstantOp::create(b, loc, t, b.getIntegerAttr(t, v));
  };
  insert(0, c(i32, KILN_ABI_VERSION));
  insert(1, c(i32, numWeights));
  insert(2, c(i64, shape.batch));
  insert(3, c(i64, shape.layers));
  insert(4, c(i64, shape.width));
  insert(5, c(i64, shape.capacity));
  insert(6, c(i64, shape.vocab));
  insert(7, LLVM::AddressOfOp::create(b, loc, ptr, "kiln_model_path"));
  insert(8, c(i64, fingerprint));
  insert(9, c(i64, shape.kind));
  insert(10, c(i64, shape.sourceCapacity));
  insert(11, c(i64, shape.crossLayers));
  insert(12, c(i64, shape.crossWidth));
  insert(13, c(i64, shape.kvElementBytes));
  LLVM::ReturnOp::create(b, loc, info);
}

struct KilnEntryABIPass
    : public kiln::impl::KilnEntryABIBase<KilnEntryABIPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (module.lookupSymbol("kiln_model")) {
      module.emitError("kiln-entry-abi: 'kiln_model' already exists");
      return signalPassFailure();
    }
    ModelShape shape;
    bool any = false;
    for (auto func : module.getOps<func::FuncOp>()) {
      if (!func->hasAttr(kEntryAttr) || func.isExternal())
        continue;
      any = true;
      if (failed(rewriteEntry(func, shape)))
        return signalPassFailure();
    }
    if (!any) {
      module.emitError("kiln-entry-abi: no function is marked '")
          << kEntryAttr << "'";
      return signalPassFailure();
    }
    emitModelInfo(module, shape);
  }
};

} // namespace
