// RUN: kiln-opt %s -split-input-file -transformer-kv-cache -verify-diagnostics | FileCheck %s
// RUN: kiln-opt %s -split-input-file -transformer-kv-cache=hoist-cross=false -verify-diagnostics | FileCheck %s --check-prefix=NOHOIST

// Tests hoisting on a one-layer encoder-decoder model (sinusoidal positions,
// a source padding mask, encoder self-attention, decoder self-attention and
// cross-attention): @encode runs the encoder and writes the cross-attention
// keys and values (projections of the encoder output) to the cross cache;
// @decode reads them from the cache and contains nothing of the encoder, in
// particular no projection of its output (weights "ck", "cv"); only the decoder's
// positions move with %pos.
module attributes {transformer.context_length = 16 : i64, transformer.source_length = 12 : i64} {
  func.func @forward(%src: tensor<1x?xi32>, %tgt: tensor<1x?xi32>) -> tensor<1x?x32xf32> {
    %emb = transformer.weight "emb" [0] : tensor<32x8xf32>
    %wq = transformer.weight "q" [1] : tensor<8x8xf32>
    %wk = transformer.weight "k" [2] : tensor<8x8xf32>
    %wv = transformer.weight "v" [3] : tensor<8x8xf32>
    %wck = transformer.weight "ck" [4] : tensor<8x8xf32>
    %wcv = transformer.weight "cv" [5] : tensor<8x8xf32>
    %mask = transformer.padding_mask %src {pad_id = 0 : i64} : (tensor<1x?xi32>) -> tensor<1x?xi1>
    %es = transformer.embedding %src, %emb {scale = 2.0 : f32} : (tensor<1x?xi32>, tensor<32x8xf32>) -> tensor<1x?x8xf32>
    %ep = transformer.sinusoidal_position %es : (tensor<1x?x8xf32>) -> tensor<1x?x8xf32>
    %eq = transformer.linear %ep, %wq : (tensor<1x?x8xf32>, tensor<8x8xf32>) -> tensor<1x?x8xf32>
    %ea = transformer.attention bidirectional %eq, %eq, %eq key_mask %mask {num_heads = 2 : i64, num_kv_heads = 2 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : (tensor<1x?x8xf32>, tensor<1x?x8xf32>, tensor<1x?x8xf32>, tensor<1x?xi1>) -> tensor<1x?x8xf32>
    %mem = transformer.add %ep, %ea : tensor<1x?x8xf32>
    %dt = transformer.embedding %tgt, %emb {scale = 2.0 : f32} : (tensor<1x?xi32>, tensor<32x8xf32>) -> tensor<1x?x8xf32>
    %dp = transformer.sinusoidal_position %dt : (tensor<1x?x8xf32>) -> tensor<1x?x8xf32>
    %dq = transformer.linear %dp, %wq : (tensor<1x?x8xf32>, tensor<8x8xf32>) -> tensor<1x?x8xf32>
    %dk = transformer.linear %dp, %wk : (tensor<1x?x8xf32>, tensor<8x8xf32>) -> tensor<1x?x8xf32>
    %dv = transformer.linear %dp, %wv : (tensor<1x?x8xf32>, tensor<8x8xf32>) -> tensor<1x?x8xf32>
    %sa = transformer.attention causal %dq, %dk, %dv {num_heads = 2 : i64, num_kv_heads = 2 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : (tensor<1x?x8xf32>, tensor<1x?x8xf32>, tensor<1x?x8xf32>) -> tensor<1x?x8xf32>
    %r = transformer.add %dp, %sa : tensor<1x?x8xf32>
    %ck = transformer.linear %mem, %wck : (tensor<1x?x8xf32>, tensor<8x8xf32>) -> tensor<1x?x8xf32>
    %cv = transformer.linear %mem, %wcv : (tensor<1x?x8xf32>, tensor<8x8xf32>) -> tensor<1x?x8xf32>
    %ca = transformer.attention cross %r, %ck, %cv key_mask %mask {num_heads = 2 : i64, num_kv_heads = 2 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : (tensor<1x?x8xf32>, tensor<1x?x8xf32>, tensor<1x?x8xf32>, tensor<1x?xi1>) -> tensor<1x?x8xf32>
    %out = transformer.add %r, %ca : tensor<1x?x8xf32>
    %logits = transformer.linear %out, %emb : (tensor<1x?x8xf32>, tensor<32x8xf32>) -> tensor<1x?x32xf32>
    return %logits : tensor<1x?x32xf32>
  }
}
// CHECK-LABEL: func.func @forward(
// CHECK-SAME: attributes {transformer.entry = "forward"}

// CHECK-LABEL: func.func @decode(
// CHECK-SAME: %[[TOK:[a-z0-9]+]]: tensor<1x1xi32>, %[[POS:[a-z0-9]+]]: index
// CHECK-SAME: %[[CACHE:[a-z0-9]+]]: !transformer.kv_cache<layers = 1, batch = 1, kv_heads = 2, head_dim = 4, capacity = 16, element_type = f32>
// CHECK-SAME: %[[SRC:[a-z0-9]+]]: tensor<1x?xi32>
// CHECK-SAME: %[[CROSS:[a-z0-9]+]]: !transformer.kv_cache<layers = 1, batch = 1, kv_heads = 2, head_dim = 4, capacity = 12, element_type = f32>
// CHECK-SAME: {transformer.tied_to_arg = 2 : i64}
// CHECK-SAME: attributes {transformer.entry = "decode"}
// CHECK-NOT: transformer.linear {{.*}}
// CHECK-NOT: transformer.attention bidirectional
// CHECK: %[[MASK:.*]] = transformer.padding_mask %[[SRC]] {pad_id = 0 : i64}
// CHECK: transformer.embedding %[[TOK]]
// CHECK: transformer.sinusoidal_position %{{.*}} offset %[[POS]]
// CHECK: transformer.kv_cache_append %[[CACHE]][0]
// CHECK: transformer.attention causal
// CHECK: %[[LEN:.*]] = tensor.dim %[[SRC]], %c1
// CHECK: %[[CK:.*]], %[[CV:.*]] = transformer.kv_cache_read %[[CROSS]][0] length %[[LEN]]
// CHECK: transformer.attention cross %{{.*}}, %[[CK]], %[[CV]] key_mask %[[MASK]]
// CHECK-NOT: transformer.weight "ck"
// CHECK-NOT: transformer.weight "cv"
// CHECK: return

// CHECK-LABEL: func.func @prefill(
// CHECK-SAME: attributes {transformer.entry = "prefill"}
// CHECK: transformer.kv_cache_read %{{.*}}[0] length

// The encoder once per input: cross-attention K/V written at position 0.
// CHECK-LABEL: func.func @encode(
// CHECK-SAME: %[[ESRC:[a-z0-9]+]]: tensor<1x?xi32>
// CHECK-SAME: %[[ECROSS:[a-z0-9]+]]: !transformer.kv_cache<layers = 1, batch = 1, kv_heads = 2, head_dim = 4, capacity = 12, element_type = f32>
// CHECK-SAME: {transformer.tied_to_arg = 1 : i64}
// CHECK-SAME: attributes {transformer.entry = "encode"}
// CHECK-NOT: transformer.linear {{.*}}loc("dec.
// CHECK: transformer.sinusoidal_position %{{.*}} :
// CHECK: transformer.attention bidirectional {{.*}} key_mask
// CHECK: %[[K:.*]] = transformer.linear %{{.*}}
// CHECK: %[[V:.*]] = transformer.linear %{{.*}}
// CHECK: %[[W:.*]] = transformer.kv_cache_append %[[ECROSS]][0], %[[K]], %[[V]] at %c0
// CHECK: return %[[W]]

// Without hoisting the cross cache holds the encoder output (one layer of
// width 8) and every decode step projects it.
// NOHOIST-LABEL: func.func @decode(
// NOHOIST-SAME: !transformer.kv_cache<layers = 1, batch = 1, kv_heads = 1, head_dim = 8, capacity = 12, element_type = f32>
// NOHOIST: %[[MEM:.*]], %{{.*}} = transformer.kv_cache_read %{{.*}}[0] length
// NOHOIST-NOT: transformer.attention bidirectional
// NOHOIST: transformer.linear %[[MEM]], %{{.*}}
// NOHOIST: transformer.linear %[[MEM]], %{{.*}}
// NOHOIST-LABEL: func.func @encode(
// NOHOIST: %[[OUT:.*]] = transformer.add
// NOHOIST-NOT: transformer.weight "ck"
// NOHOIST: transformer.kv_cache_append %{{.*}}[0], %[[OUT]], %[[OUT]] at %c0

// -----

// Tests that cross-attention keys computed from the target are refused.
module attributes {transformer.context_length = 16 : i64, transformer.source_length = 12 : i64} {
  func.func @forward(%src: tensor<1x?xi32>, %tgt: tensor<1x?xi32>) -> tensor<1x?x32xf32> {
    %emb = transformer.weight "emb" [0] : tensor<32x8xf32>
    %d = transformer.embedding %tgt, %emb : (tensor<1x?xi32>, tensor<32x8xf32>) -> tensor<1x?x8xf32>
    %sa = transformer.attention causal %d, %d, %d {num_heads = 2 : i64, num_kv_heads = 2 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : (tensor<1x?x8xf32>, tensor<1x?x8xf32>, tensor<1x?x8xf32>) -> tensor<1x?x8xf32>
    // expected-error@+1 {{has keys or values that depend on the target sequence}}
    %ca = transformer.attention cross %sa, %sa, %sa {num_heads = 2 : i64, num_kv_heads = 2 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : (tensor<1x?x8xf32>, tensor<1x?x8xf32>, tensor<1x?x8xf32>) -> tensor<1x?x8xf32>
    %logits = transformer.linear %ca, %emb : (tensor<1x?x8xf32>, tensor<32x8xf32>) -> tensor<1x?x32xf32>
    return %logits : tensor<1x?x32xf32>
  }
}

// -----

// Tests that an encoder-decoder model without a source capacity is refused.
module attributes {transformer.context_length = 16 : i64} {
  // expected-error@+1 {{transformer-kv-cache: no source-capacity option and no positive 'transformer.source_length' module attribute}}
  func.func @forward(%src: tensor<1x?xi32>, %tgt: tensor<1x?xi32>) -> tensor<1x?x32xf32> {
    %emb = transformer.weight "emb" [0] : tensor<32x8xf32>
    %e = transformer.embedding %src, %emb : (tensor<1x?xi32>, tensor<32x8xf32>) -> tensor<1x?x8xf32>
    %d = transformer.embedding %tgt, %emb : (tensor<1x?xi32>, tensor<32x8xf32>) -> tensor<1x?x8xf32>
    %sa = transformer.attention causal %d, %d, %d {num_heads = 2 : i64, num_kv_heads = 2 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : (tensor<1x?x8xf32>, tensor<1x?x8xf32>, tensor<1x?x8xf32>) -> tensor<1x?x8xf32>
    %ca = transformer.attention cross %sa, %e, %e {num_heads = 2 : i64, num_kv_heads = 2 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : (tensor<1x?x8xf32>, tensor<1x?x8xf32>, tensor<1x?x8xf32>) -> tensor<1x?x8xf32>
    %logits = transformer.linear %ca, %emb : (tensor<1x?x8xf32>, tensor<32x8xf32>) -> tensor<1x?x32xf32>
    return %logits : tensor<1x?x32xf32>
  }
}

// -----

// Tests that an encoder-decoder model without cross-attention is refused.
module attributes {transformer.context_length = 16 : i64, transformer.source_length = 12 : i64} {
  // expected-error@+1 {{an encoder-decoder model (two inputs) needs cross-attention}}
  func.func @forward(%src: tensor<1x?xi32>, %tgt: tensor<1x?xi32>) -> tensor<1x?x32xf32> {
    %emb = transformer.weight "emb" [0] : tensor<32x8xf32>
    %d = transformer.embedding %tgt, %emb : (tensor<1x?xi32>, tensor<32x8xf32>) -> tensor<1x?x8xf32>
    %sa = transformer.attention causal %d, %d, %d {num_heads = 2 : i64, num_kv_heads = 2 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : (tensor<1x?x8xf32>, tensor<1x?x8xf32>, tensor<1x?x8xf32>) -> tensor<1x?x8xf32>
    %logits = transformer.linear %sa, %emb : (tensor<1x?x8xf32>, tensor<32x8xf32>) -> tensor<1x?x32xf32>
    return %logits : tensor<1x?x32xf32>
  }
}
