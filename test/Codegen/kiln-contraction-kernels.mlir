// RUN: kiln-opt %s --pass-pipeline='builtin.module(kiln-target{vector-bits=128},func.func(kiln-fuse-residual-add,kiln-kernel-strategy{block-cols=4},kiln-fold-norms,kiln-group-siblings,kiln-fuse-epilogues,kiln-contraction-kernels,kiln-parallelize-rows),canonicalize,cse)' --split-input-file | FileCheck %s

// A `linear` (y = init + x W^T) with dynamic rows, N = 6 output columns in
// blocks of 4 (the last block is 2 wide) and K = 10 (two vectors of 4, then
// a static tail of 2 widened with zeros).

#x = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#w = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#o = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
// CHECK-LABEL: func.func @prefill_shape
// CHECK-SAME: (%[[X:.*]]: tensor<1x?x10xf32>, %[[W:.*]]: tensor<6x10xf32>, %[[INIT:.*]]: tensor<1x?x6xf32>)
// CHECK-DAG: %[[XC:.*]] = tensor.collapse_shape %[[X]] {{\[\[}}0, 1], [2]] : tensor<1x?x10xf32> into tensor<?x10xf32>
// CHECK-DAG: %[[IC:.*]] = tensor.collapse_shape %[[INIT]] {{\[\[}}0, 1], [2]] : tensor<1x?x6xf32> into tensor<?x6xf32>
// One parallel task per block of 4 columns, writing a fresh output (every
// element once); the init is read where each tile is written.
// CHECK-DAG: %[[OUT:.*]] = tensor.empty(%{{.*}}) : tensor<?x6xf32>
// CHECK: %[[R:.*]] = scf.forall (%[[B:.*]]) in (2) shared_outs(%[[O:.*]] = %[[OUT]]) -> (tensor<?x6xf32>)
// CHECK: %[[N0:.*]] = arith.muli %[[B]], %c4
// CHECK: %[[LEN:.*]] = arith.minsi
// The task's rows of W (a view).
// CHECK: %[[WS:.*]] = tensor.extract_slice %[[W]][%[[N0]], 0] [%[[LEN]], 10] [1, 1] : tensor<6x10xf32> to tensor<?x10xf32>
// CHECK: %[[TILE:.*]] = tensor.extract_slice %[[O]][0, %[[N0]]] [%{{.*}}, %[[LEN]]] [1, 1]
// 2x4 register tiles below 512-bit vectors (16 registers): 8 accumulators,
// 2 + 4 contiguous loads per step (4x4 with AVX-512's 32 registers).
// CHECK: scf.for %[[M:.*]] = %c0 to %{{.*}} step %c2
// CHECK: scf.for %{{.*}} = %c0 to %{{.*}} step %c4
// CHECK: scf.for %{{.*}} = %c0 to %c8 step %c4 iter_args({{.*}}) -> (vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>)
// CHECK-COUNT-2: vector.transfer_read %[[XC]]{{.*}} : tensor<?x10xf32>, vector<4xf32>
// CHECK-COUNT-4: vector.transfer_read %[[WS]]{{.*}} : tensor<?x10xf32>, vector<4xf32>
// CHECK-COUNT-8: vector.fma {{.*}} : vector<4xf32>
// The k tail: 2 elements, widened to a whole vector.
// CHECK: vector.transfer_read %[[XC]][%{{.*}}, %c8]{{.*}} : tensor<?x10xf32>, vector<2xf32>
// CHECK: vector.insert_strided_slice {{.*}} : vector<2xf32> into vector<4xf32>
// One horizontal sum per output, added to the init 4 at a time.
// CHECK: vector.reduction <add>, {{.*}} fastmath<reassoc,contract> : vector<4xf32> into f32
// CHECK: vector.from_elements {{.*}} : vector<4xf32>
// CHECK: vector.transfer_read %[[IC]]{{.*}} : tensor<?x6xf32>, vector<4xf32>
// CHECK: vector.transfer_write {{.*}} : vector<4xf32>, tensor<?x?xf32>
// Rows left over: one row of x by one row of W, two accumulators (one k
// step of 8, unrolled by canonicalization, then the tail).
// CHECK: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %c1
// CHECK: scf.for %{{.*}} = %c0 to %{{.*}} step %c1
// CHECK: vector.fma %{{.*}}, %{{.*}}, %cst_0 : vector<4xf32>
// CHECK: vector.fma %{{.*}}, %{{.*}}, %cst_0 : vector<4xf32>
// CHECK: vector.insert_strided_slice
// CHECK: scf.forall.in_parallel
// CHECK-NEXT: tensor.parallel_insert_slice %{{.*}} into %[[O]][0, %[[N0]]] [%{{.*}}, %[[LEN]]] [1, 1]
// CHECK: %[[E:.*]] = tensor.expand_shape %[[R]] {{\[\[}}0, 1], [2]]
// CHECK: return %[[E]]
func.func @prefill_shape(%x: tensor<1x?x10xf32>, %w: tensor<6x10xf32>, %init: tensor<1x?x6xf32>) -> tensor<1x?x6xf32> {
  %0 = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%x, %w : tensor<1x?x10xf32>, tensor<6x10xf32>) outs(%init : tensor<1x?x6xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b fastmath<reassoc,contract> : f32
    %s = arith.addf %c, %m fastmath<reassoc,contract> : f32
    linalg.yield %s : f32
  } -> tensor<1x?x6xf32>
  return %0 : tensor<1x?x6xf32>
}

