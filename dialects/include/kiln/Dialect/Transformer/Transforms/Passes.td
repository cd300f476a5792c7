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
    given; its element type is the attention's unless `element-type` asks
    for f16 or bf16 (the keys and values are then rounded as they are
    appended, and prefill's attention, which reads the cache, sees them
    rounded too, as decode does). An encoder-decoder model's cross state
    keeps the encoder's type.
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
           "Encoder-decoder: compute cross-attention keys/values once in @encode">,
    Option<"elementType", "element-type", "std::string", /*default=*/"\"\"",
           "Element type of the self-attention cache: f32, f16 or bf16 "
           "(default: the attention's own, f32)">
  ];
}

def TransformerOutlineLayers
    : Pass<"transformer-outline-layers", "mlir::ModuleOp"> {
  let summary = "Compile each distinct layer block once, called per layer";
  let description = [{
    Every function's body is cut where only the residual stream (one
    tensor) and the KV cache, of the values computed so far, are used later:
    between a layer's attention block and its feed-forward block, and
    between layers. Layer blocks (pieces with an attention or a
    feed-forward op) that are identical up to their weights and the
    cache layers they read and write become one private function (named
    after the first function and the block's kind: `@decode_attention`,
    `@decode_feed_forward`), which each piece's place calls with its own
    weights, values and layer indices (`kv_cache_append %c[%layer]`).
    Pieces found once stay where they are. The IR, and the time to compile
    it, then grow with the number of distinct block shapes, not with the
    depth. The blocks return their results; after bufferization,
    `kiln-results-to-out-params` has the callers allocate those buffers
    (so that deallocation frees each after its last use, and decode's stay
    on the stack).

    `scope=all` (the default) outlines every function's blocks, the
    prompts' (`@prefill`, `@forward`) too; `scope=decode` only the blocks
    over a fixed number of rows (`@decode`'s). TinyLlama-1.1B (22 layers,
    Q4_0) compiles in 5 s outlined instead of 89 s, and prefill is as fast
    as inline (base Llama: 1.01x at F32, 1.05x at Q4_0; medians of
    `bench/ab_compilers.py`). Before the callers allocated the results,
    outlined prefill measured 10-20% slower: every layer's temporaries
    stayed alive until @prefill returned.

    ```mlir
    // Before (@decode, two layers):
    %h1 = ... attention block of layer 0 (weights 2..5, cache layer 0) ...
    %h2 = ... attention block of layer 1 (weights 9..12, cache layer 1) ...
    // After:
    %c0 = arith.constant 0 : index
    %r0:2 = call @decode_attention(%h0, %w2, %w3, %w4, %w5, %cache, %pos, %c0)
    %c1 = arith.constant 1 : index
    %r1:2 = call @decode_attention(%r0#0, %w9, %w10, %w11, %w12, %r0#1, %pos, %c1)
    ```
  }];
  let options = [
    Option<"scope", "scope", "std::string", /*default=*/"\"all\"",
           "decode: blocks over a fixed number of rows (@decode's); all: "
           "also prompts' (@prefill, @forward)">
  ];
  let dependentDialects = ["::mlir::func::FuncDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::tensor::TensorDialect"];
}

#endif // KILN_TRANSFORMER_PASSES
