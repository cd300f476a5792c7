// RUN: kiln-opt %s --pass-pipeline='builtin.module(kiln-target{vector-bits=128},func.func(kiln-kernel-strategy,kiln-group-siblings,kiln-fuse-epilogues))' -split-input-file | FileCheck %s

// Decode: the gated activation over a group of exactly two matrix-vector
// products (gate/up), each result used by it alone, becomes their kernel's
// epilogue (columns 1: elementwise).
#x = affine_map<(d0, d1, d2) -> (d0, d2)>
#w = affine_map<(d0, d1, d2) -> (d1, d2)>
#o = affine_map<(d0, d1, d2) -> (d0, d1)>
#id = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @gated
// CHECK: %[[G:.*]] = linalg.generic {{.*}}kiln.group = 0 : i64
// CHECK: %[[U:.*]] = linalg.generic {{.*}}kiln.group = 0 : i64
// CHECK: linalg.generic {{.*}} ins(%[[G]], %[[U]] : {{.*}}) {{.*}}attrs = {kiln.epilogue = 1 : i64}
func.func @gated(%x: tensor<1x16xf32>, %wg: tensor<8x16xf32>, %wu: tensor<8x16xf32>) -> tensor<1x8xf32> {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %e8 = tensor.empty() : tensor<1x8xf32>
  %f8 = linalg.fill ins(%zero : f32) outs(%e8 : tensor<1x8xf32>) -> tensor<1x8xf32>
  %pg = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %wg : tensor<1x16xf32>, tensor<8x16xf32>) outs(%f8 : tensor<1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %c, %p : f32
    linalg.yield %s : f32
  } -> tensor<1x8xf32>
  %pu = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %wu : tensor<1x16xf32>, tensor<8x16xf32>) outs(%f8 : tensor<1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %c, %p : f32
    linalg.yield %s : f32
  } -> tensor<1x8xf32>
  %y = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel"]} ins(%pg, %pu : tensor<1x8xf32>, tensor<1x8xf32>) outs(%e8 : tensor<1x8xf32>) {
  ^bb0(%g: f32, %u: f32, %o: f32):
    %n = arith.negf %g : f32
    %e = math.exp %n : f32
    %one = arith.constant 1.0 : f32
    %d = arith.addf %e, %one : f32
    %sg = arith.divf %g, %d : f32
    %r = arith.mulf %sg, %u : f32
    linalg.yield %r : f32
  } -> tensor<1x8xf32>
  return %y : tensor<1x8xf32>
}

// -----

// A prompt's gated activation stays a loop of its own (two packed blocks
// per task measured slower than one kernel over both products).
#x = affine_map<(d0, d1, d2) -> (d0, d2)>
#w = affine_map<(d0, d1, d2) -> (d1, d2)>
#o = affine_map<(d0, d1, d2) -> (d0, d1)>
#id = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @gated_prompt
// CHECK-NOT: kiln.epilogue
// CHECK: return
func.func @gated_prompt(%x: tensor<?x16xf32>, %wg: tensor<8x16xf32>, %wu: tensor<8x16xf32>) -> tensor<?x8xf32> {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %m = tensor.dim %x, %c0 : tensor<?x16xf32>
  %e8 = tensor.empty(%m) : tensor<?x8xf32>
  %f8 = linalg.fill ins(%zero : f32) outs(%e8 : tensor<?x8xf32>) -> tensor<?x8xf32>
  %pg = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %wg : tensor<?x16xf32>, tensor<8x16xf32>) outs(%f8 : tensor<?x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %c, %p : f32
    linalg.yield %s : f32
  } -> tensor<?x8xf32>
  %pu = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %wu : tensor<?x16xf32>, tensor<8x16xf32>) outs(%f8 : tensor<?x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %c, %p : f32
    linalg.yield %s : f32
  } -> tensor<?x8xf32>
  %y = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel"]} ins(%pg, %pu : tensor<?x8xf32>, tensor<?x8xf32>) outs(%e8 : tensor<?x8xf32>) {
  ^bb0(%g: f32, %u: f32, %o: f32):
    %n = arith.negf %g : f32
    %e = math.exp %n : f32
    %one = arith.constant 1.0 : f32
    %d = arith.addf %e, %one : f32
    %sg = arith.divf %g, %d : f32
    %r = arith.mulf %sg, %u : f32
    linalg.yield %r : f32
  } -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// -----

