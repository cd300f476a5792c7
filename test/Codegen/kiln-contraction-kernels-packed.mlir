// RUN: kiln-opt %s --pass-pipeline='builtin.module(kiln-target{vector-bits=128},func.func(kiln-fuse-residual-add,kiln-kernel-strategy{block-cols=12},kiln-fold-norms,kiln-group-siblings,kiln-fuse-epilogues,kiln-contraction-kernels,kiln-parallelize-rows),canonicalize,cse)' | FileCheck %s

// Prompt-sized products (16 rows or more at run time) pack each block's
// weights, transposed, into a [K, block] buffer (one pass over the block)
// and run outer-product tiles on it over the rows in whole tiles: 6 rows x
// 2 vectors (12 accumulators below 512-bit vectors), each k step loading
// two vectors of packed weights and broadcasting one element of x per row;
// no horizontal sums. Columns left over (12 = 8 + 4) take the dot-product
// kernel, and so do the rows left over (fewer than 6) and, below 16 rows,
// all rows: packing is then skipped (its bounds are 0).
#x = affine_map<(d0, d1, d2) -> (d0, d2)>
#w = affine_map<(d0, d1, d2) -> (d1, d2)>
#o = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func.func @packed
// CHECK-SAME: (%[[X:.*]]: tensor<?x16xf32>, %[[W:.*]]: tensor<12x16xf32>, %{{.*}}: tensor<?x12xf32>)
// CHECK: %[[M:.*]] = tensor.dim %[[X]], %c0
// CHECK: %[[Q:.*]] = arith.divui %[[M]], %c6
// CHECK: %[[WHOLE:.*]] = arith.muli %[[Q]], %c6
// CHECK: %[[BIG:.*]] = arith.cmpi sge, %[[M]], %c16 : index
// CHECK: %[[PROWS:.*]] = arith.select %[[BIG]], %[[WHOLE]], %c0 : index
// CHECK: %[[PCOLS:.*]] = arith.select %[[BIG]], %c8, %c0 : index
// CHECK: %[[BUF:.*]] = tensor.empty() : tensor<16x12xf32>
// CHECK: %[[P:.*]] = scf.for %[[N:.*]] = %c0 to %[[PCOLS]] step %c8 iter_args(%{{.*}} = %[[BUF]]) -> (tensor<16x12xf32>)
// CHECK: scf.for %[[K:.*]] = %c0 to %c16 step %c8
// CHECK-COUNT-8: vector.transfer_read %[[W]]{{.*}} : tensor<12x16xf32>, vector<8xf32>
// The 8 x 8 transpose, upstream x86vector's AVX network: 8 unpacks and 4
// shuffles, 8 blends, 8 128-bit lane joins; no element-wise moves.
// CHECK-NOT: vector.to_elements
// CHECK-COUNT-4: vector.shuffle {{.*}} [0, 8, 1, 9, 4, 12, 5, 13]
// CHECK: vector.shuffle {{.*}} [2, 3, 8, 9, 6, 7, 12, 13]
// CHECK-COUNT-8: llvm.inline_asm {{.*}}"vblendps
// CHECK-COUNT-4: vector.shuffle {{.*}} [0, 1, 2, 3, 8, 9, 10, 11]
// CHECK-COUNT-4: vector.shuffle {{.*}} [4, 5, 6, 7, 12, 13, 14, 15]
// CHECK-NOT: vector.from_elements
// CHECK-COUNT-8: vector.transfer_write {{.*}} : vector<8xf32>, tensor<16x12xf32>
// CHECK: scf.for %{{.*}} = %c0 to %[[PROWS]] step %c6
// CHECK: scf.for %{{.*}} = %c0 to %[[PCOLS]] step %c8
// CHECK: scf.for %{{.*}} = %c0 to %c16 step %c4 iter_args({{.*}}) -> (vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>)
// CHECK-COUNT-2: vector.transfer_read %[[P]]{{.*}} : tensor<16x12xf32>, vector<4xf32>
// CHECK: tensor.extract %[[X]]
// CHECK: vector.broadcast {{.*}} : f32 to vector<4xf32>
// CHECK-COUNT-2: vector.fma
// CHECK-NOT: vector.reduction
// Columns 8..11 of the packed rows: dot products.
// CHECK: scf.for %{{.*}} = %c0 to %[[PROWS]] step %c1
// CHECK: scf.for %{{.*}} = %[[PCOLS]] to %c12 step %c1
// CHECK: vector.reduction <add>
// The rows that were not packed (all of them below 16): dot-product tiles.
// CHECK: scf.for %{{.*}} = %[[PROWS]] to %{{.*}} step %c2
// CHECK: scf.for %{{.*}} = %c0 to %c12 step %c4
// CHECK: scf.for %{{.*}} to %[[M]] step %c1
func.func @packed(%x: tensor<?x16xf32>, %w: tensor<12x16xf32>, %init: tensor<?x12xf32>) -> tensor<?x12xf32> {
  %0 = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %w : tensor<?x16xf32>, tensor<12x16xf32>) outs(%init : tensor<?x12xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b fastmath<reassoc,contract> : f32
    %s = arith.addf %c, %m fastmath<reassoc,contract> : f32
    linalg.yield %s : f32
  } -> tensor<?x12xf32>
  return %0 : tensor<?x12xf32>
}
