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


// -----

#x = affine_map<(d0, d1, d2) -> (d0, d2)>
#w = affine_map<(d0, d1, d2) -> (d1, d2)>
#o = affine_map<(d0, d1, d2) -> (d0, d1)>
#id = affine_map<(d0, d1) -> (d0, d1)>

// Tests that an epilogue mark that is not a positive column count is refused.
func.func @malformed_epilogue(%x: tensor<1x16xf32>, %wq: tensor<8x16xf32>) -> tensor<1x8xf32> {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %e8 = tensor.empty() : tensor<1x8xf32>
  %f8 = linalg.fill ins(%zero : f32) outs(%e8 : tensor<1x8xf32>) -> tensor<1x8xf32>
  %q = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"], kiln.kernel = {block_cols = 2 : i64, dot_rows = 2 : i64, outer_rows = 6 : i64, pack_min_rows = 16 : i64, packed = false, role = "decode", vector_lanes = 8 : i64}} ins(%x, %wq : tensor<1x16xf32>, tensor<8x16xf32>) outs(%f8 : tensor<1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %c, %p : f32
    linalg.yield %s : f32
  } -> tensor<1x8xf32>
  // expected-error @below {{has a malformed 'kiln.epilogue'}}
  %r = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"], kiln.epilogue = 0 : i64} ins(%q : tensor<1x8xf32>) outs(%e8 : tensor<1x8xf32>) {
  ^bb0(%a: f32, %o: f32):
    %col = linalg.index 1 : index
    %c7 = arith.constant 7 : index
    %partner = arith.subi %c7, %col : index
    %other = tensor.extract %q[%c0, %partner] : tensor<1x8xf32>
    %y = arith.addf %a, %other : f32
    linalg.yield %y : f32
  } -> tensor<1x8xf32>
  return %r : tensor<1x8xf32>
}

// -----

#x = affine_map<(d0, d1, d2) -> (d0, d2)>
#w = affine_map<(d0, d1, d2) -> (d1, d2)>
#o = affine_map<(d0, d1, d2) -> (d0, d1)>
#id = affine_map<(d0, d1) -> (d0, d1)>

// Tests that an epilogue marked with groups of 2 columns that reads across
// the whole row is refused, not emitted wrong.
func.func @epilogue_reads_outside(%x: tensor<1x16xf32>, %wq: tensor<8x16xf32>) -> tensor<1x8xf32> {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %e8 = tensor.empty() : tensor<1x8xf32>
  %f8 = linalg.fill ins(%zero : f32) outs(%e8 : tensor<1x8xf32>) -> tensor<1x8xf32>
  %q = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"], kiln.kernel = {block_cols = 2 : i64, dot_rows = 2 : i64, outer_rows = 6 : i64, pack_min_rows = 16 : i64, packed = false, role = "decode", vector_lanes = 8 : i64}} ins(%x, %wq : tensor<1x16xf32>, tensor<8x16xf32>) outs(%f8 : tensor<1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %c, %p : f32
    linalg.yield %s : f32
  } -> tensor<1x8xf32>
  // expected-error @below {{reads its input outside aligned groups of that many columns}}
  %r = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"], kiln.epilogue = 2 : i64} ins(%q : tensor<1x8xf32>) outs(%e8 : tensor<1x8xf32>) {
  ^bb0(%a: f32, %o: f32):
    %col = linalg.index 1 : index
    %c7 = arith.constant 7 : index
    %partner = arith.subi %c7, %col : index
    %other = tensor.extract %q[%c0, %partner] : tensor<1x8xf32>
    %y = arith.addf %a, %other : f32
    linalg.yield %y : f32
  } -> tensor<1x8xf32>
  return %r : tensor<1x8xf32>
}

// -----

#x = affine_map<(d0, d1, d2) -> (d0, d2)>
#w = affine_map<(d0, d1, d2) -> (d1, d2)>
#o = affine_map<(d0, d1, d2) -> (d0, d1)>
#id = affine_map<(d0, d1) -> (d0, d1)>

// Tests that a group of products that do not read the same x is refused.
func.func @group_of_strangers(%x: tensor<1x16xf32>, %y: tensor<1x16xf32>, %wq: tensor<8x16xf32>) -> (tensor<1x8xf32>, tensor<1x8xf32>) {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %e8 = tensor.empty() : tensor<1x8xf32>
  %f8 = linalg.fill ins(%zero : f32) outs(%e8 : tensor<1x8xf32>) -> tensor<1x8xf32>
  // expected-error @below {{with products that do not read the same x}}
  %q = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"], kiln.kernel = {block_cols = 2 : i64, dot_rows = 2 : i64, outer_rows = 6 : i64, pack_min_rows = 16 : i64, packed = false, role = "decode", vector_lanes = 8 : i64}, kiln.group = 0 : i64} ins(%x, %wq : tensor<1x16xf32>, tensor<8x16xf32>) outs(%f8 : tensor<1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %c, %p : f32
    linalg.yield %s : f32
  } -> tensor<1x8xf32>
  %k = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"], kiln.kernel = {block_cols = 2 : i64, dot_rows = 2 : i64, outer_rows = 6 : i64, pack_min_rows = 16 : i64, packed = false, role = "decode", vector_lanes = 8 : i64}, kiln.group = 0 : i64} ins(%y, %wq : tensor<1x16xf32>, tensor<8x16xf32>) outs(%f8 : tensor<1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %c, %p : f32
    linalg.yield %s : f32
  } -> tensor<1x8xf32>
  return %q, %k : tensor<1x8xf32>, tensor<1x8xf32>
}

// -----

#x = affine_map<(d0, d1, d2) -> (d0, d2)>
#w = affine_map<(d0, d1, d2) -> (d1, d2)>
#o = affine_map<(d0, d1, d2) -> (d0, d1)>
#id = affine_map<(d0, d1) -> (d0, d1)>

// Tests that a fold mark on a generic that is not a norm is refused.
func.func @fold_not_a_norm(%h: tensor<1x16xf32>, %wq: tensor<8x16xf32>) -> tensor<1x8xf32> {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %e8 = tensor.empty() : tensor<1x8xf32>
  %f8 = linalg.fill ins(%zero : f32) outs(%e8 : tensor<1x8xf32>) -> tensor<1x8xf32>
  %e16 = tensor.empty() : tensor<1x16xf32>
  // expected-error @below {{is marked 'kiln.fold_into_products' but is not a norm}}
  %x = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"], kiln.fold_into_products} ins(%h : tensor<1x16xf32>) outs(%e16 : tensor<1x16xf32>) {
  ^bb0(%a: f32, %o: f32):
    %y = math.exp %a : f32
    linalg.yield %y : f32
  } -> tensor<1x16xf32>
  %q = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"], kiln.kernel = {block_cols = 2 : i64, dot_rows = 2 : i64, outer_rows = 6 : i64, pack_min_rows = 16 : i64, packed = false, role = "decode", vector_lanes = 8 : i64}} ins(%x, %wq : tensor<1x16xf32>, tensor<8x16xf32>) outs(%f8 : tensor<1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %c, %p : f32
    linalg.yield %s : f32
  } -> tensor<1x8xf32>
  return %q : tensor<1x8xf32>
}
