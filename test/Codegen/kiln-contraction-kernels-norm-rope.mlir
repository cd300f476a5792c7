// RUN: kiln-opt %s --pass-pipeline='builtin.module(kiln-target{vector-bits=128},func.func(kiln-fuse-residual-add,kiln-kernel-strategy{block-cols=4},kiln-fold-norms,kiln-group-siblings,kiln-fuse-epilogues,kiln-contraction-kernels,kiln-parallelize-rows),canonicalize,cse)' --split-input-file | FileCheck %s
// RUN: kiln-opt %s --pass-pipeline='builtin.module(kiln-target{vector-bits=128},func.func(kiln-fuse-residual-add,kiln-kernel-strategy{block-cols=12},kiln-fold-norms,kiln-group-siblings,kiln-fuse-epilogues,kiln-contraction-kernels,kiln-parallelize-rows),canonicalize,cse)' --split-input-file | FileCheck %s --check-prefix=PACKED

// An RMSNorm feeding a prompt's product: x = h * rsqrt(ss / 8 + eps) * g,
// an elementwise generic over h, a per-row input (the sum of squares) and
// a per-column one (the gain). The kernel reads h itself: g multiplies x's
// vectors in the dot-product tiles (or the weights as they are packed),
// and each row's scale, computed once per row (in a parallel loop over
// blocks of rows, kiln-parallelize-rows), multiplies the row's sums before
// they are added to the output. The normalised activation is never
// written.
#id = affine_map<(d0, d1) -> (d0, d1)>
#row = affine_map<(d0, d1) -> (d0)>
#col = affine_map<(d0, d1) -> (d1)>
#x = affine_map<(d0, d1, d2) -> (d0, d2)>
#w = affine_map<(d0, d1, d2) -> (d1, d2)>
#o = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func.func @norm_prompt
// CHECK-SAME: (%[[H:.*]]: tensor<?x16xf32>, %[[SS:.*]]: tensor<?xf32>, %[[G:.*]]: tensor<16xf32>, %[[W:.*]]: tensor<8x16xf32>)
// CHECK: %[[S:.*]] = scf.forall
// CHECK: tensor.extract_slice %[[SS]]
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel"]} ins(%{{.*}} : tensor<?xf32>)
// CHECK: arith.divf
// CHECK: arith.addf
// CHECK: math.rsqrt
// CHECK: scf.forall
// CHECK: %[[GV:.*]] = vector.transfer_read %[[G]][%{{.*}}]{{.*}} : tensor<16xf32>, vector<4xf32>
// CHECK: %[[XV:.*]] = vector.transfer_read %[[H]][{{.*}}]{{.*}} : tensor<?x16xf32>, vector<4xf32>
// CHECK: arith.mulf %[[XV]], %[[GV]] : vector<4xf32>
// CHECK: vector.reduction <add>
// CHECK: %[[SM:.*]] = tensor.extract %[[S]][%{{.*}}] : tensor<?xf32>
// CHECK: %[[SV:.*]] = vector.broadcast %[[SM]]
// CHECK: arith.mulf %{{.*}}, %[[SV]]
// CHECK: scf.forall.in_parallel
// CHECK-NOT: linalg.generic
// CHECK: return