// -----

// Decode: one row. No 4-row tiles survive canonicalization; each output is
// one stream through its row of W with two accumulators.
#x = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#w = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#o = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
// CHECK-LABEL: func.func @decode_shape
// CHECK: scf.forall (%{{.*}}) in (2) shared_outs(%{{.*}} = %{{.*}}) -> (tensor<1x8xf32>)
// CHECK-NOT: step %c4
// CHECK: scf.for %{{.*}} = %c0 to %c4 step %c1
// CHECK: scf.for %{{.*}} = %c0 to %c16 step %c8 iter_args(%{{.*}} = %cst{{.*}}, %{{.*}} = %cst{{.*}}) -> (vector<4xf32>, vector<4xf32>)
// CHECK-COUNT-2: vector.fma
// CHECK: arith.addf {{.*}} fastmath<reassoc,contract> : vector<4xf32>
// CHECK: vector.reduction <add>
// CHECK: tensor.expand_shape {{.*}} output_shape [1, 1, 8]
func.func @decode_shape(%x: tensor<1x1x16xf32>, %w: tensor<8x16xf32>, %init: tensor<1x1x8xf32>) -> tensor<1x1x8xf32> {
  %0 = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%x, %w : tensor<1x1x16xf32>, tensor<8x16xf32>) outs(%init : tensor<1x1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b fastmath<reassoc,contract> : f32
    %s = arith.addf %c, %m fastmath<reassoc,contract> : f32
    linalg.yield %s : f32
  } -> tensor<1x1x8xf32>
  return %0 : tensor<1x1x8xf32>
}

// -----

// Not the linear form (the weight is read transposed, [K, N]): left alone.
#x = affine_map<(d0, d1, d2) -> (d0, d2)>
#w = affine_map<(d0, d1, d2) -> (d2, d1)>
#o = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func.func @not_linear
// CHECK-NOT: scf.forall
// CHECK: linalg.generic
func.func @not_linear(%x: tensor<4x16xf32>, %w: tensor<16x8xf32>, %init: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %0 = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %w : tensor<4x16xf32>, tensor<16x8xf32>) outs(%init : tensor<4x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b : f32
    %s = arith.addf %c, %m : f32
    linalg.yield %s : f32
  } -> tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}

// -----

