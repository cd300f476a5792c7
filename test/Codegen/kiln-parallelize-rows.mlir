// RUN: kiln-opt %s --pass-pipeline='builtin.module(func.func(kiln-parallelize-rows))' -split-input-file | FileCheck %s
// RUN: kiln-opt %s --pass-pipeline='builtin.module(func.func(kiln-parallelize-rows{rows-per-task=4}))' -split-input-file | FileCheck %s --check-prefix=FOUR

#id = affine_map<(d0, d1) -> (d0, d1)>
#row = affine_map<(d0, d1) -> (d0)>

// Tests that a generic over a prompt's rows (dynamic) becomes a parallel
// loop over blocks of 8 rows (rows-per-task), the reduction dimension whole.
// CHECK-LABEL: func.func @row_sums
// CHECK-SAME: (%[[A:.*]]: tensor<?x64xf32>, %[[E:.*]]: tensor<?xf32>)
// CHECK: %[[N:.*]] = tensor.dim %[[A]]
// CHECK: %[[R:.*]] = scf.forall (%[[I:.*]]) = (0) to (%[[N]]) step (8) shared_outs(%[[O:.*]] = %[[E]])
// CHECK: tensor.extract_slice %[[A]][%[[I]], 0] [%{{.*}}, 64] [1, 1]
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]
// CHECK: tensor.parallel_insert_slice %{{.*}} into %[[O]][%[[I]]]
// CHECK: return %[[R]]
// FOUR-LABEL: func.func @row_sums
// FOUR: scf.forall ({{.*}}) = (0) to ({{.*}}) step (4)
func.func @row_sums(%a: tensor<?x64xf32>, %e: tensor<?xf32>) -> tensor<?xf32> {
  %0 = linalg.generic {indexing_maps = [#id, #row], iterator_types = ["parallel", "reduction"]} ins(%a : tensor<?x64xf32>) outs(%e : tensor<?xf32>) {
  ^bb0(%x: f32, %acc: f32):
    %s = arith.addf %acc, %x : f32
    linalg.yield %s : f32
  } -> tensor<?xf32>
  return %0 : tensor<?xf32>
}

// -----

#id = affine_map<(d0, d1) -> (d0, d1)>

// Tests that fixed shapes (a decode step's) stay sequential.
// CHECK-LABEL: func.func @one_token
// CHECK-NOT: scf.forall
// CHECK: linalg.generic
// CHECK-NOT: scf.forall
// CHECK: return
func.func @one_token(%a: tensor<1x64xf32>, %e: tensor<1x64xf32>) -> tensor<1x64xf32> {
  %0 = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]} ins(%a : tensor<1x64xf32>) outs(%e : tensor<1x64xf32>) {
  ^bb0(%x: f32, %y: f32):
    %s = arith.mulf %x, %x : f32
    linalg.yield %s : f32
  } -> tensor<1x64xf32>
  return %0 : tensor<1x64xf32>
}

// -----

#id = affine_map<(d0, d1) -> (d0, d1)>

// Tests that a generic already inside a parallel loop (a kernel's) is left
// alone.
// CHECK-LABEL: func.func @inside
// CHECK: scf.forall
// CHECK-NOT: scf.forall
// CHECK: linalg.generic
func.func @inside(%a: tensor<?x64xf32>, %e: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %r = scf.forall (%i) in (1) shared_outs(%o = %e) -> (tensor<?x64xf32>) {
    %0 = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]} ins(%a : tensor<?x64xf32>) outs(%o : tensor<?x64xf32>) {
    ^bb0(%x: f32, %y: f32):
      %s = arith.mulf %x, %x : f32
      linalg.yield %s : f32
    } -> tensor<?x64xf32>
    %c0 = arith.constant 0 : index
    %n = tensor.dim %a, %c0 : tensor<?x64xf32>
    scf.forall.in_parallel {
      tensor.parallel_insert_slice %0 into %o[0, 0] [%n, 64] [1, 1] : tensor<?x64xf32> into tensor<?x64xf32>
    }
  }
  return %r : tensor<?x64xf32>
}
