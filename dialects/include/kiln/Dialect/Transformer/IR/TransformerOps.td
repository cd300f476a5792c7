//===- TransformerOps.td - Transformer dialect ops ---------*- tablegen -*-===//
#ifndef KILN_TRANSFORMER_OPS
#define KILN_TRANSFORMER_OPS

include "kiln/Dialect/Transformer/IR/TransformerBase.td"
include "kiln/Dialect/Transformer/IR/TransformerAttrs.td"
include "kiln/Dialect/Transformer/IR/TransformerTypes.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

/// Marks ops that compute each position of the sequence from the same
/// position of their sequence-shaped operands only (no mixing across
/// positions). Passes may move a slice of the sequence through such ops.
def PositionWise : NativeOpTrait<"PositionWise"> {
  let cppNamespace = "::kiln::transformer::OpTrait";
}

def Transformer_FloatTensor : RankedTensorOf<[AnyFloat]>;
def Transformer_IdTensor : RankedTensorOf<[I32, I64]>;

//===----------------------------------------------------------------------===//
// Weights and embeddings
//===----------------------------------------------------------------------===//

def Transformer_WeightOp : Transformer_Op<"weight", [Pure]> {
  let summary = "a weight of the model file";
  let description = [{
    Names the weight at position `index` of the model file's weight table.
    Weights are data, not code: the lowering reads them from the buffer the
    runtime passes to the entry points (the mmap'd model file), so the IR
    stays small and compile time does not grow with the weights.

    ```mlir
    %w = transformer.weight "h.0.attn.q.weight" [3] : tensor<64x64xf32>
    ```
  }];
  let arguments = (ins StrAttr:$name, I64Attr:$index);
  let results = (outs RankedTensorOf<[AnyFloat, AnyInteger]>:$result);
  let assemblyFormat = "$name `[` $index `]` attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def Transformer_EmbeddingOp : Transformer_Op<"embedding",
    [Pure, PositionWise, InferTypeOpAdaptor]> {
  let summary = "token embedding lookup";
  let description = [{
    `result[b, s, :] = scale * table[ids[b, s], :]`. Ids outside
    `[0, vocab)` are clamped into range by the lowering (the runtime
    validates ids first). `scale` (1 when absent) is `sqrt(d_model)` in
    "Attention Is All You Need".

    ```mlir
    %x = transformer.embedding %ids, %table
        : (tensor<1x?xi32>, tensor<256x64xf32>) -> tensor<1x?x64xf32>
    %y = transformer.embedding %ids, %table {scale = 8.0 : f32}
        : (tensor<1x?xi32>, tensor<256x64xf32>) -> tensor<1x?x64xf32>
    ```
  }];
  let arguments = (ins Transformer_IdTensor:$ids, Transformer_FloatTensor:$table,
                       DefaultValuedAttr<F32Attr, "1.0f">:$scale);
  let results = (outs Transformer_FloatTensor:$result);
  let assemblyFormat = [{
    $ids `,` $table attr-dict `:` functional-type(operands, results)
  }];
}

def Transformer_PositionEmbeddingOp : Transformer_Op<"position_embedding",
    [Pure, InferTypeOpAdaptor]> {
  let summary = "learned absolute position embedding";
  let description = [{
    `result[b, s, :] = x[b, s, :] + table[offset + s, :]`; `offset` (the
    absolute position of the first row, 0 when absent) is what the
    `transformer-kv-cache` pass sets for prefill and decode.

    ```mlir
    %y = transformer.position_embedding %x, %table offset %pos
        : (tensor<1x?x64xf32>, tensor<128x64xf32>, index) -> tensor<1x?x64xf32>
    ```
  }];
  let arguments = (ins Transformer_FloatTensor:$input, Transformer_FloatTensor:$table,
                       Optional<Index>:$offset);
  let results = (outs Transformer_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $table (`offset` $offset^)? attr-dict `:` functional-type(operands, results)
  }];
  let hasCanonicalizer = 1;
}

def Transformer_SinusoidalPositionOp : Transformer_Op<"sinusoidal_position",
    [Pure, InferTypeOpAdaptor]> {
  let summary = "sinusoidal absolute position encoding";
  let description = [{
    Adds the encoding of "Attention Is All You Need" for the absolute
    position `p = offset + s` of each row (`offset` is 0 when absent):
    `PE[p, 2i] = sin(p / base^(2i / dim))`,
    `PE[p, 2i + 1] = cos(p / base^(2i / dim))`, with `base` 10000 in the
    paper. Nothing is read from the model file; the lowering computes the
    angles in double precision.

    ```mlir
    %y = transformer.sinusoidal_position %x offset %pos {base = 1.0e4 : f32}
        : (tensor<1x?x64xf32>, index) -> tensor<1x?x64xf32>
    ```
  }];
  let arguments = (ins Transformer_FloatTensor:$input, Optional<Index>:$offset,
                       DefaultValuedAttr<F32Attr, "10000.0f">:$base);
  let results = (outs Transformer_FloatTensor:$result);
  let assemblyFormat = [{
    $input (`offset` $offset^)? attr-dict `:` functional-type(operands, results)
  }];
  let hasCanonicalizer = 1;
}

def Transformer_PaddingMaskOp : Transformer_Op<"padding_mask",
    [Pure, PositionWise, InferTypeOpAdaptor]> {
  let summary = "which positions of a sequence of ids are padding";
  let description = [{
    `result[b, s] = (ids[b, s] == pad_id)`: the key padding mask of
    attention (true = the key is ignored), as PyTorch's
    `src_key_padding_mask`.

    ```mlir
    %m = transformer.padding_mask %src {pad_id = 0 : i64}
        : (tensor<1x?xi32>) -> tensor<1x?xi1>
    ```
  }];
  let arguments = (ins Transformer_IdTensor:$ids, I64Attr:$pad_id);
  let results = (outs RankedTensorOf<[I1]>:$result);
  let assemblyFormat = [{
    $ids attr-dict `:` functional-type(operands, results)
  }];
}

def Transformer_RopeOp : Transformer_Op<"rope", [Pure, InferTypeOpAdaptor]> {
  let summary = "rotary position embedding";
  let description = [{
    Rotates each pair of features of every `head_dim`-wide head of `input`
    (`[batch, seq, heads * head_dim]`) by the angle
    `(offset + s) * theta^(-2i / head_dim)` for pair `i` in
    `[0, head_dim / 2)`. `rotate_half` pairs feature `i` with `i + head_dim/2`
    (Hugging Face layout); `interleaved` pairs `2i` with `2i + 1`.

    RoPE scaling is two optional attributes. `freq_factors` (`head_dim / 2`
    positive numbers) divides pair `i`'s frequency by factor `i`: Llama 3's
    `llama3` scaling, `linear` scaling (every factor the same) and YaRN's
    interpolation all take this form, as does GGUF's `rope_freqs.weight`.
    `attention_factor` (positive, default 1) multiplies the cosine and sine
    (YaRN's magnitude correction).

    ```mlir
    %q2 = transformer.rope rotate_half %q offset %pos {head_dim = 16 : i64, theta = 1.0e4 : f32}
        : (tensor<1x?x64xf32>, index) -> tensor<1x?x64xf32>
    %k2 = transformer.rope interleaved %k {head_dim = 8 : i64, theta = 5.0e5 : f32,
            freq_factors = array<f32: 1.0, 1.0, 2.5, 8.0>, attention_factor = 1.2 : f32}
        : (tensor<1x?x32xf32>) -> tensor<1x?x32xf32>
    ```
  }];
  let arguments = (ins Transformer_FloatTensor:$input, Optional<Index>:$offset,
                       I64Attr:$head_dim, F32Attr:$theta,
                       Transformer_RopeStyle:$style,
                       OptionalAttr<DenseF32ArrayAttr>:$freq_factors,
                       DefaultValuedAttr<F32Attr, "1.0f">:$attention_factor);
  let results = (outs Transformer_FloatTensor:$result);
  let assemblyFormat = [{
    $style $input (`offset` $offset^)? attr-dict `:` functional-type(operands, results)
  }];
  let hasCanonicalizer = 1;
}

//===----------------------------------------------------------------------===//
// Norms, linear layers, residuals
//===----------------------------------------------------------------------===//

def Transformer_LayerNormOp : Transformer_Op<"layer_norm",
    [Pure, PositionWise, InferTypeOpAdaptor]> {
  let summary = "layer normalization over the last dimension";
  let description = [{
    `(x - mean) / sqrt(var + epsilon) * gamma + beta`, with the biased
    variance over the last dimension.

    ```mlir
    %y = transformer.layer_norm %x, %g, %b {epsilon = 1.0e-5 : f32}
        : (tensor<1x?x64xf32>, tensor<64xf32>, tensor<64xf32>) -> tensor<1x?x64xf32>
    ```
  }];
  let arguments = (ins Transformer_FloatTensor:$input, Transformer_FloatTensor:$gamma,
                       Transformer_FloatTensor:$beta, F32Attr:$epsilon);
  let results = (outs Transformer_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $gamma `,` $beta attr-dict `:` functional-type(operands, results)
  }];
}

def Transformer_RMSNormOp : Transformer_Op<"rms_norm",
    [Pure, PositionWise, InferTypeOpAdaptor]> {
  let summary = "root-mean-square normalization over the last dimension";
  let description = [{
    `x / sqrt(mean(x^2) + epsilon) * gamma`, over the whole last dimension,
    or, with `group_size = G`, over each group of `G` consecutive features of
    it on its own (gamma is `[G]`): the per-head q/k norms of Qwen3 and
    Gemma 3 are `group_size = head_dim` on `[batch, seq, heads * head_dim]`.

    ```mlir
    %y = transformer.rms_norm %x, %g {epsilon = 1.0e-6 : f32}
        : (tensor<1x?x64xf32>, tensor<64xf32>) -> tensor<1x?x64xf32>
    %q = transformer.rms_norm %x, %h {epsilon = 1.0e-6 : f32, group_size = 16 : i64}
        : (tensor<1x?x64xf32>, tensor<16xf32>) -> tensor<1x?x64xf32>
    ```
  }];
  let arguments = (ins Transformer_FloatTensor:$input, Transformer_FloatTensor:$gamma,
                       F32Attr:$epsilon, OptionalAttr<I64Attr>:$group_size);
  let results = (outs Transformer_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $gamma attr-dict `:` functional-type(operands, results)
  }];
}