// Other generics whose shape depends on the prompt run as parallel loops
// over blocks of 8 along the dynamic dimension; one-token shapes stay
// sequential.
#id = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-LABEL: func.func @rows
// CHECK-SAME: (%[[X:.*]]: tensor<1x?x8xf32>)
// CHECK: %[[S:.*]] = tensor.dim %[[X]], %c1
// CHECK: scf.forall (%[[R:.*]]) = (0) to (%[[S]]) step (8) shared_outs(%[[O:.*]] = %{{.*}}) -> (tensor<1x?x8xf32>)
// CHECK: %[[N:.*]] = affine.min
// CHECK: %[[IN:.*]] = tensor.extract_slice %[[X]][0, %[[R]], 0] [1, %[[N]], 8] [1, 1, 1]
// CHECK: %[[T:.*]] = linalg.generic {{.*}} ins(%[[IN]] : tensor<1x?x8xf32>)
// CHECK: arith.negf
// CHECK: tensor.parallel_insert_slice %[[T]] into %[[O]][0, %[[R]], 0] [1, %[[N]], 8] [1, 1, 1]
// CHECK-LABEL: func.func @one_token
// CHECK-NOT: scf.forall
// CHECK: linalg.generic
func.func @rows(%x: tensor<1x?x8xf32>) -> tensor<1x?x8xf32> {
  %c1 = arith.constant 1 : index
  %s = tensor.dim %x, %c1 : tensor<1x?x8xf32>
  %e = tensor.empty(%s) : tensor<1x?x8xf32>
  %0 = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel", "parallel"]} ins(%x : tensor<1x?x8xf32>) outs(%e : tensor<1x?x8xf32>) {
  ^bb0(%a: f32, %o: f32):
    %n = arith.negf %a : f32
    linalg.yield %n : f32
  } -> tensor<1x?x8xf32>
  return %0 : tensor<1x?x8xf32>
}
func.func @one_token(%x: tensor<1x1x8xf32>) -> tensor<1x1x8xf32> {
  %e = tensor.empty() : tensor<1x1x8xf32>
  %0 = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel", "parallel"]} ins(%x : tensor<1x1x8xf32>) outs(%e : tensor<1x1x8xf32>) {
  ^bb0(%a: f32, %o: f32):
    %n = arith.negf %a : f32
    linalg.yield %n : f32
  } -> tensor<1x1x8xf32>
  return %0 : tensor<1x1x8xf32>
}

// -----

