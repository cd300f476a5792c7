// RUN: kiln-opt %s --pass-pipeline='builtin.module(func.func(kiln-contraction-kernels))' -split-input-file -verify-diagnostics | FileCheck %s

#x = affine_map<(d0, d1, d2) -> (d0, d2)>
#w = affine_map<(d0, d1, d2) -> (d1, d2)>
#o = affine_map<(d0, d1, d2) -> (d0, d1)>

// Tests that the kernel is what the op's kiln.kernel says, set by hand here:
// 3 tasks of 2 columns (block_cols) and vectors of 8 lanes (vector_lanes),
// with no target description in the module.
// CHECK-LABEL: func.func @by_hand
// CHECK: scf.forall (%{{.*}}) in (3)
// CHECK: arith.muli %{{.*}}, %c2
// CHECK: vector.transfer_read {{.*}} : tensor<?x16xf32>, vector<8xf32>
// CHECK: vector.fma {{.*}} : vector<8xf32>
func.func @by_hand(%x: tensor<?x16xf32>, %w: tensor<6x16xf32>, %init: tensor<?x6xf32>) -> tensor<?x6xf32> {
  %0 = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"], kiln.kernel = {block_cols = 2 : i64, dot_rows = 2 : i64, outer_rows = 6 : i64, pack_min_rows = 16 : i64, packed = false, role = "prompt", vector_lanes = 8 : i64}} ins(%x, %w : tensor<?x16xf32>, tensor<6x16xf32>) outs(%init : tensor<?x6xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b : f32
    %s = arith.addf %c, %m : f32
    linalg.yield %s : f32
  } -> tensor<?x6xf32>
  return %0 : tensor<?x6xf32>
}

// -----

#x = affine_map<(d0, d1, d2) -> (d0, d2)>
#w = affine_map<(d0, d1, d2) -> (d1, d2)>
#o = affine_map<(d0, d1, d2) -> (d0, d1)>

// Tests that a contraction without a strategy is left alone.
// CHECK-LABEL: func.func @no_strategy
// CHECK-NOT: scf.forall
// CHECK: linalg.generic
func.func @no_strategy(%x: tensor<?x16xf32>, %w: tensor<6x16xf32>, %init: tensor<?x6xf32>) -> tensor<?x6xf32> {
  %0 = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %w : tensor<?x16xf32>, tensor<6x16xf32>) outs(%init : tensor<?x6xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b : f32
    %s = arith.addf %c, %m : f32
    linalg.yield %s : f32
  } -> tensor<?x6xf32>
  return %0 : tensor<?x6xf32>
}

// -----

#x = affine_map<(d0, d1, d2) -> (d0, d2)>
#w = affine_map<(d0, d1, d2) -> (d1, d2)>
#o = affine_map<(d0, d1, d2) -> (d0, d1)>

// Tests that a strategy missing a field is refused.
func.func @malformed(%x: tensor<?x16xf32>, %w: tensor<6x16xf32>, %init: tensor<?x6xf32>) -> tensor<?x6xf32> {
  // expected-error @below {{has a malformed 'kiln.kernel' strategy}}
  %0 = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"], kiln.kernel = {block_cols = 2 : i64, role = "prompt"}} ins(%x, %w : tensor<?x16xf32>, tensor<6x16xf32>) outs(%init : tensor<?x6xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b : f32
    %s = arith.addf %c, %m : f32
    linalg.yield %s : f32
  } -> tensor<?x6xf32>
  return %0 : tensor<?x6xf32>
}
