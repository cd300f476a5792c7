// RUN: kiln-opt %s --pass-pipeline='builtin.module(convert-transformer-to-linalg,kiln-target{cpu=znver4},func.func(kiln-kernel-strategy{activations=int8}))' -split-input-file | FileCheck %s --check-prefixes=CHECK,VNNI
// RUN: kiln-opt %s --pass-pipeline='builtin.module(convert-transformer-to-linalg,kiln-target{cpu=haswell},func.func(kiln-kernel-strategy{activations=int8}))' -split-input-file | FileCheck %s --check-prefixes=CHECK,AVX2
// RUN: kiln-opt %s --pass-pipeline='builtin.module(convert-transformer-to-linalg,kiln-target{cpu=znver4},func.func(kiln-kernel-strategy))' -split-input-file | FileCheck %s --check-prefix=F32
// RUN: kiln-opt %s --pass-pipeline='builtin.module(convert-transformer-to-linalg,kiln-target{cpu=x86-64},func.func(kiln-kernel-strategy{activations=int8}))' -split-input-file | FileCheck %s --check-prefix=SSE

// Tests that with activations=int8 the decode products on q4_0, q4_k and
// q6_k weights read x as 8-bit integers (activations = "i8", on AVX-512 and
// AVX2 alike), a q8_0 weight too where the target has VNNI (its unsigned
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

// CHECK-LABEL: func.func @prompt
// CHECK-NOT: activations
// CHECK: return
func.func @prompt(%x: tensor<1x?x256xf32>) -> tensor<1x?x8xf32> {
  %w = transformer.weight "blk.0.attn_q.weight" [1] : tensor<8x256xf32, #transformer.encoding<q4_0>>
  %y = transformer.linear %x, %w : (tensor<1x?x256xf32>, tensor<8x256xf32, #transformer.encoding<q4_0>>) -> tensor<1x?x8xf32>
  return %y : tensor<1x?x8xf32>
}