// Sibling projections (q, k, v: the same x and K) become one kernel: one
// parallel loop over the column blocks of all three (2 + 1 + 1 blocks of 4),
// each task computing into its member's columns of one [M, 8 + 4 + 4]
// output with its member's weights (picked by scf.index_switch, a view, no
// copy). The results are column slices of that output.
#x = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#w = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#o = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
// CHECK-LABEL: func.func @siblings
// CHECK-SAME: (%[[X:.*]]: tensor<1x?x8xf32>, %[[WQ:.*]]: tensor<8x8xf32>, %[[WK:.*]]: tensor<4x8xf32>, %[[WV:.*]]: tensor<4x8xf32>)
// Zero-initialised products write their sums without a fill or a read of
// the output.
// CHECK: %[[E:.*]] = tensor.empty(%{{.*}}) : tensor<?x16xf32>
// CHECK-NOT: linalg.fill
// CHECK: %[[R:.*]] = scf.forall (%[[B:.*]]) in (4) shared_outs(%[[O:.*]] = %[[E]]) -> (tensor<?x16xf32>)
// CHECK: scf.index_switch %{{.*}} -> tensor<4x8xf32>
// CHECK: case 0 {
// CHECK: tensor.extract_slice %[[WQ]]
// CHECK: case 1 {
// CHECK: tensor.extract_slice %[[WK]]
// CHECK: default {
// CHECK: tensor.extract_slice %[[WV]]
// CHECK: tensor.parallel_insert_slice %{{.*}} into %[[O]]
// CHECK-DAG: tensor.extract_slice %[[R]][0, 0] [%{{.*}}, 8] [1, 1] : tensor<?x16xf32> to tensor<?x8xf32>
// CHECK-DAG: tensor.extract_slice %[[R]][0, 8] [%{{.*}}, 4] [1, 1] : tensor<?x16xf32> to tensor<?x4xf32>
// CHECK-DAG: tensor.extract_slice %[[R]][0, 12] [%{{.*}}, 4] [1, 1] : tensor<?x16xf32> to tensor<?x4xf32>
// CHECK-NOT: scf.forall
// CHECK: return
func.func @siblings(%x: tensor<1x?x8xf32>, %wq: tensor<8x8xf32>, %wk: tensor<4x8xf32>, %wv: tensor<4x8xf32>) -> (tensor<1x?x8xf32>, tensor<1x?x4xf32>, tensor<1x?x4xf32>) {
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  %s = tensor.dim %x, %c1 : tensor<1x?x8xf32>
  %e8 = tensor.empty(%s) : tensor<1x?x8xf32>
  %f8 = linalg.fill ins(%zero : f32) outs(%e8 : tensor<1x?x8xf32>) -> tensor<1x?x8xf32>
  %e4 = tensor.empty(%s) : tensor<1x?x4xf32>
  %f4 = linalg.fill ins(%zero : f32) outs(%e4 : tensor<1x?x4xf32>) -> tensor<1x?x4xf32>
  %q = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%x, %wq : tensor<1x?x8xf32>, tensor<8x8xf32>) outs(%f8 : tensor<1x?x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b fastmath<reassoc,contract> : f32
    %r = arith.addf %c, %m fastmath<reassoc,contract> : f32
    linalg.yield %r : f32
  } -> tensor<1x?x8xf32>
  %k = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%x, %wk : tensor<1x?x8xf32>, tensor<4x8xf32>) outs(%f4 : tensor<1x?x4xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b fastmath<reassoc,contract> : f32
    %r = arith.addf %c, %m fastmath<reassoc,contract> : f32
    linalg.yield %r : f32
  } -> tensor<1x?x4xf32>
  %v = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%x, %wv : tensor<1x?x8xf32>, tensor<4x8xf32>) outs(%f4 : tensor<1x?x4xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b fastmath<reassoc,contract> : f32
    %r = arith.addf %c, %m fastmath<reassoc,contract> : f32
    linalg.yield %r : f32
  } -> tensor<1x?x4xf32>
  return %q, %k, %v : tensor<1x?x8xf32>, tensor<1x?x4xf32>, tensor<1x?x4xf32>
}

// -----

// Siblings whose first result is used before the second is computed stay
// separate kernels (the fused kernel would take the second's place).
#x = affine_map<(d0, d1, d2) -> (d0, d2)>
#w = affine_map<(d0, d1, d2) -> (d1, d2)>
#o = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func.func @siblings_used_between
// CHECK: scf.forall (%{{.*}}) in (2) shared_outs(%{{.*}}) -> (tensor<2x8xf32>)
// CHECK: tensor.extract %{{.*}} : tensor<2x8xf32>
// CHECK: scf.forall (%{{.*}}) in (2) shared_outs(%{{.*}}) -> (tensor<2x8xf32>)
func.func @siblings_used_between(%x: tensor<2x8xf32>, %w1: tensor<8x8xf32>, %w2: tensor<8x8xf32>, %i: index) -> (f32, tensor<2x8xf32>) {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<2x8xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<2x8xf32>) -> tensor<2x8xf32>
  %a = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %w1 : tensor<2x8xf32>, tensor<8x8xf32>) outs(%f : tensor<2x8xf32>) {
  ^bb0(%p: f32, %q: f32, %c: f32):
    %m = arith.mulf %p, %q fastmath<reassoc,contract> : f32
    %r = arith.addf %c, %m fastmath<reassoc,contract> : f32
    linalg.yield %r : f32
  } -> tensor<2x8xf32>
  %used = tensor.extract %a[%i, %i] : tensor<2x8xf32>
  %b = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %w2 : tensor<2x8xf32>, tensor<8x8xf32>) outs(%f : tensor<2x8xf32>) {
  ^bb0(%p: f32, %q: f32, %c: f32):
    %m = arith.mulf %p, %q fastmath<reassoc,contract> : f32
    %r = arith.addf %c, %m fastmath<reassoc,contract> : f32
    linalg.yield %r : f32
  } -> tensor<2x8xf32>
  return %used, %b : f32, tensor<2x8xf32>
}

// -----

