// RUN: kiln-opt %s -transformer-outline-layers=scope=decode -split-input-file | FileCheck %s --check-prefixes=CHECK,DECODE
// RUN: kiln-opt %s -transformer-outline-layers -split-input-file | FileCheck %s --check-prefixes=CHECK,ALL
// RUN: not kiln-opt %s -transformer-outline-layers=scope=some -split-input-file 2>&1 | FileCheck %s --check-prefix=BAD
// BAD: transformer-outline-layers: scope must be decode or all, not 'some'

!cache = !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 2, head_dim = 4, capacity = 16, element_type = f32>

// Tests that two layers identical up to their weights and cache layer
// become one function called per layer: weights and values as arguments,
// the cache layer as an index (constants 0 and 1 at the calls), the
// cache and the residual stream returned; the final norm, found once, stays
// inline.
// CHECK-LABEL: func.func private @decode_attention
// CHECK-SAME: (%[[H:.*]]: tensor<1x1x8xf32>, %[[G:.*]]: tensor<8xf32>, %[[W:.*]]: tensor<8x8xf32>, %[[C:.*]]: !transformer.kv_cache<{{.*}}>, %[[POS:.*]]: index, %[[LEN:.*]]: index, %[[L:.*]]: index)
// CHECK-SAME: -> (!transformer.kv_cache<{{.*}}>, tensor<1x1x8xf32>)
// CHECK-NOT: transformer.weight
// CHECK: %[[N:.*]] = transformer.rms_norm %[[H]], %[[G]]
// CHECK: %[[Q:.*]] = transformer.linear %[[N]], %[[W]]
// CHECK: %[[C1:.*]] = transformer.kv_cache_append %[[C]][%[[L]]], %[[Q]], %[[Q]] at %[[POS]]
// CHECK: transformer.kv_cache_read %[[C1]][%[[L]]] length %[[LEN]]
// CHECK: %[[A:.*]] = transformer.attention
// CHECK: %[[R:.*]] = transformer.add %[[H]], %[[A]]
// CHECK: return %[[C1]], %[[R]]
// CHECK-LABEL: func.func @decode
// CHECK-SAME: (%[[X:.*]]: tensor<1x1x8xf32>, %[[P:.*]]: index, %[[CACHE:.*]]: !transformer.kv_cache
// CHECK: %[[W0:.*]] = transformer.weight "l0.w"[1]
// CHECK: %[[L0:.*]] = arith.constant 0 : index
// CHECK: %[[R0:.*]]:2 = call @decode_attention(%[[X]], %{{.*}}, %[[W0]], %[[CACHE]], %[[P]], %{{.*}}, %[[L0]])
// CHECK: %[[W1:.*]] = transformer.weight "l1.w"[3]
// CHECK: %[[L1:.*]] = arith.constant 1 : index
// CHECK: %[[R1:.*]]:2 = call @decode_attention(%[[R0]]#1, %{{.*}}, %[[W1]], %[[R0]]#0, %[[P]], %{{.*}}, %[[L1]])
// CHECK: %[[O:.*]] = transformer.rms_norm %[[R1]]#1
// CHECK: return %[[O]], %[[R1]]#0
func.func @decode(%x: tensor<1x1x8xf32>, %pos: index, %c: !cache) -> (tensor<1x1x8xf32>, !cache) {
  %one = arith.constant 1 : index
  %len = arith.addi %pos, %one : index
  %g0 = transformer.weight "l0.norm"[0] : tensor<8xf32>
  %w0 = transformer.weight "l0.w"[1] : tensor<8x8xf32>
  %n0 = transformer.rms_norm %x, %g0 {epsilon = 1.0e-05 : f32} : (tensor<1x1x8xf32>, tensor<8xf32>) -> tensor<1x1x8xf32>
  %q0 = transformer.linear %n0, %w0 : (tensor<1x1x8xf32>, tensor<8x8xf32>) -> tensor<1x1x8xf32>
  %c0 = transformer.kv_cache_append %c[0], %q0, %q0 at %pos : !cache, tensor<1x1x8xf32>, tensor<1x1x8xf32>
  %k0, %v0 = transformer.kv_cache_read %c0[0] length %len : !cache -> tensor<1x?x8xf32>, tensor<1x?x8xf32>
  %a0 = transformer.attention causal %q0, %k0, %v0 offset %pos {num_heads = 2 : i64, num_kv_heads = 2 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : (tensor<1x1x8xf32>, tensor<1x?x8xf32>, tensor<1x?x8xf32>, index) -> tensor<1x1x8xf32>
  %h1 = transformer.add %x, %a0 : tensor<1x1x8xf32>
  %g1 = transformer.weight "l1.norm"[2] : tensor<8xf32>
  %w1 = transformer.weight "l1.w"[3] : tensor<8x8xf32>
  %n1 = transformer.rms_norm %h1, %g1 {epsilon = 1.0e-05 : f32} : (tensor<1x1x8xf32>, tensor<8xf32>) -> tensor<1x1x8xf32>
  %q1 = transformer.linear %n1, %w1 : (tensor<1x1x8xf32>, tensor<8x8xf32>) -> tensor<1x1x8xf32>
  %c1 = transformer.kv_cache_append %c0[1], %q1, %q1 at %pos : !cache, tensor<1x1x8xf32>, tensor<1x1x8xf32>
  %k1, %v1 = transformer.kv_cache_read %c1[1] length %len : !cache -> tensor<1x?x8xf32>, tensor<1x?x8xf32>
  %a1 = transformer.attention causal %q1, %k1, %v1 offset %pos {num_heads = 2 : i64, num_kv_heads = 2 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : (tensor<1x1x8xf32>, tensor<1x?x8xf32>, tensor<1x?x8xf32>, index) -> tensor<1x1x8xf32>
  %h2 = transformer.add %h1, %a1 : tensor<1x1x8xf32>
  %gf = transformer.weight "norm"[4] : tensor<8xf32>
  %o = transformer.rms_norm %h2, %gf {epsilon = 1.0e-05 : f32} : (tensor<1x1x8xf32>, tensor<8xf32>) -> tensor<1x1x8xf32>
  return %o, %c1 : tensor<1x1x8xf32>, !cache
}

// -----

// Tests that blocks over a prompt's rows (a dynamic shape) are outlined by
// default (scope=all), returning their result, and stay inline with
// scope=decode; and that pieces that are not layer blocks (no attention,
// no feed-forward) are left alone, even when they repeat.
// DECODE-LABEL: func.func @forward
// DECODE-NOT: call
// DECODE: return
// ALL-LABEL: func.func private @forward_feed_forward
// ALL-SAME: (%[[H:.*]]: tensor<1x?x8xf32>, %[[G:.*]]: tensor<8xf32>, %[[U:.*]]: tensor<16x8xf32>, %[[D:.*]]: tensor<8x16xf32>) -> tensor<1x?x8xf32>
// ALL: return
// ALL-LABEL: func.func @forward
// ALL: call @forward_feed_forward
// ALL: call @forward_feed_forward
// ALL-NOT: call
// ALL: transformer.linear
// ALL: return
func.func @forward(%x: tensor<1x?x8xf32>) -> tensor<1x?x8xf32> {
  %g0 = transformer.weight "l0.norm"[0] : tensor<8xf32>
  %u0 = transformer.weight "l0.up"[1] : tensor<16x8xf32>
  %d0 = transformer.weight "l0.down"[5] : tensor<8x16xf32>
  %n0 = transformer.rms_norm %x, %g0 {epsilon = 1.0e-05 : f32} : (tensor<1x?x8xf32>, tensor<8xf32>) -> tensor<1x?x8xf32>
  %y0 = transformer.feed_forward relu %n0, up %u0, down %d0 : (tensor<1x?x8xf32>, tensor<16x8xf32>, tensor<8x16xf32>) -> tensor<1x?x8xf32>
  %h1 = transformer.add %x, %y0 : tensor<1x?x8xf32>
  %g1 = transformer.weight "l1.norm"[2] : tensor<8xf32>
  %u1 = transformer.weight "l1.up"[3] : tensor<16x8xf32>
  %d1 = transformer.weight "l1.down"[6] : tensor<8x16xf32>
  %n1 = transformer.rms_norm %h1, %g1 {epsilon = 1.0e-05 : f32} : (tensor<1x?x8xf32>, tensor<8xf32>) -> tensor<1x?x8xf32>
  %y1 = transformer.feed_forward relu %n1, up %u1, down %d1 : (tensor<1x?x8xf32>, tensor<16x8xf32>, tensor<8x16xf32>) -> tensor<1x?x8xf32>
  %h2 = transformer.add %h1, %y1 : tensor<1x?x8xf32>
  %wo = transformer.weight "out"[4] : tensor<8x8xf32>
  %o = transformer.linear %h2, %wo : (tensor<1x?x8xf32>, tensor<8x8xf32>) -> tensor<1x?x8xf32>
  %h3 = transformer.add %h2, %o : tensor<1x?x8xf32>
  %o2 = transformer.linear %h3, %wo : (tensor<1x?x8xf32>, tensor<8x8xf32>) -> tensor<1x?x8xf32>
  %h4 = transformer.add %h3, %o2 : tensor<1x?x8xf32>
  return %h4 : tensor<1x?x8xf32>
}
