//===- TransformerBase.td - The transformer dialect --------*- tablegen -*-===//
#ifndef KILN_TRANSFORMER_BASE
#define KILN_TRANSFORMER_BASE

include "mlir/IR/OpBase.td"

def Transformer_Dialect : Dialect {
  let name = "transformer";
  let cppNamespace = "::kiln::transformer";
  let summary = "Transformer models at the level of the whiteboard drawing";
  let description = [{
    Ops with tensor semantics for the building blocks of transformer models:
    embeddings, positional encodings, norms, linear layers, attention
    (causal, bidirectional, cross), feed-forward blocks and the KV cache.
    Activations use the `[batch, seq, features]` layout; multi-head tensors
    keep heads packed in the feature dimension (`heads * head_dim`).
    Importers write models in the whole-sequence form; the
    `transformer-kv-cache` pass derives the incremental form.
  }];
  let useDefaultTypePrinterParser = 1;
  let useDefaultAttributePrinterParser = 1;
  let hasCanonicalizer = 0;
  let dependentDialects = ["::mlir::tensor::TensorDialect", "::mlir::arith::ArithDialect"];
}

class Transformer_Op<string mnemonic, list<Trait> traits = []>
    : Op<Transformer_Dialect, mnemonic, traits>;

#endif // KILN_TRANSFORMER_BASE
