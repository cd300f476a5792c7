//===- TypeRefinement.cpp - Re-infer result types after a change ----------===//

#include "kiln/Dialect/Transformer/Transforms/TypeRefinement.h"

#include "mlir/Interfaces/InferTypeOpInterface.h"

using namespace mlir;

LogicalResult kiln::transformer::refineResultTypes(Operation *op) {
  if (auto infer = dyn_cast<InferTypeOpInterface>(op)) {
    SmallVector<Type> types;
    if (failed(infer.inferReturnTypes(
            op->getContext(), op->getLoc(), op->getOperands(),
            op->getAttrDictionary(), op->getPropertiesStorage(),
            op->getRegions(), types)))
      return failure();
    for (auto [result, type] : llvm::zip(op->getResults(), types))
      result.setType(type);
    return success();
  }
  if (op->hasTrait<OpTrait::SameOperandsAndResultType>() &&
      op->getNumOperands() > 0) {
    for (Value result : op->getResults())
      result.setType(op->getOperand(0).getType());
  }
  return success();
}

LogicalResult kiln::transformer::refineFunctionTypes(func::FuncOp func) {
  WalkResult walk = func.walk([](Operation *op) {
    return failed(refineResultTypes(op)) ? WalkResult::interrupt()
                                         : WalkResult::advance();
  });
  if (walk.wasInterrupted())
    return failure();
  auto ret = cast<func::ReturnOp>(func.getBody().back().getTerminator());
  func.setType(FunctionType::get(func.getContext(),
                                 func.getBody().getArgumentTypes(),
                                 ret.getOperandTypes()));
  return success();
}
