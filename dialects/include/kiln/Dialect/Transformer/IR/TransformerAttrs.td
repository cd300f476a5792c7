//===- TransformerAttrs.td - Transformer enums and attrs ---*- tablegen -*-===//
#ifndef KILN_TRANSFORMER_ATTRS
#define KILN_TRANSFORMER_ATTRS

include "kiln/Dialect/Transformer/IR/TransformerBase.td"
include "mlir/IR/EnumAttr.td"

def Transformer_Activation : I32EnumAttr<"Activation", "feed-forward activation", [
    I32EnumAttrCase<"relu", 0>,
    I32EnumAttrCase<"gelu", 1>,
    I32EnumAttrCase<"gelu_tanh", 2>,
    I32EnumAttrCase<"silu", 3>,
    I32EnumAttrCase<"swiglu", 4>,
    I32EnumAttrCase<"geglu", 5>]> {
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

#endif // KILN_TRANSFORMER_ATTRS