// A residual add of a projection (initialised with zeros, used only by the
// add) becomes the projection's init: y = r + x W^T in one kernel, with no
// separate pass over y; the kernel reads r where it writes y, into a fresh
// buffer (r's buffer, the residual stream, is not overwritten). A
// bias-initialised projection keeps its add ((r + b) + s would round
// differently from r + (b + s)).
#x = affine_map<(d0, d1, d2) -> (d0, d2)>
#w = affine_map<(d0, d1, d2) -> (d1, d2)>
#o = affine_map<(d0, d1, d2) -> (d0, d1)>
#id = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @residual
// CHECK-SAME: (%[[X:.*]]: tensor<2x8xf32>, %[[W:.*]]: tensor<8x8xf32>, %[[R:.*]]: tensor<2x8xf32>)
// CHECK: %[[OUT:.*]] = tensor.empty() : tensor<2x8xf32>
// CHECK: %[[Y:.*]] = scf.forall (%{{.*}}) in (2) shared_outs(%{{.*}} = %[[OUT]]) -> (tensor<2x8xf32>)
// CHECK: vector.transfer_read %[[R]]
// CHECK-NOT: linalg.generic
// CHECK: return %[[Y]]
func.func @residual(%x: tensor<2x8xf32>, %w: tensor<8x8xf32>, %r: tensor<2x8xf32>) -> tensor<2x8xf32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<2x8xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<2x8xf32>) -> tensor<2x8xf32>
  %p = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %w : tensor<2x8xf32>, tensor<8x8xf32>) outs(%f : tensor<2x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b fastmath<reassoc,contract> : f32
    %s = arith.addf %c, %m fastmath<reassoc,contract> : f32
    linalg.yield %s : f32
  } -> tensor<2x8xf32>
  %y = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel"]} ins(%r, %p : tensor<2x8xf32>, tensor<2x8xf32>) outs(%e : tensor<2x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %s = arith.addf %a, %b : f32
    linalg.yield %s : f32
  } -> tensor<2x8xf32>
  return %y : tensor<2x8xf32>
}

// CHECK-LABEL: func.func @residual_after_bias
// CHECK: scf.forall
// CHECK: linalg.generic
// CHECK: arith.addf
func.func @residual_after_bias(%x: tensor<2x8xf32>, %w: tensor<8x8xf32>, %r: tensor<2x8xf32>) -> tensor<2x8xf32> {
  %bias = arith.constant 0.5 : f32
  %e = tensor.empty() : tensor<2x8xf32>
  %f = linalg.fill ins(%bias : f32) outs(%e : tensor<2x8xf32>) -> tensor<2x8xf32>
  %p = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %w : tensor<2x8xf32>, tensor<8x8xf32>) outs(%f : tensor<2x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b fastmath<reassoc,contract> : f32
    %s = arith.addf %c, %m fastmath<reassoc,contract> : f32
    linalg.yield %s : f32
  } -> tensor<2x8xf32>
  %y = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel"]} ins(%r, %p : tensor<2x8xf32>, tensor<2x8xf32>) outs(%e : tensor<2x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %s = arith.addf %a, %b : f32
    linalg.yield %s : f32
  } -> tensor<2x8xf32>
  return %y : tensor<2x8xf32>
}


// -----

