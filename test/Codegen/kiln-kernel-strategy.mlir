// RUN: kiln-opt %s --pass-pipeline='builtin.module(kiln-target{cpu=skylake-avx512},func.func(kiln-kernel-strategy))' -split-input-file | FileCheck %s --check-prefix=AVX512
// RUN: kiln-opt %s --pass-pipeline='builtin.module(kiln-target{cpu=haswell},func.func(kiln-kernel-strategy{block-cols=32}))' -split-input-file | FileCheck %s --check-prefix=AVX2
// RUN: kiln-opt %s --pass-pipeline='builtin.module(kiln-target{cpu=x86-64},func.func(kiln-kernel-strategy{block-cols=32}))' -split-input-file | FileCheck %s --check-prefix=SSE

#x = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#w = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#o = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>

// Tests that a prompt's product (a dynamic row count in @prefill) may be
// packed, with blocks of block-cols columns and the tiles of the target's
// register file: 4-row dot tiles and 12-row outer tiles with AVX-512's 32
// registers, 2 and 6 with AVX2's 16.
// AVX512-LABEL: func.func @prefill
// AVX512: linalg.generic
// AVX512-SAME: kiln.kernel = {block_cols = 64 : i64, dot_rows = 4 : i64, outer_rows = 12 : i64, pack_min_rows = 16 : i64, packed = true, role = "prompt", vector_lanes = 16 : i64}
// AVX2-LABEL: func.func @prefill
// AVX2: kiln.kernel = {block_cols = 32 : i64, dot_rows = 2 : i64, outer_rows = 6 : i64, pack_min_rows = 16 : i64, packed = true, role = "prompt", vector_lanes = 8 : i64}
// Without AVX (x86-64: SSE2) nothing is packed: the packing's transposes
// are AVX shuffles and blends.
// SSE-LABEL: func.func @prefill
// SSE: kiln.kernel = {{.*}}packed = false, role = "prompt", vector_lanes = 4 : i64}
func.func @prefill(%x: tensor<1x?x256xf32>, %w: tensor<512x256xf32>, %init: tensor<1x?x512xf32>) -> tensor<1x?x512xf32> attributes {transformer.entry = "prefill"} {
  %0 = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%x, %w : tensor<1x?x256xf32>, tensor<512x256xf32>) outs(%init : tensor<1x?x512xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b : f32
    %s = arith.addf %c, %m : f32
    linalg.yield %s : f32
  } -> tensor<1x?x512xf32>
  return %0 : tensor<1x?x512xf32>
}

// -----

#x = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#w = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#o = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>

// Tests that every product of a decode entry point is a decode kernel, also
// over a batch of 4 rows: blocks of 16 columns, so that every thread gets an
// even share of a matrix-vector product.
// AVX512-LABEL: func.func @decode
// AVX512: kiln.kernel = {block_cols = 16 : i64, {{.*}}, role = "decode", vector_lanes = 16 : i64}
func.func @decode(%x: tensor<4x1x256xf32>, %w: tensor<512x256xf32>, %init: tensor<4x1x512xf32>) -> tensor<4x1x512xf32> attributes {transformer.entry = "decode"} {
  %0 = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%x, %w : tensor<4x1x256xf32>, tensor<512x256xf32>) outs(%init : tensor<4x1x512xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b : f32
    %s = arith.addf %c, %m : f32
    linalg.yield %s : f32
  } -> tensor<4x1x512xf32>
  return %0 : tensor<4x1x512xf32>
}

// -----

#x = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#w = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#o = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>

// Tests that a one-row product in a prompt's entry point (the last
// position's logits in @prefill) is a matrix-vector product: decode.
// AVX512-LABEL: func.func @last_logits
// AVX512: kiln.kernel = {block_cols = 16 : i64, {{.*}}, role = "decode"
func.func @last_logits(%x: tensor<1x1x256xf32>, %w: tensor<512x256xf32>, %init: tensor<1x1x512xf32>) -> tensor<1x1x512xf32> attributes {transformer.entry = "prefill"} {
  %0 = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%x, %w : tensor<1x1x256xf32>, tensor<512x256xf32>) outs(%init : tensor<1x1x512xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b : f32
    %s = arith.addf %c, %m : f32
    linalg.yield %s : f32
  } -> tensor<1x1x512xf32>
  return %0 : tensor<1x1x512xf32>
}

// -----

#x = affine_map<(d0, d1, d2) -> (d0, d2)>
#w = affine_map<(d0, d1, d2) -> (d1, d2)>
#o = affine_map<(d0, d1, d2) -> (d0, d1)>

// Tests that a weight block stays within a quarter of L2 (256 KiB of the
// 1 MiB assumed for a named CPU): with K = 2048, 32 rows of W, still two
// vectors of columns, so packed; with K = 4096, 16 rows, narrower than one
// outer-product tile, so not packed (a 7B model's K today); and that K not
// a multiple of 8 (the packing's transpose) is never packed.
// AVX512-LABEL: func.func @wide_k
// AVX512: kiln.kernel = {block_cols = 32 : i64, {{.*}}, packed = true, role = "prompt"
// AVX512: kiln.kernel = {block_cols = 16 : i64, {{.*}}, packed = false, role = "prompt"
// AVX512: kiln.kernel = {block_cols = 64 : i64, {{.*}}, packed = false, role = "prompt"
func.func @wide_k(%x1: tensor<?x2048xf32>, %w1: tensor<64x2048xf32>, %x: tensor<?x4096xf32>, %w: tensor<64x4096xf32>, %init: tensor<?x64xf32>, %x2: tensor<?x100xf32>, %w2: tensor<64x100xf32>) -> (tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>) {
  %2 = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x1, %w1 : tensor<?x2048xf32>, tensor<64x2048xf32>) outs(%init : tensor<?x64xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b : f32
    %s = arith.addf %c, %m : f32
    linalg.yield %s : f32
  } -> tensor<?x64xf32>
  %0 = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %w : tensor<?x4096xf32>, tensor<64x4096xf32>) outs(%init : tensor<?x64xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b : f32
    %s = arith.addf %c, %m : f32
    linalg.yield %s : f32
  } -> tensor<?x64xf32>
  %1 = linalg.generic {indexing_maps = [#x, #w, #o], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x2, %w2 : tensor<?x100xf32>, tensor<64x100xf32>) outs(%init : tensor<?x64xf32>) {
  ^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b : f32
    %s = arith.addf %c, %m : f32
    linalg.yield %s : f32
  } -> tensor<?x64xf32>
  return %2, %0, %1 : tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>
}

// -----

#id = affine_map<(d0, d1) -> (d0, d1)>

// Tests that generics other than contractions get no strategy.
// AVX512-LABEL: func.func @not_a_product
// AVX512-NOT: kiln.kernel
func.func @not_a_product(%a: tensor<?x8xf32>, %b: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %0 = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel"]} ins(%a, %a : tensor<?x8xf32>, tensor<?x8xf32>) outs(%b : tensor<?x8xf32>) {
  ^bb0(%x: f32, %y: f32, %z: f32):
    %m = arith.mulf %x, %y : f32
    linalg.yield %m : f32
  } -> tensor<?x8xf32>
  return %0 : tensor<?x8xf32>
}