// PACKED-LABEL: func.func @norm_prompt
// PACKED-SAME: (%[[H:.*]]: tensor<?x16xf32>, %[[SS:.*]]: tensor<?xf32>, %[[G:.*]]: tensor<16xf32>, %[[W:.*]]: tensor<8x16xf32>)
// The gain goes into the packed weights: each row of W's 8 x 8 block is
// multiplied by g[k .. k + 8] before the transpose.
// PACKED: %[[GP:.*]] = vector.transfer_read %[[G]][%{{.*}}]{{.*}} : tensor<16xf32>, vector<8xf32>
// PACKED: %[[WV:.*]] = vector.transfer_read %[[W]]{{.*}} : tensor<8x16xf32>, vector<8xf32>
// PACKED: arith.mulf %[[WV]], %[[GP]] : vector<8xf32>
// PACKED: vector.transfer_write {{.*}} : vector<8xf32>, tensor<16x8xf32>
// The outer-product tiles broadcast h's elements; the scale multiplies
// each row's accumulators.
// PACKED: tensor.extract %[[H]]
// PACKED: vector.fma
// PACKED: tensor.extract %{{.*}} : tensor<?xf32>
// PACKED: vector.broadcast
// PACKED: arith.mulf
func.func @norm_prompt(%h: tensor<?x16xf32>, %ss: tensor<?xf32>, %g: tensor<16xf32>, %w: tensor<8x16xf32>) -> tensor<?x8xf32> {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %d = arith.constant 16.0 : f32
  %eps = arith.constant 1.0e-5 : f32
  %m = tensor.dim %h, %c0 : tensor<?x16xf32>
  %ex = tensor.empty(%m) : tensor<?x16xf32>
  %x = linalg.generic {indexing_maps = [#id, #row, #col, #id], iterator_types = ["parallel", "parallel"]} ins(%h, %ss, %g : tensor<?x16xf32>, tensor<?xf32>, tensor<16xf32>) outs(%ex : tensor<?x16xf32>) {
  ^bb0(%a: f32, %s: f32, %gain: f32, %out: f32):
    %ms = arith.divf %s, %d : f32
    %v = arith.addf %ms, %eps : f32
    %inv = math.rsqrt %v : f32
    %n = arith.mulf %a, %inv : f32
    %y = arith.mulf %n, %gain : f32
    linalg.yield %y : f32
  } -> tensor<?x16xf32>
  %e = tensor.empty(%m) : tensor<?x8xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<?x8xf32>) -> tensor<?x8xf32>
  %p = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %w : tensor<?x16xf32>, tensor<8x16xf32>) outs(%f : tensor<?x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %mm = arith.mulf %a, %b fastmath<reassoc,contract> : f32
    %r = arith.addf %c, %mm fastmath<reassoc,contract> : f32
    linalg.yield %r : f32
  } -> tensor<?x8xf32>
  return %p : tensor<?x8xf32>
}

// -----

// One row (decode): the norm stays a separate loop. Its few hundred
// elements cost less than scaling x again in every row of W.
#id = affine_map<(d0, d1) -> (d0, d1)>
#row = affine_map<(d0, d1) -> (d0)>
#col = affine_map<(d0, d1) -> (d1)>
#x = affine_map<(d0, d1, d2) -> (d0, d2)>
#w = affine_map<(d0, d1, d2) -> (d1, d2)>
#o = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func.func @norm_decode
// CHECK: %[[N:.*]] = linalg.generic
// CHECK: math.rsqrt
// CHECK: scf.forall
// CHECK: vector.transfer_read %[[N]]
func.func @norm_decode(%h: tensor<1x16xf32>, %ss: tensor<1xf32>, %g: tensor<16xf32>, %w: tensor<8x16xf32>) -> tensor<1x8xf32> {
  %zero = arith.constant 0.0 : f32
  %d = arith.constant 16.0 : f32
  %ex = tensor.empty() : tensor<1x16xf32>
  %x = linalg.generic {indexing_maps = [#id, #row, #col, #id], iterator_types = ["parallel", "parallel"]} ins(%h, %ss, %g : tensor<1x16xf32>, tensor<1xf32>, tensor<16xf32>) outs(%ex : tensor<1x16xf32>) {
  ^bb0(%a: f32, %s: f32, %gain: f32, %out: f32):
    %ms = arith.divf %s, %d : f32
    %inv = math.rsqrt %ms : f32
    %n = arith.mulf %a, %inv : f32
    %y = arith.mulf %n, %gain : f32
    linalg.yield %y : f32
  } -> tensor<1x16xf32>
  %e = tensor.empty() : tensor<1x8xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<1x8xf32>) -> tensor<1x8xf32>
  %p = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %w : tensor<1x16xf32>, tensor<8x16xf32>) outs(%f : tensor<1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %mm = arith.mulf %a, %b fastmath<reassoc,contract> : f32
    %r = arith.addf %c, %mm fastmath<reassoc,contract> : f32
    linalg.yield %r : f32
  } -> tensor<1x8xf32>
  return %p : tensor<1x8xf32>
}

// -----