// RoPE with rotated halves over heads of 4: column c reads c + 2 or c - 2
// within its head. The smallest aligned groups that hold every read are 4
// columns (a head).
#x = affine_map<(d0, d1, d2) -> (d0, d2)>
#w = affine_map<(d0, d1, d2) -> (d1, d2)>
#o = affine_map<(d0, d1, d2) -> (d0, d1)>
#id = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @rope_halves
// CHECK: linalg.generic {{.*}}attrs = {kiln.epilogue = 4 : i64}
func.func @rope_halves(%x: tensor<1x16xf32>, %wq: tensor<8x16xf32>) -> tensor<1x8xf32> {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %e8 = tensor.empty() : tensor<1x8xf32>
  %f8 = linalg.fill ins(%zero : f32) outs(%e8 : tensor<1x8xf32>) -> tensor<1x8xf32>
  %q = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %wq : tensor<1x16xf32>, tensor<8x16xf32>) outs(%f8 : tensor<1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %c, %p : f32
    linalg.yield %s : f32
  } -> tensor<1x8xf32>
  %r = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]} ins(%q : tensor<1x8xf32>) outs(%e8 : tensor<1x8xf32>) {
  ^bb0(%a: f32, %o: f32):
    %col = linalg.index 1 : index
    %c2 = arith.constant 2 : index
    %c4 = arith.constant 4 : index
    %j = arith.remui %col, %c4 : index
    %first = arith.cmpi ult, %j, %c2 : index
    %up = arith.addi %col, %c2 : index
    %down = arith.subi %col, %c2 : index
    %partner = arith.select %first, %up, %down : index
    %other = tensor.extract %q[%c0, %partner] : tensor<1x8xf32>
    %y = arith.addf %a, %other : f32
    linalg.yield %y : f32
  } -> tensor<1x8xf32>
  return %r : tensor<1x8xf32>
}

// -----

// RoPE on interleaved pairs: column c reads c + 1 (even c) or c - 1: groups
// of 2 columns.
#x = affine_map<(d0, d1, d2) -> (d0, d2)>
#w = affine_map<(d0, d1, d2) -> (d1, d2)>
#o = affine_map<(d0, d1, d2) -> (d0, d1)>
#id = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @rope_pairs
// CHECK: linalg.generic {{.*}}attrs = {kiln.epilogue = 2 : i64}
func.func @rope_pairs(%x: tensor<1x16xf32>, %wq: tensor<8x16xf32>) -> tensor<1x8xf32> {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %e8 = tensor.empty() : tensor<1x8xf32>
  %f8 = linalg.fill ins(%zero : f32) outs(%e8 : tensor<1x8xf32>) -> tensor<1x8xf32>
  %q = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %wq : tensor<1x16xf32>, tensor<8x16xf32>) outs(%f8 : tensor<1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %c, %p : f32
    linalg.yield %s : f32
  } -> tensor<1x8xf32>
  %r = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]} ins(%q : tensor<1x8xf32>) outs(%e8 : tensor<1x8xf32>) {
  ^bb0(%a: f32, %o: f32):
    %col = linalg.index 1 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %odd = arith.remui %col, %c2 : index
    %even = arith.cmpi eq, %odd, %c0 : index
    %up = arith.addi %col, %c1 : index
    %down = arith.subi %col, %c1 : index
    %partner = arith.select %even, %up, %down : index
    %other = tensor.extract %q[%c0, %partner] : tensor<1x8xf32>
    %y = arith.addf %a, %other : f32
    linalg.yield %y : f32
  } -> tensor<1x8xf32>
  return %r : tensor<1x8xf32>
}

// -----