// Decode's gated activation: act(x Wg^T) * (x Wu^T) over one row is one
// kernel. Each task computes the same block of columns of both products
// into task-local tiles and applies the activation to them, writing only
// its result; the products' outputs never exist whole.
#x = affine_map<(d0, d1, d2) -> (d0, d2)>
#w = affine_map<(d0, d1, d2) -> (d1, d2)>
#o = affine_map<(d0, d1, d2) -> (d0, d1)>
#id = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @gated_decode
// CHECK-SAME: (%[[X:.*]]: tensor<1x8xf32>, %[[WG:.*]]: tensor<8x8xf32>, %[[WU:.*]]: tensor<8x8xf32>)
// CHECK: %[[R:.*]] = scf.forall (%[[B:.*]]) in (2) shared_outs(%[[O:.*]] = %{{.*}}) -> (tensor<1x8xf32>)
// CHECK: %[[N0:.*]] = arith.muli %[[B]], %c4
// CHECK: %[[G:.*]] = tensor.extract_slice %[[WG]][%[[N0]], 0] [4, 8] [1, 1]
// CHECK: vector.transfer_read %[[G]]
// CHECK: %[[U:.*]] = tensor.extract_slice %[[WU]][%[[N0]], 0] [4, 8] [1, 1]
// CHECK: vector.transfer_read %[[U]]
// CHECK: %[[T:.*]] = tensor.extract_slice %[[O]][0, %[[N0]]] [1, 4] [1, 1]
// CHECK: %[[E:.*]] = linalg.generic {{.*}} ins(%{{.*}}, %{{.*}} : tensor<1x4xf32>, tensor<1x4xf32>) outs(%[[T]] : tensor<1x4xf32>)
// CHECK: arith.negf
// CHECK: arith.mulf
// CHECK: tensor.parallel_insert_slice %[[E]] into %[[O]][0, %[[N0]]] [1, 4] [1, 1]
// CHECK-NOT: linalg.generic
// CHECK: return %[[R]]
func.func @gated_decode(%x: tensor<1x8xf32>, %wg: tensor<8x8xf32>, %wu: tensor<8x8xf32>) -> tensor<1x8xf32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<1x8xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<1x8xf32>) -> tensor<1x8xf32>
  %g = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %wg : tensor<1x8xf32>, tensor<8x8xf32>) outs(%f : tensor<1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b fastmath<reassoc,contract> : f32
    %s = arith.addf %c, %m fastmath<reassoc,contract> : f32
    linalg.yield %s : f32
  } -> tensor<1x8xf32>
  %u = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %wu : tensor<1x8xf32>, tensor<8x8xf32>) outs(%f : tensor<1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b fastmath<reassoc,contract> : f32
    %s = arith.addf %c, %m fastmath<reassoc,contract> : f32
    linalg.yield %s : f32
  } -> tensor<1x8xf32>
  %h = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel"]} ins(%g, %u : tensor<1x8xf32>, tensor<1x8xf32>) outs(%e : tensor<1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %n = arith.negf %a : f32
    %p = arith.mulf %n, %b : f32
    linalg.yield %p : f32
  } -> tensor<1x8xf32>
  return %h : tensor<1x8xf32>
}

// With prompt rows the two products are one sibling kernel (over both
// products' column blocks) and the activation stays a separate loop.
// CHECK-LABEL: func.func @gated_prompt
// CHECK: scf.forall (%{{.*}}) in (4) shared_outs(%{{.*}}) -> (tensor<?x16xf32>)
// CHECK: scf.forall (%{{.*}}) = (0) to (%{{.*}}) step (8)
// CHECK: arith.negf
func.func @gated_prompt(%x: tensor<?x8xf32>, %wg: tensor<8x8xf32>, %wu: tensor<8x8xf32>) -> tensor<?x8xf32> {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %s = tensor.dim %x, %c0 : tensor<?x8xf32>
  %e = tensor.empty(%s) : tensor<?x8xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<?x8xf32>) -> tensor<?x8xf32>
  %g = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %wg : tensor<?x8xf32>, tensor<8x8xf32>) outs(%f : tensor<?x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b fastmath<reassoc,contract> : f32
    %r = arith.addf %c, %m fastmath<reassoc,contract> : f32
    linalg.yield %r : f32
  } -> tensor<?x8xf32>
  %u = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %wu : tensor<?x8xf32>, tensor<8x8xf32>) outs(%f : tensor<?x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b fastmath<reassoc,contract> : f32
    %r = arith.addf %c, %m fastmath<reassoc,contract> : f32
    linalg.yield %r : f32
  } -> tensor<?x8xf32>
  %h = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel"]} ins(%g, %u : tensor<?x8xf32>, tensor<?x8xf32>) outs(%e : tensor<?x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %n = arith.negf %a : f32
    %p = arith.mulf %n, %b : f32
    linalg.yield %p : f32
  } -> tensor<?x8xf32>
  return %h : tensor<?x8xf32>
}
