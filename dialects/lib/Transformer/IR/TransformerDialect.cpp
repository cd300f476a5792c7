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

void TransformerDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "kiln/Dialect/Transformer/IR/TransformerOps.cpp.inc"
      >();
  addTypes<
#define GET_TYPEDEF_LIST
#include "kiln/Dialect/Transformer/IR/TransformerOpsTypes.cpp.inc"
      >();
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
  if (!isa<FloatType>(elementType))
    return emitError() << "kv_cache element type must be a float type, got "
                       << elementType;
  return success();
}

RankedTensorType KVCacheType::getStorageType() const {
  return RankedTensorType::get(
      {getLayers(), 2, getBatch(), getCapacity(), getWidth()},
      getElementType());
}