// Not folded: the normalised x has a user besides products (it would be
// computed twice), or its body is not a product of h, per-row and
// per-column factors (LayerNorm's shift).
#id = affine_map<(d0, d1) -> (d0, d1)>
#row = affine_map<(d0, d1) -> (d0)>
#col = affine_map<(d0, d1) -> (d1)>
#x = affine_map<(d0, d1, d2) -> (d0, d2)>
#w = affine_map<(d0, d1, d2) -> (d1, d2)>
#o = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func.func @norm_not_folded
// CHECK: %[[N1:.*]] = scf.forall
// CHECK: math.rsqrt
// CHECK: %[[N2:.*]] = scf.forall
// CHECK: arith.subf
// CHECK: scf.forall
// CHECK: vector.transfer_read %[[N1]]
// CHECK: scf.forall
// CHECK: vector.transfer_read %[[N2]]
// CHECK: return %[[N1]]
func.func @norm_not_folded(%h: tensor<?x16xf32>, %ss: tensor<?xf32>, %g: tensor<16xf32>, %w: tensor<8x16xf32>) -> (tensor<?x16xf32>, tensor<?x8xf32>, tensor<?x8xf32>) {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %m = tensor.dim %h, %c0 : tensor<?x16xf32>
  %ex = tensor.empty(%m) : tensor<?x16xf32>
  %x = linalg.generic {indexing_maps = [#id, #row, #col, #id], iterator_types = ["parallel", "parallel"]} ins(%h, %ss, %g : tensor<?x16xf32>, tensor<?xf32>, tensor<16xf32>) outs(%ex : tensor<?x16xf32>) {
  ^bb0(%a: f32, %s: f32, %gain: f32, %out: f32):
    %inv = math.rsqrt %s : f32
    %n = arith.mulf %a, %inv : f32
    %y = arith.mulf %n, %gain : f32
    linalg.yield %y : f32
  } -> tensor<?x16xf32>
  %x2 = linalg.generic {indexing_maps = [#id, #row, #col, #id], iterator_types = ["parallel", "parallel"]} ins(%h, %ss, %g : tensor<?x16xf32>, tensor<?xf32>, tensor<16xf32>) outs(%ex : tensor<?x16xf32>) {
  ^bb0(%a: f32, %s: f32, %gain: f32, %out: f32):
    %c = arith.subf %a, %s : f32
    %y = arith.mulf %c, %gain : f32
    linalg.yield %y : f32
  } -> tensor<?x16xf32>
  %e = tensor.empty(%m) : tensor<?x8xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<?x8xf32>) -> tensor<?x8xf32>
  %p = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %w : tensor<?x16xf32>, tensor<8x16xf32>) outs(%f : tensor<?x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %mm = arith.mulf %a, %b fastmath<reassoc,contract> : f32
    %r = arith.addf %c, %mm fastmath<reassoc,contract> : f32
    linalg.yield %r : f32
  } -> tensor<?x8xf32>
  %p2 = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x2, %w : tensor<?x16xf32>, tensor<8x16xf32>) outs(%f : tensor<?x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %mm = arith.mulf %a, %b fastmath<reassoc,contract> : f32
    %r = arith.addf %c, %mm fastmath<reassoc,contract> : f32
    linalg.yield %r : f32
  } -> tensor<?x8xf32>
  return %x, %p, %p2 : tensor<?x16xf32>, tensor<?x8xf32>, tensor<?x8xf32>
}

// -----

