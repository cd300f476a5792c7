//===- Passes.td - Kiln entry-point ABI passes -------------*- tablegen -*-===//
#ifndef KILN_ABI_PASSES
#define KILN_ABI_PASSES

include "mlir/Pass/PassBase.td"

def KilnEntryABI : Pass<"kiln-entry-abi", "mlir::ModuleOp"> {
  let summary = "Give entry points the runtime's C ABI";
  let description = [{
    Rewrites every function marked `transformer.entry` into
    destination-passing style over memrefs, as `kiln_runtime.h` declares:
    tensor arguments become memrefs read through `bufferization.to_tensor`,
    results become trailing output memrefs written with
    `bufferization.materialize_in_destination` (a result tied to an argument,
    the KV cache, is written back into that argument's buffer), and the
    function gets `llvm.emit_c_interface`. Also emits the `kiln_model`
    record (ABI version, weight count, cache shape, vocabulary, model path).
  }];
  let dependentDialects = [
    "::mlir::memref::MemRefDialect",
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::LLVM::LLVMDialect", "::mlir::func::FuncDialect"
  ];
}

def KilnWeightBuffers : Pass<"kiln-weight-buffers", "mlir::ModuleOp"> {
  let summary = "Read weights from the runtime's buffers";
  let description = [{
    Every function that reads weights gets two leading arguments, the model
    file's bytes as `memref<?xi8>` (mapped by the runtime) and the byte
    offsets of the weights as `memref<?xindex>`, and each
    `transformer.weight` becomes a `memref.view` of the bytes at its offset,
    read as a tensor (`restrict`, not writable). Result attributes that name
    an argument (`transformer.tied_to_arg`) follow the shift.

    ```mlir
    // Before:
    func.func @decode(%tok: tensor<1x1xi32>) -> ... {
      %w = transformer.weight "h.0.attn.q.weight" [3] : tensor<64x64xf32>
    // After:
    func.func @decode(%bytes: memref<?xi8> {transformer.weights},
                      %offsets: memref<?xindex> {transformer.weight_offsets},
                      %tok: tensor<1x1xi32>) -> ... {
      %c3 = arith.constant 3 : index
      %off = memref.load %offsets[%c3] : memref<?xindex>
      %v = memref.view %bytes[%off][] : memref<?xi8> to memref<64x64xf32>
      %w = bufferization.to_tensor %v restrict : memref<64x64xf32> to tensor<64x64xf32>
    ```
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::memref::MemRefDialect",
    "::mlir::bufferization::BufferizationDialect"
  ];
}

#endif // KILN_ABI_PASSES
