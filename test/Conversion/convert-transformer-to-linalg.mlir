// RUN: kiln-opt %s -convert-transformer-to-linalg -split-input-file | FileCheck %s

// Tests that linear is a bias broadcast then a contraction with the weight in
// its [out, in] layout: loops (batch, seq, out) parallel, (in) reduction.
// CHECK-LABEL: func.func @linear
// CHECK: %[[INIT:.*]] = linalg.generic {{.*}} ins(%{{.*}} : tensor<4xf32>) outs(%{{.*}} : tensor<1x?x4xf32>)
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%{{.*}}, %{{.*}} : tensor<1x?x8xf32>, tensor<4x8xf32>) outs(%[[INIT]] : tensor<1x?x4xf32>)
// CHECK: arith.mulf
// CHECK: arith.addf
func.func @linear(%x: tensor<1x?x8xf32>, %w: tensor<4x8xf32>, %b: tensor<4xf32>) -> tensor<1x?x4xf32> {
  %y = transformer.linear %x, %w bias %b : (tensor<1x?x8xf32>, tensor<4x8xf32>, tensor<4xf32>) -> tensor<1x?x4xf32>
  return %y : tensor<1x?x4xf32>
}

// -----

// Tests GQA attention: the query is viewed as [batch, seq, kv_heads, group,
// head_dim], scores are masked with t <= offset + s, and the softmax is
// max, sum of exponentials, normalize, then the weighted sum of values.
// CHECK-LABEL: func.func @attention
// CHECK-SAME: %[[Q:[a-z0-9]+]]: tensor<1x?x8xf32>, %[[K:[a-z0-9]+]]: tensor<1x?x4xf32>, %[[POS:[a-z0-9]+]]: index
// CHECK: tensor.expand_shape %[[Q]] {{\[}}[0], [1], [2, 3, 4]] {{.*}} into tensor<1x?x1x2x4xf32>
// CHECK: tensor.expand_shape %[[K]] {{\[}}[0], [1], [2, 3]] {{.*}} into tensor<1x?x1x4xf32>
// CHECK: %[[SCORES:.*]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<1x1x2x?x?xf32>)
// CHECK: %[[MAX:.*]] = linalg.generic {{.*}} ins(%[[SCORES]]
// CHECK: %[[S:.*]] = linalg.index 3
// CHECK: %[[T:.*]] = linalg.index 4
// CHECK: %[[LIMIT:.*]] = arith.addi %[[S]], %[[POS]]
// CHECK: arith.cmpi ule, %[[T]], %[[LIMIT]]
// CHECK: arith.maximumf
// CHECK: %[[SUM:.*]] = linalg.generic {{.*}} ins(%[[SCORES]], %[[MAX]]
// CHECK: math.exp
// CHECK: %[[P:.*]] = linalg.generic {{.*}} ins(%[[SCORES]], %[[MAX]], %[[SUM]]
// CHECK: arith.divf
// CHECK: %[[O:.*]] = linalg.generic {{.*}} ins(%[[P]], %{{.*}} : tensor<1x1x2x?x?xf32>, tensor<1x?x1x4xf32>)
// CHECK: tensor.collapse_shape %[[O]] {{\[}}[0], [1], [2, 3, 4]] : tensor<1x?x1x2x4xf32> into tensor<1x?x8xf32>
func.func @attention(%q: tensor<1x?x8xf32>, %k: tensor<1x?x4xf32>, %pos: index) -> tensor<1x?x8xf32> {
  %a = transformer.attention causal %q, %k, %k offset %pos {num_heads = 2 : i64, num_kv_heads = 1 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : (tensor<1x?x8xf32>, tensor<1x?x4xf32>, tensor<1x?x4xf32>, index) -> tensor<1x?x8xf32>
  return %a : tensor<1x?x8xf32>
}

// -----

// Tests that a weight becomes a view of the weight buffer at its offset, and
// that the function gets the two buffer arguments.
// CHECK-LABEL: func.func @weights
// CHECK-SAME: (%[[BYTES:.*]]: memref<?xi8> {transformer.weights}, %[[OFFS:.*]]: memref<?xindex> {transformer.weight_offsets})
// CHECK: %[[C3:.*]] = arith.constant 3 : index
// CHECK: %[[OFF:.*]] = memref.load %[[OFFS]][%[[C3]]]
// CHECK: %[[VIEW:.*]] = memref.view %[[BYTES]][%[[OFF]]][] : memref<?xi8> to memref<4x8xf32>
// CHECK: bufferization.to_tensor %[[VIEW]] restrict
func.func @weights() -> tensor<4x8xf32> {
  %w = transformer.weight "w" [3] : tensor<4x8xf32>
  return %w : tensor<4x8xf32>
}

// -----

// Tests the cache storage [layers, 2, batch, capacity, width]: append inserts
// the key and value rows at the position, read slices the prefix.
// CHECK-LABEL: func.func @cache
// CHECK-SAME: %[[C:[a-z0-9]+]]: tensor<2x2x1x16x4xf32>, %[[KV:[a-z0-9]+]]: tensor<1x?x4xf32>, %[[POS:[a-z0-9]+]]: index, %[[LEN:[a-z0-9]+]]: index
// CHECK-SAME: -> (tensor<1x?x4xf32>, tensor<2x2x1x16x4xf32>)
// The append never writes past the capacity (16): position + rows is checked.
// CHECK: %[[ROWS:.*]] = tensor.dim %[[KV]]
// CHECK: %[[END:.*]] = arith.addi %[[POS]], %[[ROWS]]
// CHECK: %[[OVER:.*]] = arith.cmpi ugt, %[[END]], %c16
// CHECK: scf.if %[[OVER]] {
// CHECK: func.call @kiln_fatal_position(
// CHECK: %[[K1:.*]] = tensor.insert_slice %[[KV]] into %[[C]][1, 0, 0, %[[POS]], 0]
// CHECK: %[[V1:.*]] = tensor.insert_slice %[[KV]] into %[[K1]][1, 1, 0, %[[POS]], 0]
// CHECK: %[[VV:.*]] = tensor.extract_slice %[[V1]][1, 1, 0, 0, 0] [1, 1, 1, %[[LEN]], 4]
// CHECK: return %[[VV]], %[[V1]]
func.func @cache(%c: !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 1, head_dim = 4, capacity = 16, element_type = f32>, %k: tensor<1x?x4xf32>, %pos: index, %len: index) -> (tensor<1x?x4xf32>, !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 1, head_dim = 4, capacity = 16, element_type = f32>) {
  %c1 = transformer.kv_cache_append %c[1], %k, %k at %pos : !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 1, head_dim = 4, capacity = 16, element_type = f32>, tensor<1x?x4xf32>, tensor<1x?x4xf32>
  %kk, %vv = transformer.kv_cache_read %c1[1] length %len : !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 1, head_dim = 4, capacity = 16, element_type = f32> -> tensor<1x?x4xf32>, tensor<1x?x4xf32>
  return %vv, %c1 : tensor<1x?x4xf32>, !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 1, head_dim = 4, capacity = 16, element_type = f32>
}
