//===- TransformerAttrs.td - Transformer enums and attrs ---*- tablegen -*-===//
#ifndef KILN_TRANSFORMER_ATTRS
#define KILN_TRANSFORMER_ATTRS

include "kiln/Dialect/Transformer/IR/TransformerBase.td"
include "mlir/IR/EnumAttr.td"
include "mlir/IR/TensorEncoding.td"

def Transformer_Activation : I32EnumAttr<"Activation", "feed-forward activation", [
    I32EnumAttrCase<"relu", 0>,
    I32EnumAttrCase<"gelu", 1>,
    I32EnumAttrCase<"gelu_tanh", 2>,
    I32EnumAttrCase<"silu", 3>,
    I32EnumAttrCase<"swiglu", 4>,
    I32EnumAttrCase<"geglu", 5>,
    I32EnumAttrCase<"geglu_tanh", 6>]> {
  let cppNamespace = "::kiln::transformer";
}

def Transformer_AttentionMode : I32EnumAttr<"AttentionMode", "attention mode", [
    I32EnumAttrCase<"causal", 0>,
    I32EnumAttrCase<"bidirectional", 1>,
    I32EnumAttrCase<"cross", 2>]> {
  let cppNamespace = "::kiln::transformer";
}

def Transformer_RopeStyle : I32EnumAttr<"RopeStyle", "rotary pairing", [
    I32EnumAttrCase<"rotate_half", 0>,
    I32EnumAttrCase<"interleaved", 1>]> {
  let cppNamespace = "::kiln::transformer";
}

// The values are the model file's DType values (runtime/schema/kiln.fbs).
def Transformer_WeightEncoding : I32EnumAttr<"WeightEncoding",
    "how a weight's elements are stored", [
    I32EnumAttrCase<"f16", 1>,
    I32EnumAttrCase<"bf16", 2>,
    I32EnumAttrCase<"q8_0", 6>,
    I32EnumAttrCase<"q4_0", 7>,
    I32EnumAttrCase<"q4_1", 8>,
    I32EnumAttrCase<"q5_0", 9>,
    I32EnumAttrCase<"q5_1", 10>,
    I32EnumAttrCase<"q4_k", 11>,
    I32EnumAttrCase<"q5_k", 12>,
    I32EnumAttrCase<"q6_k", 13>]> {
  let cppNamespace = "::kiln::transformer";
  let genSpecializedAttr = 0;
}

def Transformer_EncodingAttr : EnumAttr<Transformer_Dialect,
    Transformer_WeightEncoding, "encoding",
    [DeclareAttrInterfaceMethods<VerifiableTensorEncoding>]> {
  let summary = "a weight stored as published: half precision or GGUF blocks";
  let description = [{
    The encoding of a weight tensor: its values are f32 numbers (what every
    op computes with), stored as `f16`, `bf16`, or in one of GGUF's block
    formats (`q8_0`, `q4_0`, `q4_1`, `q5_0`, `q5_1`: blocks of 32 elements;
    `q4_k`, `q5_k`, `q6_k`: blocks of 256), byte for byte as the model file
    holds them. A row's blocks are contiguous, so the last dimension must be
    a whole number of blocks.

    ```mlir
    %w = transformer.weight "blk.0.attn_q.weight" [3]
        : tensor<64x64xf32, #transformer.encoding<q8_0>>
    ```

    The lowering reads the stored bytes (`tensor<rows x row_bytes x i8>`)
    and dequantizes where the value is used: the contraction kernels in
    registers, the embedding lookup only the rows it reads.
  }];
  let assemblyFormat = "`<` $value `>`";
}

#endif // KILN_TRANSFORMER_ATTRS
