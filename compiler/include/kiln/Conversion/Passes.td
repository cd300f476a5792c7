//===- Passes.td - Kiln conversion passes ------------------*- tablegen -*-===//
#ifndef KILN_CONVERSION_PASSES
#define KILN_CONVERSION_PASSES

include "mlir/Pass/PassBase.td"

def ConvertTransformerToLinalg
    : Pass<"convert-transformer-to-linalg", "mlir::ModuleOp"> {
  let summary = "Lower the transformer dialect to linalg, tensor, arith and math";
  let description = [{
    Every transformer op becomes `linalg.generic` ops (and tensor reshapes,
    slices) on tensors: matrix products with the weight's `[out, in]`
    layout, two-pass norms, RoPE reading one cos/sin table per op, and the
    KV cache as a dense
    `[layers, 2, batch, capacity, kv_width]` tensor updated with
    `tensor.insert_slice`. `transformer.weight` ops read the runtime's weight
    buffer: functions that use weights get two leading arguments, the model
    file as `memref<?xi8>` and the byte offsets of each weight as
    `memref<?xindex>`, and each weight becomes a `memref.view` of it.
    Attention is the exception: one fused kernel per op (`scf.forall` over
    batch, head and query rows; keys in blocks of 16 with an online softmax,
    vectors of head_dim lanes; a GQA group per iteration when there are at
    least 4 kv heads), which never builds the score matrix.
  }];
  let dependentDialects = [
    "::mlir::linalg::LinalgDialect", "::mlir::tensor::TensorDialect",
    "::mlir::arith::ArithDialect", "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect", "::mlir::scf::SCFDialect",
    "::mlir::bufferization::BufferizationDialect", "::mlir::func::FuncDialect",
    "::mlir::vector::VectorDialect"
  ];
}

#endif // KILN_CONVERSION_PASSES
