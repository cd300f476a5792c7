// RUN: kiln-opt %s -kiln-entry-abi -split-input-file -verify-diagnostics | FileCheck %s

// Tests the runtime ABI: tensor arguments become memrefs read through
// to_tensor (writable for the KV cache, which a result is tied to), results
// become destination arguments, the tied result is written back into the
// cache argument, and kiln_model records the shapes the runtime allocates.
module attributes {transformer.num_weights = 7 : i64, kiln.model_path = "/m/tiny.kiln", kiln.weights_fingerprint = 123456789 : i64} {
  func.func @decode(%w: memref<?xi8>, %o: memref<?xindex>, %ids: tensor<1x1xi32>, %pos: index, %cache: tensor<3x2x1x16x8xf32>)
      -> (tensor<1x32xf32>, tensor<3x2x1x16x8xf32> {transformer.tied_to_arg = 4 : i64}) attributes {transformer.entry = "decode"} {
    %l = tensor.empty() : tensor<1x32xf32>
    return %l, %cache : tensor<1x32xf32>, tensor<3x2x1x16x8xf32>
  }
  func.func private @helper(%x: tensor<4xf32>) -> tensor<4xf32>
}
// CHECK-LABEL: func.func @decode(
// CHECK-SAME: %{{.*}}: memref<?xi8>, %{{.*}}: memref<?xindex>, %[[IDS:.*]]: memref<1x1xi32>, %{{.*}}: index, %[[CACHE:.*]]: memref<3x2x1x16x8xf32>, %[[OUT:.*]]: memref<1x32xf32> {transformer.output = 0 : i64})
// CHECK-SAME: attributes {llvm.emit_c_interface, transformer.entry = "decode"}
// CHECK: bufferization.to_tensor %[[IDS]] restrict : memref<1x1xi32>
// CHECK: %[[C:.*]] = bufferization.to_tensor %[[CACHE]] restrict writable
// CHECK: bufferization.materialize_in_destination %{{.*}} in restrict writable %[[OUT]]
// CHECK: bufferization.materialize_in_destination %[[C]] in restrict writable %[[CACHE]]
// CHECK: return{{$}}
// Functions that are not entry points are left alone.
// CHECK: func.func private @helper(tensor<4xf32>) -> tensor<4xf32>
// CHECK: llvm.mlir.global private constant @kiln_model_path("/m/tiny.kiln\00")
// CHECK: llvm.mlir.global external constant @kiln_model()
// CHECK-DAG: llvm.mlir.constant(4 : i32) : i32
// CHECK-DAG: llvm.mlir.constant(7 : i32) : i32
// CHECK-DAG: llvm.mlir.constant(3 : i64) : i64
// CHECK-DAG: llvm.mlir.constant(8 : i64) : i64
// CHECK-DAG: llvm.mlir.constant(16 : i64) : i64
// CHECK-DAG: llvm.mlir.constant(32 : i64) : i64
// CHECK-DAG: llvm.mlir.constant(123456789 : i64) : i64
// The KV cache's element size (f32: 4 bytes), the last field.
// CHECK: %[[BYTES:.*]] = llvm.mlir.constant(4 : i64) : i64
// CHECK-NEXT: llvm.insertvalue %[[BYTES]], %{{.*}}[13]
// CHECK: llvm.return

// -----

// Tests that kiln_model records a half-precision cache's 2-byte elements.
module attributes {transformer.num_weights = 7 : i64} {
  func.func @decode(%w: memref<?xi8>, %o: memref<?xindex>, %ids: tensor<1x1xi32>, %pos: index, %cache: tensor<3x2x1x16x8xf16>)
      -> (tensor<1x32xf32>, tensor<3x2x1x16x8xf16> {transformer.tied_to_arg = 4 : i64}) attributes {transformer.entry = "decode"} {
    %l = tensor.empty() : tensor<1x32xf32>
    return %l, %cache : tensor<1x32xf32>, tensor<3x2x1x16x8xf16>
  }
}
// CHECK-LABEL: func.func @decode(
// CHECK-SAME: memref<3x2x1x16x8xf16>
// CHECK: llvm.mlir.global external constant @kiln_model()
// CHECK: %[[BYTES:.*]] = llvm.mlir.constant(2 : i64) : i64
// CHECK-NEXT: llvm.insertvalue %[[BYTES]], %{{.*}}[13]