// Decode: RoPE on q and k (generics that read their input's partner column
// within the same head of 4: kiln-fuse-epilogues marks them kiln.epilogue =
// 4) becomes the epilogue of the q/k/v kernel. Blocks cover whole heads; each task computes its block
// into a task-local tile, then writes q's and k's blocks rotated (the body
// with the column offset by the block's start and the partner read from
// the tile) and v's copied. The kernel goes where the first RoPE was, after
// the cos/sin table it reads; the RoPE generics are gone.
#x = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#w = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#o = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#id = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-LABEL: func.func @rope
// CHECK-SAME: (%[[X:.*]]: tensor<1x1x8xf32>, %[[WQ:.*]]: tensor<8x8xf32>, %[[WK:.*]]: tensor<4x8xf32>, %[[WV:.*]]: tensor<4x8xf32>, %[[CS:.*]]: tensor<2xf32>)
// CHECK: %[[SIN:.*]] = linalg.generic
// CHECK: math.sin
// CHECK: %[[R:.*]] = scf.forall (%[[B:.*]]) in (4) shared_outs(%[[O:.*]] = %{{.*}}) -> (tensor<1x16xf32>)
// CHECK: %[[N0:.*]] = arith.muli %{{.*}}, %c4
// CHECK: %[[T:.*]] = tensor.empty() : tensor<1x4xf32>
// CHECK: %[[P:.*]] = scf.for {{.*}} iter_args(%{{.*}} = %[[T]])
// CHECK: scf.index_switch
// CHECK: case 0 {
// CHECK: linalg.generic {{.*}} ins(%[[P]] : tensor<1x4xf32>)
// CHECK: %[[C:.*]] = linalg.index 1
// CHECK: arith.addi %[[N0]], %[[C]]
// CHECK: tensor.extract %[[SIN]]
// CHECK: tensor.extract %[[P]][%c0, %{{.*}}] : tensor<1x4xf32>
// CHECK: arith.negf
// CHECK: case 1 {
// CHECK: linalg.generic {{.*}} ins(%[[P]] : tensor<1x4xf32>)
// CHECK: default {
// CHECK: linalg.copy ins(%[[P]] : tensor<1x4xf32>)
// CHECK: tensor.parallel_insert_slice %{{.*}} into %[[O]]
// CHECK-NOT: linalg.generic
// CHECK: return
func.func @rope(%x: tensor<1x1x8xf32>, %wq: tensor<8x8xf32>, %wk: tensor<4x8xf32>, %wv: tensor<4x8xf32>, %freq: tensor<2xf32>) -> (tensor<1x1x8xf32>, tensor<1x1x4xf32>, tensor<1x1x4xf32>) {
  %c0 = arith.constant 0 : index
  %c2 = arith.constant 2 : index
  %c4 = arith.constant 4 : index
  %zero = arith.constant 0.0 : f32
  %e8 = tensor.empty() : tensor<1x1x8xf32>
  %f8 = linalg.fill ins(%zero : f32) outs(%e8 : tensor<1x1x8xf32>) -> tensor<1x1x8xf32>
  %e4 = tensor.empty() : tensor<1x1x4xf32>
  %f4 = linalg.fill ins(%zero : f32) outs(%e4 : tensor<1x1x4xf32>) -> tensor<1x1x4xf32>
  %q = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%x, %wq : tensor<1x1x8xf32>, tensor<8x8xf32>) outs(%f8 : tensor<1x1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b fastmath<reassoc,contract> : f32
    %r = arith.addf %c, %m fastmath<reassoc,contract> : f32
    linalg.yield %r : f32
  } -> tensor<1x1x8xf32>
  %k = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%x, %wk : tensor<1x1x8xf32>, tensor<4x8xf32>) outs(%f4 : tensor<1x1x4xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b fastmath<reassoc,contract> : f32
    %r = arith.addf %c, %m fastmath<reassoc,contract> : f32
    linalg.yield %r : f32
  } -> tensor<1x1x4xf32>
  %v = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%x, %wv : tensor<1x1x8xf32>, tensor<4x8xf32>) outs(%f4 : tensor<1x1x4xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b fastmath<reassoc,contract> : f32
    %r = arith.addf %c, %m fastmath<reassoc,contract> : f32
    linalg.yield %r : f32
  } -> tensor<1x1x4xf32>
  // The table after the last product, as kv-cache lowering leaves it.
  %es = tensor.empty() : tensor<2xf32>
  %sin = linalg.generic {indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>], iterator_types = ["parallel"]} ins(%freq : tensor<2xf32>) outs(%es : tensor<2xf32>) {
  ^bb0(%a: f32, %o: f32):
    %s = math.sin %a : f32
    linalg.yield %s : f32
  } -> tensor<2xf32>
  %rq = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel", "parallel"]} ins(%q : tensor<1x1x8xf32>) outs(%e8 : tensor<1x1x8xf32>) {
  ^bb0(%a: f32, %o: f32):
    %col = linalg.index 2 : index
    %j = arith.remui %col, %c4 : index
    %i = arith.remui %j, %c2 : index
    %first = arith.cmpi ult, %j, %c2 : index
    %up = arith.addi %col, %c2 : index
    %down = arith.subi %col, %c2 : index
    %partner = arith.select %first, %up, %down : index
    %s = tensor.extract %sin[%i] : tensor<2xf32>
    %other = tensor.extract %q[%c0, %c0, %partner] : tensor<1x1x8xf32>
    %rot = arith.mulf %other, %s : f32
    %neg = arith.negf %rot : f32
    %sr = arith.select %first, %neg, %rot : f32
    %y = arith.addf %a, %sr : f32
    linalg.yield %y : f32
  } -> tensor<1x1x8xf32>
  %rk = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel", "parallel"]} ins(%k : tensor<1x1x4xf32>) outs(%e4 : tensor<1x1x4xf32>) {
  ^bb0(%a: f32, %o: f32):
    %col = linalg.index 2 : index
    %j = arith.remui %col, %c4 : index
    %i = arith.remui %j, %c2 : index
    %first = arith.cmpi ult, %j, %c2 : index
    %up = arith.addi %col, %c2 : index
    %down = arith.subi %col, %c2 : index
    %partner = arith.select %first, %up, %down : index
    %s = tensor.extract %sin[%i] : tensor<2xf32>
    %other = tensor.extract %k[%c0, %c0, %partner] : tensor<1x1x4xf32>
    %rot = arith.mulf %other, %s : f32
    %neg = arith.negf %rot : f32
    %sr = arith.select %first, %neg, %rot : f32
    %y = arith.addf %a, %sr : f32
    linalg.yield %y : f32
  } -> tensor<1x1x4xf32>
  return %rq, %rk, %v : tensor<1x1x8xf32>, tensor<1x1x4xf32>, tensor<1x1x4xf32>
}

