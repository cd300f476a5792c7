// RUN: kiln-opt %s -canonicalize | FileCheck %s

// Tests that a constant zero offset is dropped: it means the same as none.
// CHECK-LABEL: func.func @zero_offsets
func.func @zero_offsets(%x: tensor<1x?x64xf32>, %t: tensor<128x64xf32>) -> tensor<1x?x64xf32> {
  %c0 = arith.constant 0 : index
  // CHECK: transformer.position_embedding %{{.*}}, %{{.*}} :
  %p = transformer.position_embedding %x, %t offset %c0 : (tensor<1x?x64xf32>, tensor<128x64xf32>, index) -> tensor<1x?x64xf32>
  // CHECK: transformer.rope rotate_half %{{.*}} {head_dim
  %r = transformer.rope rotate_half %p offset %c0 {head_dim = 16 : i64, theta = 1.0e4 : f32} : (tensor<1x?x64xf32>, index) -> tensor<1x?x64xf32>
  // CHECK: transformer.attention causal %{{.*}}, %{{.*}}, %{{.*}} {head_dim
  %a = transformer.attention causal %r, %r, %r offset %c0 {num_heads = 4 : i64, num_kv_heads = 4 : i64, head_dim = 16 : i64, scale = 0.25 : f32} : (tensor<1x?x64xf32>, tensor<1x?x64xf32>, tensor<1x?x64xf32>, index) -> tensor<1x?x64xf32>
  return %a : tensor<1x?x64xf32>
}

// Tests that non-zero offsets are kept.
// CHECK-LABEL: func.func @nonzero_offsets
func.func @nonzero_offsets(%x: tensor<1x?x64xf32>, %pos: index) -> tensor<1x?x64xf32> {
  %c3 = arith.constant 3 : index
  // CHECK: transformer.rope rotate_half %{{.*}} offset %{{.*}} {
  %r = transformer.rope rotate_half %x offset %c3 {head_dim = 16 : i64, theta = 1.0e4 : f32} : (tensor<1x?x64xf32>, index) -> tensor<1x?x64xf32>
  // CHECK: transformer.attention causal %{{.*}}, %{{.*}}, %{{.*}} offset %{{.*}} {
  %a = transformer.attention causal %r, %r, %r offset %pos {num_heads = 4 : i64, num_kv_heads = 4 : i64, head_dim = 16 : i64, scale = 0.25 : f32} : (tensor<1x?x64xf32>, tensor<1x?x64xf32>, tensor<1x?x64xf32>, index) -> tensor<1x?x64xf32>
  return %a : tensor<1x?x64xf32>
}

// Tests that a zero offset stays when dropping it would break the verifier
// (fewer queries than keys).
// CHECK-LABEL: func.func @zero_offset_needed
func.func @zero_offset_needed(%q: tensor<1x2x64xf32>, %k: tensor<1x5x64xf32>) -> tensor<1x2x64xf32> {
  %c0 = arith.constant 0 : index
  // CHECK: transformer.attention causal %{{.*}}, %{{.*}}, %{{.*}} offset %{{.*}} {
  %a = transformer.attention causal %q, %k, %k offset %c0 {num_heads = 4 : i64, num_kv_heads = 4 : i64, head_dim = 16 : i64, scale = 0.25 : f32} : (tensor<1x2x64xf32>, tensor<1x5x64xf32>, tensor<1x5x64xf32>, index) -> tensor<1x2x64xf32>
  return %a : tensor<1x2x64xf32>
}

// Tests that dead ops are removed (all ops are pure).
// CHECK-LABEL: func.func @dead
// CHECK-NOT: transformer.
// CHECK: return
func.func @dead(%x: tensor<1x?x64xf32>) -> tensor<1x?x64xf32> {
  %w = transformer.weight "w" [0] : tensor<64x64xf32>
  %y = transformer.linear %x, %w : (tensor<1x?x64xf32>, tensor<64x64xf32>) -> tensor<1x?x64xf32>
  return %x : tensor<1x?x64xf32>
}
