// RUN: kiln-opt %s --pass-pipeline='builtin.module(kiln-target{vector-bits=128},func.func(kiln-kernel-strategy,kiln-fold-norms))' -split-input-file | FileCheck %s

// A norm x = h * rsqrt(ss / 16 + eps) * g read by two prompt products
// alone is marked: their kernels will read h and apply g and the row's
// scale themselves. The products are unchanged.
#id = affine_map<(d0, d1) -> (d0, d1)>
#row = affine_map<(d0, d1) -> (d0)>
#col = affine_map<(d0, d1) -> (d1)>
#x = affine_map<(d0, d1, d2) -> (d0, d2)>
#w = affine_map<(d0, d1, d2) -> (d1, d2)>
#o = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func.func @norm_prompt
// CHECK: %[[X:.*]] = linalg.generic {{.*}}kiln.fold_into_products
// CHECK: math.rsqrt
// CHECK: linalg.generic {{.*}} ins(%[[X]], {{.*}}kiln.kernel = {{.*}}role = "prompt"
// CHECK: linalg.generic {{.*}} ins(%[[X]], {{.*}}kiln.kernel =
func.func @norm_prompt(%h: tensor<?x16xf32>, %ss: tensor<?xf32>, %g: tensor<16xf32>, %wq: tensor<8x16xf32>, %wk: tensor<8x16xf32>) -> (tensor<?x8xf32>, tensor<?x8xf32>) {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %d = arith.constant 16.0 : f32
  %eps = arith.constant 1.0e-5 : f32
  %m = tensor.dim %h, %c0 : tensor<?x16xf32>
  %ex = tensor.empty(%m) : tensor<?x16xf32>
  %x = linalg.generic {indexing_maps = [#id, #row, #col, #id], iterator_types = ["parallel", "parallel"]} ins(%h, %ss, %g : tensor<?x16xf32>, tensor<?xf32>, tensor<16xf32>) outs(%ex : tensor<?x16xf32>) {
  ^bb0(%a: f32, %s: f32, %gk: f32, %o: f32):
    %mean = arith.divf %s, %d : f32
    %v = arith.addf %mean, %eps : f32
    %r = math.rsqrt %v : f32
    %n = arith.mulf %a, %r : f32
    %y = arith.mulf %n, %gk : f32
    linalg.yield %y : f32
  } -> tensor<?x16xf32>
  %e = tensor.empty(%m) : tensor<?x8xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<?x8xf32>) -> tensor<?x8xf32>
  %q = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %wq : tensor<?x16xf32>, tensor<8x16xf32>) outs(%f : tensor<?x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %c, %p : f32
    linalg.yield %s : f32
  } -> tensor<?x8xf32>
  %k = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %wk : tensor<?x16xf32>, tensor<8x16xf32>) outs(%f : tensor<?x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %c, %p : f32
    linalg.yield %s : f32
  } -> tensor<?x8xf32>
  return %q, %k : tensor<?x8xf32>, tensor<?x8xf32>
}

// -----

// The same norm also returned: the normalised x must be written, so it
// stays unmarked.
#id = affine_map<(d0, d1) -> (d0, d1)>
#row = affine_map<(d0, d1) -> (d0)>
#col = affine_map<(d0, d1) -> (d1)>
#x = affine_map<(d0, d1, d2) -> (d0, d2)>
#w = affine_map<(d0, d1, d2) -> (d1, d2)>
#o = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func.func @norm_also_returned
// CHECK-NOT: kiln.fold_into_products
// CHECK: return
func.func @norm_also_returned(%h: tensor<?x16xf32>, %ss: tensor<?xf32>, %g: tensor<16xf32>, %wq: tensor<8x16xf32>) -> (tensor<?x8xf32>, tensor<?x16xf32>) {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %m = tensor.dim %h, %c0 : tensor<?x16xf32>
  %ex = tensor.empty(%m) : tensor<?x16xf32>
  %x = linalg.generic {indexing_maps = [#id, #row, #col, #id], iterator_types = ["parallel", "parallel"]} ins(%h, %ss, %g : tensor<?x16xf32>, tensor<?xf32>, tensor<16xf32>) outs(%ex : tensor<?x16xf32>) {
  ^bb0(%a: f32, %s: f32, %gk: f32, %o: f32):
    %r = math.rsqrt %s : f32
    %n = arith.mulf %a, %r : f32
    %y = arith.mulf %n, %gk : f32
    linalg.yield %y : f32
  } -> tensor<?x16xf32>
  %e = tensor.empty(%m) : tensor<?x8xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<?x8xf32>) -> tensor<?x8xf32>
  %q = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %wq : tensor<?x16xf32>, tensor<8x16xf32>) outs(%f : tensor<?x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %c, %p : f32
    linalg.yield %s : f32
  } -> tensor<?x8xf32>
  return %q, %x : tensor<?x8xf32>, tensor<?x16xf32>
}