// -----

// A generic that reads q across the whole row (column 7 - c) is not an
// epilogue of a product alone (its kernel would be one task): it stays a loop
// after the kernel.
#x = affine_map<(d0, d1, d2) -> (d0, d2)>
#w = affine_map<(d0, d1, d2) -> (d1, d2)>
#o = affine_map<(d0, d1, d2) -> (d0, d1)>
#id = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @not_rope
// CHECK: %[[Q:.*]] = scf.forall
// CHECK-NOT: linalg.index
// CHECK: scf.forall.in_parallel
// CHECK: linalg.generic {{.*}} ins(%[[Q]] : tensor<1x8xf32>)
// CHECK: tensor.extract %[[Q]]
func.func @not_rope(%x: tensor<1x8xf32>, %wq: tensor<8x8xf32>) -> tensor<1x8xf32> {
  %c0 = arith.constant 0 : index
  %c7 = arith.constant 7 : index
  %zero = arith.constant 0.0 : f32
  %e8 = tensor.empty() : tensor<1x8xf32>
  %f8 = linalg.fill ins(%zero : f32) outs(%e8 : tensor<1x8xf32>) -> tensor<1x8xf32>
  %q = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %wq : tensor<1x8xf32>, tensor<8x8xf32>) outs(%f8 : tensor<1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b fastmath<reassoc,contract> : f32
    %r = arith.addf %c, %m fastmath<reassoc,contract> : f32
    linalg.yield %r : f32
  } -> tensor<1x8xf32>
  %rq = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]} ins(%q : tensor<1x8xf32>) outs(%e8 : tensor<1x8xf32>) {
  ^bb0(%a: f32, %o: f32):
    %col = linalg.index 1 : index
    %mirror = arith.subi %c7, %col : index
    %other = tensor.extract %q[%c0, %mirror] : tensor<1x8xf32>
    %y = arith.addf %a, %other : f32
    linalg.yield %y : f32
  } -> tensor<1x8xf32>
  return %rq : tensor<1x8xf32>
}

// -----

// A prompt keeps RoPE as a parallel loop of its own after the kernel (as an
// epilogue it measured slower on prefill).
#x = affine_map<(d0, d1, d2) -> (d0, d2)>
#w = affine_map<(d0, d1, d2) -> (d1, d2)>
#o = affine_map<(d0, d1, d2) -> (d0, d1)>
#id = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @rope_prompt
// CHECK: %[[Q:.*]] = scf.forall (%{{.*}}) in (2)
// CHECK: scf.forall (%{{.*}}) = (0) to (%{{.*}}) step (8)
// CHECK: linalg.generic
// CHECK: tensor.extract %[[Q]]
func.func @rope_prompt(%x: tensor<?x8xf32>, %wq: tensor<8x8xf32>) -> tensor<?x8xf32> {
  %c0 = arith.constant 0 : index
  %c2 = arith.constant 2 : index
  %c4 = arith.constant 4 : index
  %zero = arith.constant 0.0 : f32
  %m = tensor.dim %x, %c0 : tensor<?x8xf32>
  %e8 = tensor.empty(%m) : tensor<?x8xf32>
  %f8 = linalg.fill ins(%zero : f32) outs(%e8 : tensor<?x8xf32>) -> tensor<?x8xf32>
  %q = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %wq : tensor<?x8xf32>, tensor<8x8xf32>) outs(%f8 : tensor<?x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %mm = arith.mulf %a, %b fastmath<reassoc,contract> : f32
    %r = arith.addf %c, %mm fastmath<reassoc,contract> : f32
    linalg.yield %r : f32
  } -> tensor<?x8xf32>
  %rq = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]} ins(%q : tensor<?x8xf32>) outs(%e8 : tensor<?x8xf32>) {
  ^bb0(%a: f32, %o: f32):
    %row = linalg.index 0 : index
    %col = linalg.index 1 : index
    %j = arith.remui %col, %c4 : index
    %first = arith.cmpi ult, %j, %c2 : index
    %up = arith.addi %col, %c2 : index
    %down = arith.subi %col, %c2 : index
    %partner = arith.select %first, %up, %down : index
    %other = tensor.extract %q[%row, %partner] : tensor<?x8xf32>
    %y = arith.addf %a, %other : f32
    linalg.yield %y : f32
  } -> tensor<?x8xf32>
  return %rq : tensor<?x8xf32>
}