// -----

// Tests that a module without entry points is rejected.
// expected-error@+1 {{kiln-entry-abi: no function is marked 'transformer.entry'}}
module {
  func.func @f() {
    return
  }
}

// -----

// Tests that a result tied to an argument of another type is rejected.
module {
  // expected-error@+1 {{result 0 is tied to argument 0, which does not exist or has another type}}
  func.func @f(%a: tensor<4xf32>) -> (tensor<8xf32> {transformer.tied_to_arg = 0 : i64}) attributes {transformer.entry = "forward"} {
    %e = tensor.empty() : tensor<8xf32>
    return %e : tensor<8xf32>
  }
}

// -----

// Tests an encoder-decoder model: @encode's result is tied to the cross
// state, which decode reads as a plain (read-only) argument; kiln_model
// records the kind (1) and the cross state's shape: source capacity 12,
// 2 cross layers, width 16.
module attributes {transformer.num_weights = 9 : i64} {
  func.func @encode(%w: memref<?xi8>, %o: memref<?xindex>, %src: tensor<1x?xi32>, %cross: tensor<2x2x1x12x16xf32>)
      -> (tensor<2x2x1x12x16xf32> {transformer.tied_to_arg = 3 : i64}) attributes {transformer.entry = "encode"} {
    return %cross : tensor<2x2x1x12x16xf32>
  }
  func.func @decode(%w: memref<?xi8>, %o: memref<?xindex>, %ids: tensor<1x1xi32>, %pos: index, %cache: tensor<3x2x1x20x8xf32>,
                    %src: tensor<1x?xi32>, %cross: tensor<2x2x1x12x16xf32>)
      -> (tensor<1x32xf32>, tensor<3x2x1x20x8xf32> {transformer.tied_to_arg = 4 : i64}) attributes {transformer.entry = "decode"} {
    %l = tensor.empty() : tensor<1x32xf32>
    return %l, %cache : tensor<1x32xf32>, tensor<3x2x1x20x8xf32>
  }
}
// CHECK-LABEL: func.func @encode(
// CHECK-SAME: %{{.*}}: memref<?xi8>, %{{.*}}: memref<?xindex>, %[[SRC:.*]]: memref<1x?xi32>, %[[CROSS:.*]]: memref<2x2x1x12x16xf32>)
// CHECK: bufferization.to_tensor %[[SRC]] restrict : memref<1x?xi32>
// CHECK: %[[X:.*]] = bufferization.to_tensor %[[CROSS]] restrict writable
// CHECK: bufferization.materialize_in_destination %[[X]] in restrict writable %[[CROSS]]
// CHECK-LABEL: func.func @decode(
// CHECK-SAME: %[[CACHE:[a-z0-9]+]]: memref<3x2x1x20x8xf32>, %{{.*}}: memref<1x?xi32>, %[[DCROSS:[a-z0-9]+]]: memref<2x2x1x12x16xf32>, %{{.*}}: memref<1x32xf32> {transformer.output = 0 : i64})
// CHECK: bufferization.to_tensor %[[DCROSS]] restrict : memref<2x2x1x12x16xf32>
// CHECK: llvm.mlir.global external constant @kiln_model()
// CHECK: llvm.insertvalue %{{.*}}, %{{.*}}[8]
// CHECK-NEXT: %[[KIND:.*]] = llvm.mlir.constant(1 : i64) : i64
// CHECK-NEXT: llvm.insertvalue %[[KIND]], %{{.*}}[9]
// CHECK-NEXT: %[[SCAP:.*]] = llvm.mlir.constant(12 : i64) : i64
// CHECK-NEXT: llvm.insertvalue %[[SCAP]], %{{.*}}[10]
// CHECK-NEXT: %[[CL:.*]] = llvm.mlir.constant(2 : i64) : i64
// CHECK-NEXT: llvm.insertvalue %[[CL]], %{{.*}}[11]
// CHECK-NEXT: %[[CW:.*]] = llvm.mlir.constant(16 : i64) : i64
// CHECK-NEXT: llvm.insertvalue %[[CW]], %{{.*}}[12]
