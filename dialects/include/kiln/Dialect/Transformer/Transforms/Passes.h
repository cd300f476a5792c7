//===- Passes.h - Transformer dialect passes --------------------*- C++ -*-===//
#ifndef KILN_DIALECT_TRANSFORMER_TRANSFORMS_PASSES_H
#define KILN_DIALECT_TRANSFORMER_TRANSFORMS_PASSES_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace kiln::transformer {

/// Attribute names shared by the passes and the importer.
/// Module: the context length (KV cache capacity) of the model.
inline constexpr llvm::StringLiteral kContextLengthAttr =
    "transformer.context_length";
/// Module: encoder-decoder models' source capacity (most source positions).
inline constexpr llvm::StringLiteral kSourceLengthAttr =
    "transformer.source_length";
/// Function: marks an entry point the runtime calls, with its role.
inline constexpr llvm::StringLiteral kEntryAttr = "transformer.entry";
/// Function result: the result is the updated value of the given argument
/// (the KV cache), so lowering writes it in place.
inline constexpr llvm::StringLiteral kTiedArgAttr = "transformer.tied_to_arg";

#define GEN_PASS_DECL
#include "kiln/Dialect/Transformer/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "kiln/Dialect/Transformer/Transforms/Passes.h.inc"

} // namespace kiln::transformer

#endif // KILN_DIALECT_TRANSFORMER_TRANSFORMS_PASSES_H
