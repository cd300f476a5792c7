// RUN: kiln-opt %s -kiln-results-to-out-params -canonicalize -cse -split-input-file | FileCheck %s

// A block returns its output rows, allocated with the prompt's length (read
// through a reshape of its argument) and returned through a view: the
// callers allocate it instead, from their operands' sizes, rebuild the
// view, and pass the buffer as a trailing argument.
// CHECK-LABEL: func.func private @block(
// CHECK-SAME: %[[X:[^:]*]]: memref<1x?x64xf32>, %[[W:[^:]*]]: memref<64x64xf32>, %[[OUT:[^:]*]]: memref<?x64xf32>) {
// CHECK-NOT: memref.alloc
// CHECK: linalg.copy ins(%{{.*}} : memref<?x64xf32>) outs(%[[OUT]] : memref<?x64xf32>)
// CHECK-NEXT: return{{$}}
// CHECK-LABEL: func.func @entry(
// CHECK-SAME: %[[X0:[^:]*]]: memref<1x?x64xf32>, %[[W0:[^:]*]]: memref<64x64xf32>)
// CHECK: %[[N:.*]] = memref.dim %[[X0]], %c1
// CHECK: %[[A:.*]] = memref.alloc(%[[N]]) : memref<?x64xf32>
// CHECK: %[[Y:.*]] = memref.expand_shape %[[A]] {{\[\[}}0, 1], [2]] output_shape [1, %[[N]], 64]
// CHECK: call @block(%[[X0]], %[[W0]], %[[A]]) : (memref<1x?x64xf32>, memref<64x64xf32>, memref<?x64xf32>) -> ()
// CHECK: %[[N2:.*]] = memref.dim %[[Y]], %c1
// CHECK: %[[A2:.*]] = memref.alloc(%[[N2]]) : memref<?x64xf32>
// CHECK: %[[Z:.*]] = memref.expand_shape %[[A2]]
// CHECK: call @block(%[[Y]], %[[W0]], %[[A2]])
// CHECK: memref.load %[[Z]]
func.func private @block(%x: memref<1x?x64xf32>, %w: memref<64x64xf32>) -> memref<1x?x64xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %cx = memref.collapse_shape %x [[0, 1], [2]] : memref<1x?x64xf32> into memref<?x64xf32>
  %n = memref.dim %cx, %c0 : memref<?x64xf32>
  %a = memref.alloc(%n) : memref<?x64xf32>
  linalg.copy ins(%cx : memref<?x64xf32>) outs(%a : memref<?x64xf32>)
  %n1 = memref.dim %x, %c1 : memref<1x?x64xf32>
  %r = memref.expand_shape %a [[0, 1], [2]] output_shape [1, %n1, 64] : memref<?x64xf32> into memref<1x?x64xf32>
  return %r : memref<1x?x64xf32>
}
func.func @entry(%x: memref<1x?x64xf32>, %w: memref<64x64xf32>) -> f32 {
  %y = call @block(%x, %w) : (memref<1x?x64xf32>, memref<64x64xf32>) -> memref<1x?x64xf32>
  %z = call @block(%y, %w) : (memref<1x?x64xf32>, memref<64x64xf32>) -> memref<1x?x64xf32>
  %c0 = arith.constant 0 : index
  %v = memref.load %z[%c0, %c0, %c0] : memref<1x?x64xf32>
  return %v : f32
}

// -----

// A static-shaped result: the caller's buffer (which buffers-to-stack can
// place on the stack).
// CHECK-LABEL: func.func private @fixed(
// CHECK-SAME: %{{.*}}: memref<1x64xf32>, %[[OUT:[^:]*]]: memref<1x64xf32>) {
// CHECK: linalg.copy ins(%{{.*}} : memref<1x64xf32>) outs(%[[OUT]] : memref<1x64xf32>)
// CHECK-LABEL: func.func @caller
// CHECK: %[[A:.*]] = memref.alloc() : memref<1x64xf32>
// CHECK: call @fixed(%{{.*}}, %[[A]])
// CHECK: return %[[A]]
func.func private @fixed(%x: memref<1x64xf32>) -> memref<1x64xf32> {
  %a = memref.alloc() : memref<1x64xf32>
  linalg.copy ins(%x : memref<1x64xf32>) outs(%a : memref<1x64xf32>)
  return %a : memref<1x64xf32>
}
func.func @caller(%x: memref<1x64xf32>) -> memref<1x64xf32> {
  %y = call @fixed(%x) : (memref<1x64xf32>) -> memref<1x64xf32>
  return %y : memref<1x64xf32>
}

// -----

// What stays a result: a size read from memory (not a function of the
// arguments' sizes), a buffer returned twice, a view of an argument, and
// the results of a public function (an entry point's ABI).
// CHECK-LABEL: func.func private @loaded(%{{.*}}: memref<1xindex>) -> memref<?xf32>
// CHECK: memref.alloc
// CHECK-LABEL: func.func private @twice(%{{.*}}: memref<4xf32>) -> (memref<4xf32>, memref<2x2xf32>)
// CHECK-LABEL: func.func private @view(%{{.*}}: memref<4xf32>) -> memref<2x2xf32>
// CHECK-LABEL: func.func @public(%{{.*}}: memref<4xf32>) -> memref<4xf32>
func.func private @loaded(%n: memref<1xindex>) -> memref<?xf32> {
  %c0 = arith.constant 0 : index
  %len = memref.load %n[%c0] : memref<1xindex>
  %a = memref.alloc(%len) : memref<?xf32>
  return %a : memref<?xf32>
}
func.func private @twice(%x: memref<4xf32>) -> (memref<4xf32>, memref<2x2xf32>) {
  %a = memref.alloc() : memref<4xf32>
  linalg.copy ins(%x : memref<4xf32>) outs(%a : memref<4xf32>)
  %v = memref.expand_shape %a [[0, 1]] output_shape [2, 2] : memref<4xf32> into memref<2x2xf32>
  return %a, %v : memref<4xf32>, memref<2x2xf32>
}
func.func private @view(%x: memref<4xf32>) -> memref<2x2xf32> {
  %v = memref.expand_shape %x [[0, 1]] output_shape [2, 2] : memref<4xf32> into memref<2x2xf32>
  return %v : memref<2x2xf32>
}
func.func @public(%x: memref<4xf32>) -> memref<4xf32> {
  %a = memref.alloc() : memref<4xf32>
  linalg.copy ins(%x : memref<4xf32>) outs(%a : memref<4xf32>)
  return %a : memref<4xf32>
}
func.func @uses(%n: memref<1xindex>, %x: memref<4xf32>) {
  %0 = call @loaded(%n) : (memref<1xindex>) -> memref<?xf32>
  %1:2 = call @twice(%x) : (memref<4xf32>) -> (memref<4xf32>, memref<2x2xf32>)
  %2 = call @view(%x) : (memref<4xf32>) -> memref<2x2xf32>
  %3 = call @public(%x) : (memref<4xf32>) -> memref<4xf32>
  return
}