def Transformer_LinearOp : Transformer_Op<"linear",
    [Pure, PositionWise, InferTypeOpAdaptor]> {
  let summary = "fully connected layer: x W^T + b";
  let description = [{
    `weight` has PyTorch's `nn.Linear` layout `[out_features, in_features]`;
    `bias` (`[out_features]`) is optional. Also used for the LM head.

    ```mlir
    %y = transformer.linear %x, %w bias %b
        : (tensor<1x?x64xf32>, tensor<128x64xf32>, tensor<128xf32>) -> tensor<1x?x128xf32>
    ```
  }];
  let arguments = (ins Transformer_FloatTensor:$input, Transformer_FloatTensor:$weight,
                       Optional<Transformer_FloatTensor>:$bias);
  let results = (outs Transformer_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight (`bias` $bias^)? attr-dict `:` functional-type(operands, results)
  }];
}

def Transformer_AddOp : Transformer_Op<"add",
    [Pure, PositionWise, Commutative, SameOperandsAndResultType]> {
  let summary = "elementwise addition (residual connection)";
  let description = [{
    ```mlir
    %y = transformer.add %x, %r : tensor<1x?x64xf32>
    ```
  }];
  let arguments = (ins Transformer_FloatTensor:$lhs, Transformer_FloatTensor:$rhs);
  let results = (outs Transformer_FloatTensor:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` type($result)";
}

//===----------------------------------------------------------------------===//
// Attention and feed-forward
//===----------------------------------------------------------------------===//

def Transformer_AttentionOp : Transformer_Op<"attention",
    [Pure, AttrSizedOperandSegments, InferTypeOpAdaptor]> {
  let summary = "scaled dot-product multi-head attention";
  let description = [{
    `query` is `[batch, seq, num_heads * head_dim]`, `key` and `value` are
    `[batch, kv_seq, num_kv_heads * head_dim]`; query head `h` reads kv head
    `h / (num_heads / num_kv_heads)` (MHA, GQA and MQA). Scores are
    `scale * q . k`, softmax-normalized over keys, and weigh the values.

    In `causal` mode query row `s` sits at absolute position `offset + s`
    (`offset` is 0 when absent) and attends to key rows `t <= offset + s`:
    the others get -inf before the softmax. This is the whole-sequence
    (training) form when `offset` is absent and `kv_seq == seq`, and the
    incremental form over a KV cache otherwise.

    A causal attention with a `window` of `W` (sliding-window attention:
    Mistral, Gemma 3's local layers) sees only the last `W` positions: query
    position `p` attends to keys `p - W < t <= p`.

    `bidirectional` (encoder self-attention) and `cross` (decoder queries
    over the encoder's keys and values; `seq` and `kv_seq` are independent)
    attend to every key. The optional `key_mask` (`[batch, kv_seq]` of i1,
    as made by `transformer.padding_mask`) hides the keys where it is true,
    in every mode.

    ```mlir
    %o = transformer.attention causal %q, %k, %v
        {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 2.5e-1 : f32}
        : (tensor<1x?x64xf32>, tensor<1x?x32xf32>, tensor<1x?x32xf32>) -> tensor<1x?x64xf32>
    %w = transformer.attention causal %q, %k, %v offset %pos
        {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 2.5e-1 : f32,
         window = 4096 : i64}
        : (tensor<1x?x64xf32>, tensor<1x?x32xf32>, tensor<1x?x32xf32>, index) -> tensor<1x?x64xf32>
    %c = transformer.attention cross %q, %mk, %mv key_mask %m
        {num_heads = 4 : i64, num_kv_heads = 4 : i64, head_dim = 16 : i64, scale = 2.5e-1 : f32}
        : (tensor<1x?x64xf32>, tensor<1x?x64xf32>, tensor<1x?x64xf32>, tensor<1x?xi1>)
        -> tensor<1x?x64xf32>
    ```
  }];
  let arguments = (ins Transformer_FloatTensor:$query, Transformer_FloatTensor:$key,
                       Transformer_FloatTensor:$value,
                       Optional<RankedTensorOf<[I1]>>:$key_mask,
                       Optional<Index>:$offset,
                       Transformer_AttentionMode:$mode, I64Attr:$num_heads,
                       I64Attr:$num_kv_heads, I64Attr:$head_dim, F32Attr:$scale,
                       OptionalAttr<I64Attr>:$window);
  let results = (outs Transformer_FloatTensor:$result);
  let assemblyFormat = [{
    $mode $query `,` $key `,` $value (`key_mask` $key_mask^)? (`offset` $offset^)? attr-dict
    `:` functional-type(operands, results)
  }];
  let hasCanonicalizer = 1;
}

def Transformer_FeedForwardOp : Transformer_Op<"feed_forward",
    [Pure, PositionWise, AttrSizedOperandSegments, InferTypeOpAdaptor]> {
  let summary = "position-wise feed-forward block";
  let description = [{
    Ungated activations (`relu`, `gelu`, `gelu_tanh`, `silu`):
    `act(x W_up^T + b_up) W_down^T + b_down` (biases optional).
    Gated ones (`swiglu`, `geglu`, `geglu_tanh`):
    `(act(x W_gate^T) * (x W_up^T)) W_down^T` with `silu`, `gelu` or
    `gelu_tanh` (Gemma's). `gelu` is exact (erf); `gelu_tanh` is GPT-2's
    tanh approximation.

    ```mlir
    %y = transformer.feed_forward swiglu %x, up %wu, gate %wg, down %wd
        : (tensor<1x?x64xf32>, tensor<96x64xf32>, tensor<96x64xf32>, tensor<64x96xf32>)
        -> tensor<1x?x64xf32>
    ```
  }];
  let arguments = (ins Transformer_FloatTensor:$input, Transformer_FloatTensor:$w_up,
                       Optional<Transformer_FloatTensor>:$b_up,
                       Optional<Transformer_FloatTensor>:$w_gate,
                       Transformer_FloatTensor:$w_down,
                       Optional<Transformer_FloatTensor>:$b_down,
                       Transformer_Activation:$activation);
  let results = (outs Transformer_FloatTensor:$result);
  let assemblyFormat = [{
    $activation $input `,` `up` $w_up (`bias` $b_up^)? `,` (`gate` $w_gate^ `,`)?
    `down` $w_down (`bias` $b_down^)? attr-dict `:` functional-type(operands, results)
  }];
  let extraClassDeclaration = [{
    bool isGated() { return isGatedActivation(getActivation()); }
  }];
}

//===----------------------------------------------------------------------===//
// KV cache
//===----------------------------------------------------------------------===//

def Transformer_KVCacheAppendOp : Transformer_Op<"kv_cache_append",
    [Pure, AllTypesMatch<["cache", "result"]>]> {
  let summary = "write keys and values of new positions into a cache layer";
  let description = [{
    Returns `cache` with rows `position .. position + seq - 1` of layer
    `layer` replaced by `key` and `value` (`[batch, seq, kv_heads * head_dim]`).
    The rows have the cache's element type, or are f32 rounded to nearest
    even into a narrower cache (f16, bf16).
    The caller guarantees `position + seq <= capacity` (the runtime checks it).
    The layer is a constant, or an `index` value in a function that serves
    several layers (`transformer-outline-layers`).

    ```mlir
    %c1 = transformer.kv_cache_append %c0[0], %k, %v at %pos
        : !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 2, head_dim = 16, capacity = 128, element_type = f32>,
          tensor<1x1x32xf32>, tensor<1x1x32xf32>
    %c2 = transformer.kv_cache_append %c1[%layer], %k, %v at %pos : ...
    ```
  }];
  let arguments = (ins Transformer_KVCacheType:$cache,
                       Transformer_FloatTensor:$key, Transformer_FloatTensor:$value,
                       Index:$position, Optional<Index>:$dynamic_layer,
                       OptionalAttr<I64Attr>:$layer);
  let results = (outs Transformer_KVCacheType:$result);
  let assemblyFormat = [{
    $cache `[` custom<Layer>($dynamic_layer, $layer) `]` `,` $key `,` $value
    `at` $position attr-dict `:` type($cache) `,` type($key) `,` type($value)
  }];
  let builders = [
    OpBuilder<(ins "::mlir::Type":$result, "::mlir::Value":$cache,
                   "int64_t":$layer, "::mlir::Value":$key,
                   "::mlir::Value":$value, "::mlir::Value":$position), [{
      build($_builder, $_state, result, cache, key, value, position,
            /*dynamic_layer=*/::mlir::Value(),
            $_builder.getI64IntegerAttr(layer));
    }]>
  ];
  let extraClassDeclaration = [{
    /// The layer: the constant, or the dynamic index value.
    ::mlir::OpFoldResult getMixedLayer();
  }];
  let hasVerifier = 1;
}

def Transformer_KVCacheReadOp : Transformer_Op<"kv_cache_read", [Pure]> {
  let summary = "the cached keys and values of a layer's first positions";
  let description = [{
    Rows `0 .. length - 1` of layer `layer` (a constant or an `index`
    value), as `[batch, length, kv_heads * head_dim]` keys and values.

    ```mlir
    %k, %v = transformer.kv_cache_read %c1[0] length %len
        : !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 2, head_dim = 16, capacity = 128, element_type = f32>
        -> tensor<1x?x32xf32>, tensor<1x?x32xf32>
    ```
  }];
  let arguments = (ins Transformer_KVCacheType:$cache, Index:$length,
                       Optional<Index>:$dynamic_layer,
                       OptionalAttr<I64Attr>:$layer);
  let results = (outs Transformer_FloatTensor:$key, Transformer_FloatTensor:$value);
  let assemblyFormat = [{
    $cache `[` custom<Layer>($dynamic_layer, $layer) `]` `length` $length
    attr-dict `:` type($cache) `->` type($key) `,` type($value)
  }];
  let builders = [
    OpBuilder<(ins "::mlir::Type":$key, "::mlir::Type":$value,
                   "::mlir::Value":$cache, "int64_t":$layer,
                   "::mlir::Value":$length), [{
      build($_builder, $_state, key, value, cache, length,
            /*dynamic_layer=*/::mlir::Value(),
            $_builder.getI64IntegerAttr(layer));
    }]>
  ];
  let extraClassDeclaration = [{
    /// The layer: the constant, or the dynamic index value.
    ::mlir::OpFoldResult getMixedLayer();
  }];
  let hasVerifier = 1;
}

#endif // KILN_TRANSFORMER_OPS
