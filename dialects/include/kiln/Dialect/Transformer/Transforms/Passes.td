//===- Passes.td - Transformer dialect passes --------------*- tablegen -*-===//
#ifndef KILN_TRANSFORMER_PASSES
#define KILN_TRANSFORMER_PASSES

include "mlir/Pass/PassBase.td"

def TransformerKVCache : Pass<"transformer-kv-cache", "mlir::ModuleOp"> {
  let summary = "Derive prefill and decode entry points over a KV cache from the whole-sequence form";
  let description = [{
    Starts from the whole-sequence (training) form `func.func @forward(%tokens)
    -> logits`, in which every causal self-attention sees the keys and values
    of all positions of the sequence, and derives the incremental form:

    * `@prefill(%tokens: tensor<Bx?xi32>, %pos: index, %cache) -> (logits of
      the last position, %cache)` and
    * `@decode(%token: tensor<Bx1xi32>, %pos: index, %cache) -> (logits,
      %cache)`.

    In both, the `l`-th causal self-attention appends its new keys and values
    to layer `l` of a `!transformer.kv_cache` at `%pos` and attends over the
    cached prefix `[0, %pos + seq)` with query offset `%pos`; positional
    encodings get the offset `%pos`. Only the last position's logits are
    computed: the slice is moved up through position-wise ops (norms,
    linears, residual adds, feed-forward) until it reaches an op that mixes
    positions. `@forward` is kept for scoring. The cache capacity comes from
    the module's `transformer.context_length` attribute unless `capacity` is
    given.
  }];
  let dependentDialects = ["::mlir::tensor::TensorDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::func::FuncDialect"];
  let options = [
    Option<"entry", "entry", "std::string", /*default=*/"\"forward\"",
           "Name of the whole-sequence function to start from">,
    Option<"capacity", "capacity", "int64_t", /*default=*/"0",
           "KV cache capacity in positions (0: the module's transformer.context_length)">,
    Option<"sourceCapacity", "source-capacity", "int64_t", /*default=*/"0",
           "Encoder-decoder: source positions (0: the module's transformer.source_length)">,
    Option<"hoistCross", "hoist-cross", "bool", /*default=*/"true",
           "Encoder-decoder: compute cross-attention keys/values once in @encode">
  ];
}

#endif // KILN_TRANSFORMER_PASSES
