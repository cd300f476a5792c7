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
#include "kiln/Dialect/Transformer/IR/TransformerOpsDialect.h.inc"
#define GET_TYPEDEF_CLASSES
#include "kiln/Dialect/Transformer/IR/TransformerOpsTypes.h.inc"
#define GET_OP_CLASSES
#include "kiln/Dialect/Transformer/IR/TransformerOps.h.inc"

#endif // KILN_DIALECT_TRANSFORMER_IR_TRANSFORMER_H
