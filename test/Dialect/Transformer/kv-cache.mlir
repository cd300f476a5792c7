// RUN: kiln-opt %s -split-input-file -transformer-kv-cache -verify-diagnostics | FileCheck %s

// Tests the incremental form derived from a one-layer GPT-2 style forward:
// prefill and decode append K/V to layer 0 of a cache at %pos, attend over
// the prefix [0, %pos + seq) with query offset %pos, shift the learned
// positions by %pos, and compute the logits of the last position only.
module attributes {transformer.context_length = 16 : i64} {
  func.func @forward(%ids: tensor<1x?xi32>) -> tensor<1x?x32xf32> {
    %wte = transformer.weight "wte" [0] : tensor<32x8xf32>
    %wpe = transformer.weight "wpe" [1] : tensor<16x8xf32>
    %g = transformer.weight "g" [2] : tensor<8xf32>
    %b = transformer.weight "b" [3] : tensor<8xf32>
    %wq = transformer.weight "q" [4] : tensor<8x8xf32>
    %x = transformer.embedding %ids, %wte : (tensor<1x?xi32>, tensor<32x8xf32>) -> tensor<1x?x8xf32>
    %p = transformer.position_embedding %x, %wpe : (tensor<1x?x8xf32>, tensor<16x8xf32>) -> tensor<1x?x8xf32>
    %n = transformer.layer_norm %p, %g, %b {epsilon = 1.0e-5 : f32} : (tensor<1x?x8xf32>, tensor<8xf32>, tensor<8xf32>) -> tensor<1x?x8xf32>
    %q = transformer.linear %n, %wq : (tensor<1x?x8xf32>, tensor<8x8xf32>) -> tensor<1x?x8xf32>
    %a = transformer.attention causal %q, %q, %q {num_heads = 2 : i64, num_kv_heads = 2 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : (tensor<1x?x8xf32>, tensor<1x?x8xf32>, tensor<1x?x8xf32>) -> tensor<1x?x8xf32>
    %r = transformer.add %p, %a : tensor<1x?x8xf32>
    %f = transformer.layer_norm %r, %g, %b {epsilon = 1.0e-5 : f32} : (tensor<1x?x8xf32>, tensor<8xf32>, tensor<8xf32>) -> tensor<1x?x8xf32>
    %logits = transformer.linear %f, %wte : (tensor<1x?x8xf32>, tensor<32x8xf32>) -> tensor<1x?x32xf32>
    return %logits : tensor<1x?x32xf32>
  }
}
// The whole-sequence form is kept for scoring.
// CHECK-LABEL: func.func @forward(
// CHECK-SAME: attributes {transformer.entry = "forward"}
// CHECK: transformer.attention causal %{{.*}}, %{{.*}}, %{{.*}} {

// CHECK-LABEL: func.func @decode(
// CHECK-SAME: %[[IDS:.*]]: tensor<1x1xi32>, %[[POS:.*]]: index, %[[CACHE:.*]]: !transformer.kv_cache<layers = 1, batch = 1, kv_heads = 2, head_dim = 4, capacity = 16, element_type = f32>)
// CHECK-SAME: -> (tensor<1x32xf32>, !transformer.kv_cache<{{.*}}> {transformer.tied_to_arg = 2 : i64})
// CHECK-SAME: transformer.entry = "decode"
// CHECK: %[[C1:.*]] = arith.constant 1 : index
// CHECK: %[[END:.*]] = arith.addi %[[POS]], %[[C1]]
// CHECK: transformer.position_embedding %{{.*}}, %{{.*}} offset %[[POS]] : (tensor<1x1x8xf32>
// CHECK: %[[Q:.*]] = transformer.linear {{.*}} -> tensor<1x1x8xf32>
// CHECK: %[[NEW:.*]] = transformer.kv_cache_append %[[CACHE]][0], %[[Q]], %[[Q]] at %[[POS]]
// CHECK: %[[K:.*]], %[[V:.*]] = transformer.kv_cache_read %[[NEW]][0] length %[[END]] {{.*}} -> tensor<1x?x8xf32>, tensor<1x?x8xf32>
// CHECK: transformer.attention causal %[[Q]], %[[K]], %[[V]] offset %[[POS]]
// CHECK: %[[LOGITS:.*]] = transformer.linear {{.*}} -> tensor<1x1x32xf32>
// CHECK: %[[FLAT:.*]] = tensor.collapse_shape %[[LOGITS]] {{\[}}[0, 1], [2]]
// CHECK: return %[[FLAT]], %[[NEW]]

// In prefill, only the last position goes through the final norm and the LM
// head: the slice moved above the position-wise ops (norm, residual add) up
// to the ops that mix or depend on positions (attention, position embedding).
// CHECK-LABEL: func.func @prefill(
// CHECK-SAME: %[[IDS:.*]]: tensor<1x?xi32>, %[[POS:.*]]: index, %[[CACHE:.*]]: !transformer.kv_cache
// CHECK: %[[LEN:.*]] = tensor.dim %[[IDS]]
// CHECK: %[[END:.*]] = arith.addi %[[POS]], %[[LEN]]
// CHECK: %[[PE:.*]] = transformer.position_embedding %{{.*}}, %{{.*}} offset %[[POS]]
// CHECK: %[[NEW:.*]] = transformer.kv_cache_append %[[CACHE]][0]
// CHECK: %[[K:.*]], %[[V:.*]] = transformer.kv_cache_read %[[NEW]][0] length %[[END]]
// CHECK: %[[ATT:.*]] = transformer.attention causal {{.*}} offset %[[POS]] {{.*}} -> tensor<1x?x8xf32>
// CHECK: %[[LAST:.*]] = arith.subi %[[LEN]], %{{.*}}
// CHECK-DAG: tensor.extract_slice %[[ATT]][0, %[[LAST]], 0] [1, 1, 8] [1, 1, 1] : tensor<1x?x8xf32> to tensor<1x1x8xf32>
// CHECK-DAG: tensor.extract_slice %[[PE]][0, %[[LAST]], 0] [1, 1, 8] [1, 1, 1] : tensor<1x?x8xf32> to tensor<1x1x8xf32>
// CHECK: transformer.layer_norm {{.*}} -> tensor<1x1x8xf32>
// CHECK: transformer.linear {{.*}} -> tensor<1x1x32xf32>
// CHECK-NOT: transformer.linear
// CHECK: return

// -----

// Tests that each causal self-attention becomes its own cache layer, in
// program order, and that GQA caches num_kv_heads * head_dim per position.
module attributes {transformer.context_length = 64 : i64} {
  func.func @forward(%x0: tensor<1x?xi32>) -> tensor<1x?x16xf32> {
    %e = transformer.weight "e" [0] : tensor<16x16xf32>
    %wk = transformer.weight "k" [1] : tensor<8x16xf32>
    %x = transformer.embedding %x0, %e : (tensor<1x?xi32>, tensor<16x16xf32>) -> tensor<1x?x16xf32>
    %k = transformer.linear %x, %wk : (tensor<1x?x16xf32>, tensor<8x16xf32>) -> tensor<1x?x8xf32>
    %r = transformer.rope rotate_half %x {head_dim = 4 : i64, theta = 1.0e4 : f32} : (tensor<1x?x16xf32>) -> tensor<1x?x16xf32>
    %a = transformer.attention causal %r, %k, %k {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : (tensor<1x?x16xf32>, tensor<1x?x8xf32>, tensor<1x?x8xf32>) -> tensor<1x?x16xf32>
    %k2 = transformer.linear %a, %wk : (tensor<1x?x16xf32>, tensor<8x16xf32>) -> tensor<1x?x8xf32>
    %b = transformer.attention causal %a, %k2, %k2 {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : (tensor<1x?x16xf32>, tensor<1x?x8xf32>, tensor<1x?x8xf32>) -> tensor<1x?x16xf32>
    %l = transformer.linear %b, %e : (tensor<1x?x16xf32>, tensor<16x16xf32>) -> tensor<1x?x16xf32>
    return %l : tensor<1x?x16xf32>
  }
}
// CHECK-LABEL: func.func @decode(
// CHECK-SAME: !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 2, head_dim = 4, capacity = 64, element_type = f32>
// CHECK: transformer.rope rotate_half %{{.*}} offset %{{.*}}
// CHECK: %[[C0:.*]] = transformer.kv_cache_append %{{.*}}[0]
// CHECK: transformer.kv_cache_read %[[C0]][0]
// CHECK: %[[C1:.*]] = transformer.kv_cache_append %[[C0]][1]
// CHECK: transformer.kv_cache_read %[[C1]][1]
// CHECK: return %{{.*}}, %[[C1]]

// -----

// Tests that a forward function without causal self-attention is rejected.
module attributes {transformer.context_length = 16 : i64} {
  // expected-error@+1 {{transformer-kv-cache: no causal self-attention to cache}}
  func.func @forward(%ids: tensor<1x?xi32>) -> tensor<1x?x8xf32> {
    %e = transformer.weight "e" [0] : tensor<8x8xf32>
    %x = transformer.embedding %ids, %e : (tensor<1x?xi32>, tensor<8x8xf32>) -> tensor<1x?x8xf32>
    return %x : tensor<1x?x8xf32>
  }
}

// -----

// Tests that a missing capacity is reported.
module {
  func.func @forward(%ids: tensor<1x?xi32>) -> tensor<1x?x8xf32> {
    %e = transformer.weight "e" [0] : tensor<8x8xf32>
    %x = transformer.embedding %ids, %e : (tensor<1x?xi32>, tensor<8x8xf32>) -> tensor<1x?x8xf32>
    %a = transformer.attention causal %x, %x, %x {num_heads = 2 : i64, num_kv_heads = 2 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : (tensor<1x?x8xf32>, tensor<1x?x8xf32>, tensor<1x?x8xf32>) -> tensor<1x?x8xf32>
    return %a : tensor<1x?x8xf32>
  }
}
// expected-error@-8 {{transformer-kv-cache: no capacity option and no positive 'transformer.context_length' module attribute}}

// -----

// Tests that a missing entry function is reported.
// expected-error@+1 {{transformer-kv-cache: no function named 'forward'}}
module {
  func.func @other() {
    return
  }
}
