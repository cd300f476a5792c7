// RUN: kiln-opt %s -kiln-weight-buffers -split-input-file | FileCheck %s

// Tests that a weight becomes a view of the weight buffer at its offset, and
// that the function gets the two buffer arguments.
// CHECK-LABEL: func.func @weights
// CHECK-SAME: (%[[BYTES:.*]]: memref<?xi8> {transformer.weights}, %[[OFFS:.*]]: memref<?xindex> {transformer.weight_offsets})
// CHECK: %[[C3:.*]] = arith.constant 3 : index
// CHECK: %[[OFF:.*]] = memref.load %[[OFFS]][%[[C3]]]
// CHECK: %[[VIEW:.*]] = memref.view %[[BYTES]][%[[OFF]]][] : memref<?xi8> to memref<4x8xf32>
// CHECK: %[[T:.*]] = bufferization.to_tensor %[[VIEW]] restrict : memref<4x8xf32> to tensor<4x8xf32>
// CHECK: return %[[T]]
func.func @weights() -> tensor<4x8xf32> {
  %w = transformer.weight "w" [3] : tensor<4x8xf32>
  return %w : tensor<4x8xf32>
}

// -----

// Tests that existing arguments follow the two buffers, and that a result
// tied to an argument (the KV cache) names its new position.
// CHECK-LABEL: func.func @tied
// CHECK-SAME: (%{{.*}}: memref<?xi8> {transformer.weights}, %{{.*}}: memref<?xindex> {transformer.weight_offsets}, %[[X:.*]]: tensor<4xf32>)
// CHECK-SAME: -> (tensor<4xf32> {transformer.tied_to_arg = 2 : i64}, tensor<4x8xf32>)
func.func @tied(%x: tensor<4xf32>) -> (tensor<4xf32> {transformer.tied_to_arg = 0 : i64}, tensor<4x8xf32>) {
  %w = transformer.weight "w" [0] : tensor<4x8xf32>
  return %x, %w : tensor<4xf32>, tensor<4x8xf32>
}

// -----

// Tests that a function without weights keeps its signature.
// CHECK-LABEL: func.func @none(%{{.*}}: tensor<4xf32>) -> tensor<4xf32>
func.func @none(%x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}
