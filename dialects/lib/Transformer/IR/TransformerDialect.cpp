//===- TransformerDialect.cpp - Transformer dialect registration ----------===//

#include "kiln/Dialect/Transformer/IR/Transformer.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace kiln::transformer;

#include "kiln/Dialect/Transformer/IR/TransformerEnums.cpp.inc"
#include "kiln/Dialect/Transformer/IR/TransformerOpsDialect.cpp.inc"
#define GET_TYPEDEF_CLASSES
#include "kiln/Dialect/Transformer/IR/TransformerOpsTypes.cpp.inc"
#define GET_ATTRDEF_CLASSES
#include "kiln/Dialect/Transformer/IR/TransformerAttrs.cpp.inc"

void TransformerDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "kiln/Dialect/Transformer/IR/TransformerOps.cpp.inc"
      >();
  addTypes<
#define GET_TYPEDEF_LIST
#include "kiln/Dialect/Transformer/IR/TransformerOpsTypes.cpp.inc"
      >();
  addAttributes<
#define GET_ATTRDEF_LIST
#include "kiln/Dialect/Transformer/IR/TransformerAttrs.cpp.inc"
      >();
}

//===----------------------------------------------------------------------===//
// WeightEncodingAttr
//===----------------------------------------------------------------------===//

EncodingBlock kiln::transformer::getEncodingBlock(WeightEncoding encoding) {
  // GGUF's block layouts (ggml-common.h): elements per block, bytes.
  switch (encoding) {
  case WeightEncoding::f16:
  case WeightEncoding::bf16:
    return {1, 2};
  case WeightEncoding::q8_0:
    return {32, 34};
  case WeightEncoding::q4_0:
    return {32, 18};
  case WeightEncoding::q4_1:
    return {32, 20};
  case WeightEncoding::q5_0:
    return {32, 22};
  case WeightEncoding::q5_1:
    return {32, 24};
  case WeightEncoding::q4_k:
    return {256, 144};
  case WeightEncoding::q5_k:
    return {256, 176};
  case WeightEncoding::q6_k:
    return {256, 210};
  }
  llvm_unreachable("unknown weight encoding");
}

LogicalResult
WeightEncodingAttr::verifyEncoding(ArrayRef<int64_t> shape, Type elementType,
                             function_ref<InFlightDiagnostic()> emitError) const {
  WeightEncoding encoding = getValue();
  if (!elementType.isF32())
    return emitError() << "a weight stored as "
                       << stringifyWeightEncoding(encoding)
                       << " holds f32 values, got element type " << elementType;
  if (shape.size() != 2 || ShapedType::isDynamicShape(shape))
    return emitError() << "a weight stored as "
                       << stringifyWeightEncoding(encoding)
                       << " is a matrix of static shape [rows, cols]";
  EncodingBlock block = getEncodingBlock(encoding);
  if (shape.back() % block.elements != 0)
    return emitError() << "a weight stored as "
                       << stringifyWeightEncoding(encoding) << " has rows of "
                       << shape.back() << " elements, not a multiple of its "
                       << block.elements << "-element block";
  return success();
}

std::optional<WeightEncoding> kiln::transformer::getWeightEncoding(Type type) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  if (!tensor)
    return std::nullopt;
  if (auto attr = dyn_cast_or_null<WeightEncodingAttr>(tensor.getEncoding()))
    return attr.getValue();
  return std::nullopt;
}

RankedTensorType kiln::transformer::getWeightStorageType(RankedTensorType type) {
  EncodingBlock block = getEncodingBlock(*getWeightEncoding(type));
  ArrayRef<int64_t> shape = type.getShape();
  SmallVector<int64_t> storage(shape.drop_back());
  storage.push_back(shape.back() / block.elements * block.bytes);
  return RankedTensorType::get(storage,
                               IntegerType::get(type.getContext(), 8));
}

RankedTensorType kiln::transformer::dropEncoding(RankedTensorType type) {
  return RankedTensorType::get(type.getShape(), type.getElementType());
}

//===----------------------------------------------------------------------===//
// KVCacheType
//===----------------------------------------------------------------------===//

LogicalResult KVCacheType::verify(function_ref<InFlightDiagnostic()> emitError,
                                  int64_t layers, int64_t batch,
                                  int64_t kvHeads, int64_t headDim,
                                  int64_t capacity, Type elementType) {
  if (layers <= 0 || batch <= 0 || kvHeads <= 0 || headDim <= 0 ||
      capacity <= 0)
    return emitError() << "kv_cache dimensions must be positive, got layers = "
                       << layers << ", batch = " << batch
                       << ", kv_heads = " << kvHeads
                       << ", head_dim = " << headDim
                       << ", capacity = " << capacity;
  if (!elementType.isF32() && !elementType.isF16() && !elementType.isBF16())
    return emitError() << "kv_cache element type must be f32, f16 or bf16, got "
                       << elementType;
  return success();
}

RankedTensorType KVCacheType::getStorageType() const {
  return RankedTensorType::get(
      {getLayers(), 2, getBatch(), getCapacity(), getWidth()},
      getElementType());
}
