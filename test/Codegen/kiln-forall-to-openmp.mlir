// RUN: kiln-opt %s -kiln-forall-to-openmp -split-input-file -verify-diagnostics | FileCheck %s

// A 2-D forall becomes one omp.parallel region: each thread takes the
// contiguous share [tid * chunk, min(lo + chunk, total)) of the flattened
// 3 x 5 iterations, rebuilds (i, j) with the last dimension fastest, and
// runs the body in an alloca scope.
// CHECK-LABEL: func.func @two_dims
// CHECK-SAME: (%[[M:.*]]: memref<3x5xf32>)
// CHECK: omp.parallel {
// CHECK: %[[TID32:.*]] = func.call @omp_get_thread_num() : () -> i32
// CHECK: %[[TID:.*]] = arith.index_cast %[[TID32]] : i32 to index
// CHECK: %[[NTH32:.*]] = func.call @omp_get_num_threads() : () -> i32
// CHECK: %[[NTH:.*]] = arith.index_cast %[[NTH32]] : i32 to index
// CHECK: %[[CHUNK:.*]] = arith.ceildivsi %[[TOTAL:.*]], %[[NTH]]
// CHECK: %[[START:.*]] = arith.muli %[[TID]], %[[CHUNK]]
// CHECK: %[[LO:.*]] = arith.minsi %[[START]], %[[TOTAL]]
// CHECK: %[[END:.*]] = arith.addi %[[LO]], %[[CHUNK]]
// CHECK: %[[HI:.*]] = arith.minsi %[[END]], %[[TOTAL]]
// CHECK: scf.for %[[F:.*]] = %[[LO]] to %[[HI]] step %{{.*}} {
// CHECK: memref.alloca_scope {
// CHECK: %[[J0:.*]] = arith.remsi %[[F]], %{{.*}}
// CHECK: %[[I0:.*]] = arith.divsi %[[F]], %{{.*}}
// CHECK: %[[JM:.*]] = arith.muli %[[J0]], %{{.*}}
// CHECK: %[[J:.*]] = arith.addi %{{.*}}, %[[JM]]
// CHECK: %[[IM:.*]] = arith.muli %[[I0]], %{{.*}}
// CHECK: %[[I:.*]] = arith.addi %{{.*}}, %[[IM]]
// CHECK: memref.store %{{.*}}, %[[M]][%[[I]], %[[J]]]
// CHECK: omp.terminator
// CHECK-NOT: scf.forall
// CHECK: func.func private @omp_get_thread_num() -> i32
// CHECK: func.func private @omp_get_num_threads() -> i32
func.func @two_dims(%m: memref<3x5xf32>) {
  %c = arith.constant 1.0 : f32
  scf.forall (%i, %j) in (3, 5) {
    memref.store %c, %m[%i, %j] : memref<3x5xf32>
  }
  return
}

// -----

// Still on tensors: refused with a message.
func.func @tensor_results(%t: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @below {{kiln-forall-to-openmp runs after bufferization: scf.forall must not have results}}
  %r = scf.forall (%i) in (4) shared_outs(%o = %t) -> (tensor<4xf32>) {
    scf.forall.in_parallel {
    }
  }
  return %r : tensor<4xf32>
}

// -----

// A fixed-size stack buffer of an iteration is allocated once per thread,
// before its share of iterations, and reused by each of them (they run one
// after another); a dynamic one stays in the iteration's scope.
// CHECK-LABEL: func.func @per_thread_buffer
// CHECK: omp.parallel {
// CHECK: %[[BUF:.*]] = memref.alloca() : memref<64xf32>
// CHECK: scf.for
// CHECK: memref.alloca_scope {
// CHECK-NOT: memref.alloca() : memref<64xf32>
// CHECK: memref.store %{{.*}}, %[[BUF]]
// CHECK: memref.alloca(%{{.*}}) : memref<?xf32>
// CHECK: omp.terminator
func.func @per_thread_buffer(%m: memref<8xf32>, %n: index) {
  %c = arith.constant 1.0 : f32
  %c0 = arith.constant 0 : index
  scf.forall (%i) in (8) {
    %buf = memref.alloca() : memref<64xf32>
    memref.store %c, %buf[%i] : memref<64xf32>
    %dyn = memref.alloca(%n) : memref<?xf32>
    memref.store %c, %dyn[%c0] : memref<?xf32>
    %v = memref.load %buf[%c0] : memref<64xf32>
    memref.store %v, %m[%i] : memref<8xf32>
  }
  return
}
