//===- Transformer.h - The transformer dialect ------------------*- C++ -*-===//
#ifndef KILN_DIALECT_TRANSFORMER_IR_TRANSFORMER_H
#define KILN_DIALECT_TRANSFORMER_IR_TRANSFORMER_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace kiln::transformer::OpTrait {
/// Ops that compute each sequence position from the same position of their
/// sequence-shaped operands only.
template <typename ConcreteType>
class PositionWise
    : public mlir::OpTrait::TraitBase<ConcreteType, PositionWise> {};
} // namespace kiln::transformer::OpTrait

#include "kiln/Dialect/Transformer/IR/TransformerEnums.h.inc"

namespace kiln::transformer {
/// Gated activations (`swiglu`, `geglu`, `geglu_tanh`) multiply the
/// activated gate projection by the up projection.
inline bool isGatedActivation(Activation act) {
  return act == Activation::swiglu || act == Activation::geglu ||
         act == Activation::geglu_tanh;
}
} // namespace kiln::transformer

#include "kiln/Dialect/Transformer/IR/TransformerOpsDialect.h.inc"
#include "mlir/IR/TensorEncoding.h"
#define GET_ATTRDEF_CLASSES
#include "kiln/Dialect/Transformer/IR/TransformerAttrs.h.inc"
#define GET_TYPEDEF_CLASSES
#include "kiln/Dialect/Transformer/IR/TransformerOpsTypes.h.inc"
#define GET_OP_CLASSES
#include "kiln/Dialect/Transformer/IR/TransformerOps.h.inc"

namespace kiln::transformer {

/// A stored weight's blocks: `elements` values in `bytes` bytes (f16: one
/// value in two bytes; q8_0: 32 values in 34 bytes; q4_k: 256 in 144).
struct EncodingBlock {
  int64_t elements, bytes;
};
EncodingBlock getEncodingBlock(WeightEncoding encoding);

/// The encoding of a weight type
/// (`tensor<... x f32, #transformer.encoding<...>>`), or nothing.
std::optional<WeightEncoding> getWeightEncoding(mlir::Type type);

/// The bytes an encoded weight type is stored in, row by row:
/// `tensor<rows x row_bytes x i8>` for a [rows, cols] weight.
mlir::RankedTensorType getWeightStorageType(mlir::RankedTensorType type);

/// The same type without its encoding (what a dequantized weight is).
mlir::RankedTensorType dropEncoding(mlir::RankedTensorType type);

} // namespace kiln::transformer

#endif // KILN_DIALECT_TRANSFORMER_IR_TRANSFORMER_H