// -----

// Decode (one static row): the norm is a loop of 16 elements, cheaper than
// scaling x again for every row of W. Unmarked.
#id = affine_map<(d0, d1) -> (d0, d1)>
#row = affine_map<(d0, d1) -> (d0)>
#col = affine_map<(d0, d1) -> (d1)>
#x = affine_map<(d0, d1, d2) -> (d0, d2)>
#w = affine_map<(d0, d1, d2) -> (d1, d2)>
#o = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func.func @norm_decode
// CHECK-NOT: kiln.fold_into_products
// CHECK: role = "decode"
func.func @norm_decode(%h: tensor<1x16xf32>, %ss: tensor<1xf32>, %g: tensor<16xf32>, %wq: tensor<8x16xf32>) -> tensor<1x8xf32> {
  %zero = arith.constant 0.0 : f32
  %ex = tensor.empty() : tensor<1x16xf32>
  %x = linalg.generic {indexing_maps = [#id, #row, #col, #id], iterator_types = ["parallel", "parallel"]} ins(%h, %ss, %g : tensor<1x16xf32>, tensor<1xf32>, tensor<16xf32>) outs(%ex : tensor<1x16xf32>) {
  ^bb0(%a: f32, %s: f32, %gk: f32, %o: f32):
    %r = math.rsqrt %s : f32
    %n = arith.mulf %a, %r : f32
    %y = arith.mulf %n, %gk : f32
    linalg.yield %y : f32
  } -> tensor<1x16xf32>
  %e = tensor.empty() : tensor<1x8xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<1x8xf32>) -> tensor<1x8xf32>
  %q = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %wq : tensor<1x16xf32>, tensor<8x16xf32>) outs(%f : tensor<1x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %c, %p : f32
    linalg.yield %s : f32
  } -> tensor<1x8xf32>
  return %q : tensor<1x8xf32>
}

// -----

// Not of the form h * f(rows) * g[k] (a factor along k that is not an
// input: the column index), so unmarked.
#id = affine_map<(d0, d1) -> (d0, d1)>
#row = affine_map<(d0, d1) -> (d0)>
#x = affine_map<(d0, d1, d2) -> (d0, d2)>
#w = affine_map<(d0, d1, d2) -> (d1, d2)>
#o = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func.func @not_a_norm
// CHECK-NOT: kiln.fold_into_products
// CHECK: return
func.func @not_a_norm(%h: tensor<?x16xf32>, %ss: tensor<?xf32>, %wq: tensor<8x16xf32>) -> tensor<?x8xf32> {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %m = tensor.dim %h, %c0 : tensor<?x16xf32>
  %ex = tensor.empty(%m) : tensor<?x16xf32>
  %x = linalg.generic {indexing_maps = [#id, #row, #id], iterator_types = ["parallel", "parallel"]} ins(%h, %ss : tensor<?x16xf32>, tensor<?xf32>) outs(%ex : tensor<?x16xf32>) {
  ^bb0(%a: f32, %s: f32, %o: f32):
    %i = linalg.index 1 : index
    %ii = arith.index_cast %i : index to i32
    %fi = arith.sitofp %ii : i32 to f32
    %n = arith.mulf %a, %s : f32
    %y = arith.mulf %n, %fi : f32
    linalg.yield %y : f32
  } -> tensor<?x16xf32>
  %e = tensor.empty(%m) : tensor<?x8xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<?x8xf32>) -> tensor<?x8xf32>
  %q = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %wq : tensor<?x16xf32>, tensor<8x16xf32>) outs(%f : tensor<?x8xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %c, %p : f32
    linalg.yield %s : f32
  } -> tensor<?x8xf32>
  return %q : tensor<?x8xf32>
}
