// RUN: kiln-opt %s --pass-pipeline='builtin.module(convert-transformer-to-linalg,kiln-target{cpu=znver4},func.func(kiln-kernel-strategy{activations=int8}))' -split-input-file | FileCheck %s --check-prefixes=CHECK,VNNI
// RUN: kiln-opt %s --pass-pipeline='builtin.module(convert-transformer-to-linalg,kiln-target{cpu=haswell},func.func(kiln-kernel-strategy{activations=int8}))' -split-input-file | FileCheck %s --check-prefixes=CHECK,AVX2
// RUN: kiln-opt %s --pass-pipeline='builtin.module(convert-transformer-to-linalg,kiln-target{cpu=znver4},func.func(kiln-kernel-strategy))' -split-input-file | FileCheck %s --check-prefix=F32
// RUN: kiln-opt %s --pass-pipeline='builtin.module(convert-transformer-to-linalg,kiln-target{cpu=x86-64},func.func(kiln-kernel-strategy{activations=int8}))' -split-input-file | FileCheck %s --check-prefix=SSE

// Tests that with activations=int8 the decode products on q4_0, q4_k and
// q6_k weights (and q4_1 and the 5-bit types, below) read x as 8-bit
// integers (activations = "i8", on AVX-512 and AVX2 alike), a q8_0 weight too where the target has VNNI (its unsigned
// bytes reach 255, which AVX2's vpmaddubsw would saturate), and nothing
// else does: an f32 weight, a prompt's product. Without the option (F32),
// and on a target without 256-bit vectors (SSE), no product does.
// CHECK-LABEL: func.func @decode
// CHECK: kiln.kernel = {activations = "i8", {{.*}}role = "decode"
// CHECK: kiln.kernel = {activations = "i8", {{.*}}role = "decode"
// CHECK: kiln.kernel = {activations = "i8", {{.*}}role = "decode"
// CHECK: kiln.kernel = {block_cols
// VNNI: kiln.kernel = {activations = "i8", {{.*}}role = "decode"
// AVX2-NOT: activations
// CHECK: return
// F32-LABEL: func.func @decode
// F32-NOT: activations
// F32: return
// SSE-LABEL: func.func @decode
// SSE-NOT: activations
// SSE: return
func.func @decode(%x: tensor<1x1x256xf32>) -> (tensor<1x1x8xf32>, tensor<1x1x8xf32>, tensor<1x1x8xf32>, tensor<1x1x8xf32>, tensor<1x1x8xf32>) {
  %w0 = transformer.weight "blk.0.attn_q.weight" [1] : tensor<8x256xf32, #transformer.encoding<q4_0>>
  %w1 = transformer.weight "blk.0.attn_k.weight" [2] : tensor<8x256xf32, #transformer.encoding<q4_k>>
  %w2 = transformer.weight "blk.0.attn_v.weight" [3] : tensor<8x256xf32, #transformer.encoding<q6_k>>
  %w3 = transformer.weight "blk.0.attn_output.weight" [4] : tensor<8x256xf32>
  %w4 = transformer.weight "blk.0.ffn_up.weight" [5] : tensor<8x256xf32, #transformer.encoding<q8_0>>
  %y0 = transformer.linear %x, %w0 : (tensor<1x1x256xf32>, tensor<8x256xf32, #transformer.encoding<q4_0>>) -> tensor<1x1x8xf32>
  %y1 = transformer.linear %x, %w1 : (tensor<1x1x256xf32>, tensor<8x256xf32, #transformer.encoding<q4_k>>) -> tensor<1x1x8xf32>
  %y2 = transformer.linear %x, %w2 : (tensor<1x1x256xf32>, tensor<8x256xf32, #transformer.encoding<q6_k>>) -> tensor<1x1x8xf32>
  %y3 = transformer.linear %x, %w3 : (tensor<1x1x256xf32>, tensor<8x256xf32>) -> tensor<1x1x8xf32>
  %y4 = transformer.linear %x, %w4 : (tensor<1x1x256xf32>, tensor<8x256xf32, #transformer.encoding<q8_0>>) -> tensor<1x1x8xf32>
  return %y0, %y1, %y2, %y3, %y4 : tensor<1x1x8xf32>, tensor<1x1x8xf32>, tensor<1x1x8xf32>, tensor<1x1x8xf32>, tensor<1x1x8xf32>
}

// -----

// A prompt product 8 columns wide has no packed tiles (two vectors of
// columns), so no integer GEMM either.
// CHECK-LABEL: func.func @prompt
// CHECK-NOT: activations
// CHECK: return
func.func @prompt(%x: tensor<1x?x256xf32>) -> tensor<1x?x8xf32> {
  %w = transformer.weight "blk.0.attn_q.weight" [1] : tensor<8x256xf32, #transformer.encoding<q4_0>>
  %y = transformer.linear %x, %w : (tensor<1x?x256xf32>, tensor<8x256xf32, #transformer.encoding<q4_0>>) -> tensor<1x?x8xf32>
  return %y : tensor<1x?x8xf32>
}

// -----

// Prompt products wide enough for packed tiles take the integer GEMM where
// the target has AVX-512 VNNI (activations = "i8"), tiles of 4 rows (an i32
// accumulator for each byte of x and an f32 one per vector), and blocks of
// whole 32-column tiles (K = 5632: a quarter of L2 holds 46 columns of
// bytes, rounded down to 32; at K = 256 the 64-column limit). Not on AVX2
// (no VNNI), not without the option, and never on an f32 weight.
// CHECK-LABEL: func.func @prompt_gemm
// VNNI: kiln.kernel = {activations = "i8", block_cols = 32 : i64, {{.*}}outer_rows = 4 : i64, {{.*}}role = "prompt"
// VNNI: kiln.kernel = {activations = "i8", block_cols = 64 : i64, {{.*}}outer_rows = 4 : i64, {{.*}}role = "prompt"
// VNNI: kiln.kernel = {block_cols = 64 : i64, {{.*}}outer_rows = 12 : i64, {{.*}}packed = true, {{.*}}role = "prompt"
// AVX2-NOT: activations
// CHECK: return
// F32-LABEL: func.func @prompt_gemm
// F32-NOT: activations
// F32: return
func.func @prompt_gemm(%x: tensor<1x?x5632xf32>, %x2: tensor<1x?x256xf32>) -> (tensor<1x?x64xf32>, tensor<1x?x64xf32>, tensor<1x?x64xf32>) {
  %w0 = transformer.weight "blk.0.ffn_down.weight" [1] : tensor<64x5632xf32, #transformer.encoding<q4_0>>
  %w1 = transformer.weight "blk.0.attn_q.weight" [2] : tensor<64x256xf32, #transformer.encoding<q4_k>>
  %w2 = transformer.weight "blk.0.attn_k.weight" [3] : tensor<64x256xf32>
  %y0 = transformer.linear %x, %w0 : (tensor<1x?x5632xf32>, tensor<64x5632xf32, #transformer.encoding<q4_0>>) -> tensor<1x?x64xf32>
  %y1 = transformer.linear %x2, %w1 : (tensor<1x?x256xf32>, tensor<64x256xf32, #transformer.encoding<q4_k>>) -> tensor<1x?x64xf32>
  %y2 = transformer.linear %x2, %w2 : (tensor<1x?x256xf32>, tensor<64x256xf32>) -> tensor<1x?x64xf32>
  return %y0, %y1, %y2 : tensor<1x?x64xf32>, tensor<1x?x64xf32>, tensor<1x?x64xf32>
}

// -----

// The types with a minimum (q4_1, q5_1) and the 5-bit types (q5_0, q5_k)
// have integer groups too (integers below 32: AVX2 as well); f16 does not.
// CHECK-LABEL: func.func @decode_more_types
// CHECK-COUNT-4: kiln.kernel = {activations = "i8", {{.*}}role = "decode"
// CHECK-NOT: activations
// CHECK: return
// F32-LABEL: func.func @decode_more_types
// F32-NOT: activations
// F32: return
func.func @decode_more_types(%x: tensor<1x1x256xf32>) -> (tensor<1x1x8xf32>, tensor<1x1x8xf32>, tensor<1x1x8xf32>, tensor<1x1x8xf32>, tensor<1x1x8xf32>) {
  %w0 = transformer.weight "blk.0.attn_q.weight" [1] : tensor<8x256xf32, #transformer.encoding<q4_1>>
  %w1 = transformer.weight "blk.0.attn_k.weight" [2] : tensor<8x256xf32, #transformer.encoding<q5_0>>
  %w2 = transformer.weight "blk.0.attn_v.weight" [3] : tensor<8x256xf32, #transformer.encoding<q5_1>>
  %w3 = transformer.weight "blk.0.attn_output.weight" [4] : tensor<8x256xf32, #transformer.encoding<q5_k>>
  %w4 = transformer.weight "blk.0.ffn_up.weight" [5] : tensor<8x256xf32, #transformer.encoding<f16>>
  %y0 = transformer.linear %x, %w0 : (tensor<1x1x256xf32>, tensor<8x256xf32, #transformer.encoding<q4_1>>) -> tensor<1x1x8xf32>
  %y1 = transformer.linear %x, %w1 : (tensor<1x1x256xf32>, tensor<8x256xf32, #transformer.encoding<q5_0>>) -> tensor<1x1x8xf32>
  %y2 = transformer.linear %x, %w2 : (tensor<1x1x256xf32>, tensor<8x256xf32, #transformer.encoding<q5_1>>) -> tensor<1x1x8xf32>
  %y3 = transformer.linear %x, %w3 : (tensor<1x1x256xf32>, tensor<8x256xf32, #transformer.encoding<q5_k>>) -> tensor<1x1x8xf32>
  %y4 = transformer.linear %x, %w4 : (tensor<1x1x256xf32>, tensor<8x256xf32, #transformer.encoding<f16>>) -> tensor<1x1x8xf32>
  return %y0, %y1, %y2, %y3, %y4 : tensor<1x1x8xf32>, tensor<1x1x8xf32>, tensor<1x1x8xf32>, tensor<1x1x8xf32>, tensor<1x1x8xf32>
}
