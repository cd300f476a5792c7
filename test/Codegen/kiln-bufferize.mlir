// RUN: kiln-opt %s -kiln-bufferize -canonicalize -cse -canonicalize | FileCheck %s

// Tests that the KV cache is updated in place: the new key rows are computed
// straight into the cache buffer (no allocation of the cache, no copy), even
// though CSE left two producers sharing one zero-filled destination.
// CHECK-LABEL: func.func @append(
// CHECK-SAME: %[[X:.*]]: memref<1x1x4xf32>, %[[W:.*]]: memref<4x4xf32>, %[[POS:.*]]: index, %[[CACHE:.*]]: memref<1x2x1x8x4xf32>
// CHECK-NOT: memref.alloc
// CHECK-NOT: copy
// CHECK: %[[K:.*]] = memref.subview %[[CACHE]][0, 0, 0, %[[POS]], 0] [1, 1, 1, 1, 4]
// CHECK: linalg.fill {{.*}} outs(%[[K]]
// CHECK: linalg.generic {{.*}} outs(%[[K]]
// CHECK: %[[V:.*]] = memref.subview %[[CACHE]][0, 1, 0, %[[POS]], 0] [1, 1, 1, 1, 4]
// CHECK: linalg.fill {{.*}} outs(%[[V]]
// CHECK: linalg.generic {{.*}} outs(%[[V]]
// CHECK-NOT: copy
// CHECK: return
#x = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#w = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#o = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
func.func @append(%xm: memref<1x1x4xf32>, %wm: memref<4x4xf32>, %pos: index, %cm: memref<1x2x1x8x4xf32>) {
  %x = bufferization.to_tensor %xm restrict : memref<1x1x4xf32> to tensor<1x1x4xf32>
  %w = bufferization.to_tensor %wm restrict : memref<4x4xf32> to tensor<4x4xf32>
  %cache = bufferization.to_tensor %cm restrict writable : memref<1x2x1x8x4xf32> to tensor<1x2x1x8x4xf32>
  %cst = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<1x1x4xf32>
  %zero = linalg.fill ins(%cst : f32) outs(%e : tensor<1x1x4xf32>) -> tensor<1x1x4xf32>
  %k = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %w : tensor<1x1x4xf32>, tensor<4x4xf32>) outs(%zero : tensor<1x1x4xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %s = arith.addf %acc, %m : f32
    linalg.yield %s : f32
  } -> tensor<1x1x4xf32>
  %v = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %w : tensor<1x1x4xf32>, tensor<4x4xf32>) outs(%zero : tensor<1x1x4xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %s = arith.addf %acc, %m : f32
    linalg.yield %s : f32
  } -> tensor<1x1x4xf32>
  %c1 = tensor.insert_slice %k into %cache[0, 0, 0, %pos, 0] [1, 1, 1, 1, 4] [1, 1, 1, 1, 1] : tensor<1x1x4xf32> into tensor<1x2x1x8x4xf32>
  %c2 = tensor.insert_slice %v into %c1[0, 1, 0, %pos, 0] [1, 1, 1, 1, 4] [1, 1, 1, 1, 1] : tensor<1x1x4xf32> into tensor<1x2x1x8x4xf32>
  bufferization.materialize_in_destination %c2 in restrict writable %cm : (tensor<1x2x1x8x4xf32>, memref<1x2x1x8x4xf32>) -> ()
  return
}

// Tests that copies that cannot be avoided are linalg.copy ops (which lower
// to loops for any layout), not memref.copy.
// CHECK-LABEL: func.func @copy_out(
// CHECK: linalg.copy
// CHECK-NOT: memref.copy
func.func @copy_out(%xm: memref<2x4xf32>, %out: memref<8xf32>) {
  %x = bufferization.to_tensor %xm restrict : memref<2x4xf32> to tensor<2x4xf32>
  %f = tensor.collapse_shape %x [[0, 1]] : tensor<2x4xf32> into tensor<8xf32>
  bufferization.materialize_in_destination %f in restrict writable %out : (tensor<8xf32>, memref<8xf32>) -> ()
  return
}