// Reads across the whole row (column 7 - c) of a product that is a kernel
// of its own: as an epilogue it would leave the kernel one task. Unmarked.
#x = affine_map<(d0, d1, d2) -> (d0, d2)>
#w = affine_map<(d0, d1, d2) -> (d1, d2)>
#o = affine_map<(d0, d1, d2) -> (d0, d1)>
#id = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @mirror
// CHECK-NOT: kiln.epilogue
// CHECK: return
func.func @mirror(%x: tensor<1x16xf32>, %wq: tensor<8x16xf32>) -> tensor<1x8xf32> {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %e8 = tensor.empty() : tensor<1x8xf32>
  %f8 = linalg.fill ins(%zero : f32) outs(%e8 : tensor<1x8xf32>) -> tensor<1x8xf32>
  %q = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %wq : tensor<1x16xf32>, tensor<8x16xf32>) outs(%f8 : tensor<1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %c, %p : f32
    linalg.yield %s : f32
  } -> tensor<1x8xf32>
  %r = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]} ins(%q : tensor<1x8xf32>) outs(%e8 : tensor<1x8xf32>) {
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

// q and v are one kernel; v's result is used first, before the table that
// q's RoPE reads is computed, so the kernel (placed at that first use)
// could not apply it. Unmarked.
#x = affine_map<(d0, d1, d2) -> (d0, d2)>
#w = affine_map<(d0, d1, d2) -> (d1, d2)>
#o = affine_map<(d0, d1, d2) -> (d0, d1)>
#id = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @table_too_late
// CHECK: kiln.group = 0
// CHECK: kiln.group = 0
// CHECK-NOT: kiln.epilogue
// CHECK: return
func.func @table_too_late(%x: tensor<1x16xf32>, %wq: tensor<8x16xf32>, %wv: tensor<8x16xf32>, %freq: tensor<4xf32>) -> (tensor<1x8xf32>, tensor<1x8xf32>) {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %e8 = tensor.empty() : tensor<1x8xf32>
  %f8 = linalg.fill ins(%zero : f32) outs(%e8 : tensor<1x8xf32>) -> tensor<1x8xf32>
  %q = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %wq : tensor<1x16xf32>, tensor<8x16xf32>) outs(%f8 : tensor<1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %c, %p : f32
    linalg.yield %s : f32
  } -> tensor<1x8xf32>
  %v = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %wv : tensor<1x16xf32>, tensor<8x16xf32>) outs(%f8 : tensor<1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %c, %p : f32
    linalg.yield %s : f32
  } -> tensor<1x8xf32>
  %vs = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]} ins(%v : tensor<1x8xf32>) outs(%e8 : tensor<1x8xf32>) {
  ^bb0(%a: f32, %o: f32):
    %y = arith.negf %a : f32
    linalg.yield %y : f32
  } -> tensor<1x8xf32>
  %es = tensor.empty() : tensor<4xf32>
  %sin = linalg.generic {indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>], iterator_types = ["parallel"]} ins(%freq : tensor<4xf32>) outs(%es : tensor<4xf32>) {
  ^bb0(%a: f32, %o: f32):
    %s = math.sin %a : f32
    linalg.yield %s : f32
  } -> tensor<4xf32>
  %r = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]} ins(%q : tensor<1x8xf32>) outs(%e8 : tensor<1x8xf32>) {
  ^bb0(%a: f32, %o: f32):
    %col = linalg.index 1 : index
    %c2 = arith.constant 2 : index
    %c4 = arith.constant 4 : index
    %j = arith.remui %col, %c4 : index
    %first = arith.cmpi ult, %j, %c2 : index
    %up = arith.addi %col, %c2 : index
    %down = arith.subi %col, %c2 : index
    %partner = arith.select %first, %up, %down : index
    %other = tensor.extract %q[%c0, %partner] : tensor<1x8xf32>
    %i = arith.remui %col, %c4 : index
    %sv = tensor.extract %sin[%i] : tensor<4xf32>
    %ys = arith.mulf %other, %sv : f32
    %y = arith.addf %a, %ys : f32
    linalg.yield %y : f32
  } -> tensor<1x8xf32>
  return %r, %vs : tensor<1x8xf32>, tensor<1x8xf32>
}
