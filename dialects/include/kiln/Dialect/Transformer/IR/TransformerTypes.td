//===- TransformerTypes.td - Transformer types -------------*- tablegen -*-===//
#ifndef KILN_TRANSFORMER_TYPES
#define KILN_TRANSFORMER_TYPES

include "kiln/Dialect/Transformer/IR/TransformerBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/BuiltinTypeInterfaces.td"

def Transformer_KVCacheType : TypeDef<Transformer_Dialect, "KVCache"> {
  let mnemonic = "kv_cache";
  let summary = "the keys and values of every self-attention layer";
  let description = [{
    A value holding, for each of `layers` causal self-attention layers, the
    keys and values of up to `capacity` positions of `batch` sequences, each
    `kv_heads * head_dim` wide, stored as `element_type`: f32, or f16 or
    bf16 (half the memory and the attention's reads; appended f32 rows are
    rounded to nearest even, reads widen them back to f32 in the attention
    kernel). Appending returns a new cache value; lowering
    updates the buffer in place. The storage layout is decided in one place,
    the conversion to linalg (today a dense
    `[layers, 2, batch, capacity, kv_heads * head_dim]` tensor).

    ```mlir
    !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 2, head_dim = 16,
                          capacity = 128, element_type = f32>
    ```
  }];
  let parameters = (ins "int64_t":$layers, "int64_t":$batch,
                        "int64_t":$kv_heads, "int64_t":$head_dim,
                        "int64_t":$capacity, "::mlir::Type":$element_type);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// Width of one cached key (or value) row: kv_heads * head_dim.
    int64_t getWidth() const { return getKvHeads() * getHeadDim(); }
    /// The dense tensor type that stores this cache.
    ::mlir::RankedTensorType getStorageType() const;
  }];
}

#endif // KILN_TRANSFORMER_TYPES
