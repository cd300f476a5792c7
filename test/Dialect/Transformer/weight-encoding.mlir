// RUN: kiln-opt %s | kiln-opt | FileCheck %s
// RUN: kiln-opt %s -mlir-print-op-generic | kiln-opt | FileCheck %s

// Weights kept as published: the encoding is part of the weight's f32
// tensor type (#transformer.encoding<...>), and round-trips through the
// custom and the generic form.

// Tests a Llama-style block whose matrices are GGUF block types and whose
// token table is f16: embedding, linear (q8_0, q6_k) and a SwiGLU
// feed_forward (q4_k up and gate, q4_0 down), with the f32 norm beside them.
// CHECK-LABEL: func.func @llama_block
// CHECK-DAG: %[[TOK:.*]] = transformer.weight "token_embd.weight"[0] : tensor<320x256xf32, #transformer.encoding<f16>>
// CHECK-DAG: %[[NORM:.*]] = transformer.weight "blk.0.attn_norm.weight"[1] : tensor<256xf32>
// CHECK-DAG: %[[WQ:.*]] = transformer.weight "blk.0.attn_q.weight"[2] : tensor<256x256xf32, #transformer.encoding<q8_0>>
// CHECK-DAG: %[[GATE:.*]] = transformer.weight "blk.0.ffn_gate.weight"[3] : tensor<512x256xf32, #transformer.encoding<q4_k>>
// CHECK-DAG: %[[UP:.*]] = transformer.weight "blk.0.ffn_up.weight"[4] : tensor<512x256xf32, #transformer.encoding<q4_k>>
// CHECK-DAG: %[[DOWN:.*]] = transformer.weight "blk.0.ffn_down.weight"[5] : tensor<256x512xf32, #transformer.encoding<q4_0>>
// CHECK-DAG: %[[OUT:.*]] = transformer.weight "output.weight"[6] : tensor<320x256xf32, #transformer.encoding<q6_k>>
// CHECK: %[[X:.*]] = transformer.embedding %{{.*}}, %[[TOK]] : (tensor<1x?xi32>, tensor<320x256xf32, #transformer.encoding<f16>>) -> tensor<1x?x256xf32>
// CHECK: %[[N:.*]] = transformer.rms_norm %[[X]], %[[NORM]]
// CHECK: %[[Q:.*]] = transformer.linear %[[N]], %[[WQ]] : (tensor<1x?x256xf32>, tensor<256x256xf32, #transformer.encoding<q8_0>>) -> tensor<1x?x256xf32>
// CHECK: %[[F:.*]] = transformer.feed_forward swiglu %[[Q]], up %[[UP]], gate %[[GATE]], down %[[DOWN]] : (tensor<1x?x256xf32>, tensor<512x256xf32, #transformer.encoding<q4_k>>, tensor<512x256xf32, #transformer.encoding<q4_k>>, tensor<256x512xf32, #transformer.encoding<q4_0>>) -> tensor<1x?x256xf32>
// CHECK: transformer.linear %[[F]], %[[OUT]] : (tensor<1x?x256xf32>, tensor<320x256xf32, #transformer.encoding<q6_k>>) -> tensor<1x?x320xf32>
func.func @llama_block(%ids: tensor<1x?xi32>) -> tensor<1x?x320xf32> {
  %tok = transformer.weight "token_embd.weight" [0] : tensor<320x256xf32, #transformer.encoding<f16>>
  %norm = transformer.weight "blk.0.attn_norm.weight" [1] : tensor<256xf32>
  %wq = transformer.weight "blk.0.attn_q.weight" [2] : tensor<256x256xf32, #transformer.encoding<q8_0>>
  %gate = transformer.weight "blk.0.ffn_gate.weight" [3] : tensor<512x256xf32, #transformer.encoding<q4_k>>
  %up = transformer.weight "blk.0.ffn_up.weight" [4] : tensor<512x256xf32, #transformer.encoding<q4_k>>
  %down = transformer.weight "blk.0.ffn_down.weight" [5] : tensor<256x512xf32, #transformer.encoding<q4_0>>
  %out = transformer.weight "output.weight" [6] : tensor<320x256xf32, #transformer.encoding<q6_k>>
  %x = transformer.embedding %ids, %tok : (tensor<1x?xi32>, tensor<320x256xf32, #transformer.encoding<f16>>) -> tensor<1x?x256xf32>
  %n = transformer.rms_norm %x, %norm {epsilon = 1.0e-5 : f32} : (tensor<1x?x256xf32>, tensor<256xf32>) -> tensor<1x?x256xf32>
  %q = transformer.linear %n, %wq : (tensor<1x?x256xf32>, tensor<256x256xf32, #transformer.encoding<q8_0>>) -> tensor<1x?x256xf32>
  %f = transformer.feed_forward swiglu %q, up %up, gate %gate, down %down : (tensor<1x?x256xf32>, tensor<512x256xf32, #transformer.encoding<q4_k>>, tensor<512x256xf32, #transformer.encoding<q4_k>>, tensor<256x512xf32, #transformer.encoding<q4_0>>) -> tensor<1x?x256xf32>
  %logits = transformer.linear %f, %out : (tensor<1x?x256xf32>, tensor<320x256xf32, #transformer.encoding<q6_k>>) -> tensor<1x?x320xf32>
  return %logits : tensor<1x?x320xf32>
}

// Tests a GPT-2 style block: a bf16 token table, a q5_0 position table, a
// q4_1 linear with an f32 bias, and a GELU feed_forward with q5_1 and q8_0
// matrices and f32 biases.
// CHECK-LABEL: func.func @gpt2_block
// CHECK-DAG: %[[WTE:.*]] = transformer.weight "wte"[0] : tensor<300x64xf32, #transformer.encoding<bf16>>
// CHECK-DAG: %[[WPE:.*]] = transformer.weight "wpe"[1] : tensor<128x64xf32, #transformer.encoding<q5_0>>
// CHECK-DAG: %[[W:.*]] = transformer.weight "attn.c_proj.weight"[2] : tensor<64x64xf32, #transformer.encoding<q4_1>>
// CHECK-DAG: %[[B:.*]] = transformer.weight "attn.c_proj.bias"[3] : tensor<64xf32>
// CHECK-DAG: %[[UP:.*]] = transformer.weight "mlp.c_fc.weight"[4] : tensor<256x64xf32, #transformer.encoding<q5_1>>
// CHECK-DAG: %[[DOWN:.*]] = transformer.weight "mlp.c_proj.weight"[6] : tensor<64x256xf32, #transformer.encoding<q8_0>>
// CHECK: %[[X:.*]] = transformer.embedding %{{.*}}, %[[WTE]] : (tensor<1x?xi32>, tensor<300x64xf32, #transformer.encoding<bf16>>) -> tensor<1x?x64xf32>
// CHECK: %[[P:.*]] = transformer.position_embedding %[[X]], %[[WPE]] : (tensor<1x?x64xf32>, tensor<128x64xf32, #transformer.encoding<q5_0>>) -> tensor<1x?x64xf32>
// CHECK: %[[L:.*]] = transformer.linear %[[P]], %[[W]] bias %[[B]] : (tensor<1x?x64xf32>, tensor<64x64xf32, #transformer.encoding<q4_1>>, tensor<64xf32>) -> tensor<1x?x64xf32>
// CHECK: transformer.feed_forward gelu_tanh %[[L]], up %[[UP]] bias %{{.*}}, down %[[DOWN]] bias %{{.*}} : (tensor<1x?x64xf32>, tensor<256x64xf32, #transformer.encoding<q5_1>>, tensor<256xf32>, tensor<64x256xf32, #transformer.encoding<q8_0>>, tensor<64xf32>) -> tensor<1x?x64xf32>
func.func @gpt2_block(%ids: tensor<1x?xi32>) -> tensor<1x?x64xf32> {
  %wte = transformer.weight "wte" [0] : tensor<300x64xf32, #transformer.encoding<bf16>>
  %wpe = transformer.weight "wpe" [1] : tensor<128x64xf32, #transformer.encoding<q5_0>>
  %w = transformer.weight "attn.c_proj.weight" [2] : tensor<64x64xf32, #transformer.encoding<q4_1>>
  %b = transformer.weight "attn.c_proj.bias" [3] : tensor<64xf32>
  %up = transformer.weight "mlp.c_fc.weight" [4] : tensor<256x64xf32, #transformer.encoding<q5_1>>
  %upb = transformer.weight "mlp.c_fc.bias" [5] : tensor<256xf32>
  %down = transformer.weight "mlp.c_proj.weight" [6] : tensor<64x256xf32, #transformer.encoding<q8_0>>
  %downb = transformer.weight "mlp.c_proj.bias" [7] : tensor<64xf32>
  %x = transformer.embedding %ids, %wte : (tensor<1x?xi32>, tensor<300x64xf32, #transformer.encoding<bf16>>) -> tensor<1x?x64xf32>
  %p = transformer.position_embedding %x, %wpe : (tensor<1x?x64xf32>, tensor<128x64xf32, #transformer.encoding<q5_0>>) -> tensor<1x?x64xf32>
  %l = transformer.linear %p, %w bias %b : (tensor<1x?x64xf32>, tensor<64x64xf32, #transformer.encoding<q4_1>>, tensor<64xf32>) -> tensor<1x?x64xf32>
  %f = transformer.feed_forward gelu_tanh %l, up %up bias %upb, down %down bias %downb : (tensor<1x?x64xf32>, tensor<256x64xf32, #transformer.encoding<q5_1>>, tensor<256xf32>, tensor<64x256xf32, #transformer.encoding<q8_0>>, tensor<64xf32>) -> tensor<1x?x64xf32>
  return %f : tensor<1x?x64xf32>
}

// Tests that a stored weight may be passed to a call (an outlined layer),
// whose parameter carries the same encoding.
// CHECK-LABEL: func.func private @layer
// CHECK-SAME: (tensor<1x?x256xf32>, tensor<64x256xf32, #transformer.encoding<q4_k>>) -> tensor<1x?x64xf32>
// CHECK-LABEL: func.func @caller
// CHECK: %[[W:.*]] = transformer.weight "blk.0.attn_output.weight"[0] : tensor<64x256xf32, #transformer.encoding<q4_k>>
// CHECK: call @layer2(%{{.*}}, %[[W]]) : (tensor<1x?x256xf32>, tensor<64x256xf32, #transformer.encoding<q4_k>>) -> tensor<1x?x64xf32>
// CHECK-LABEL: func.func @layer2
// CHECK-SAME: %[[A:[a-z0-9]+]]: tensor<64x256xf32, #transformer.encoding<q4_k>>
// CHECK: transformer.linear %{{.*}}, %[[A]] : (tensor<1x?x256xf32>, tensor<64x256xf32, #transformer.encoding<q4_k>>) -> tensor<1x?x64xf32>
func.func private @layer(tensor<1x?x256xf32>, tensor<64x256xf32, #transformer.encoding<q4_k>>) -> tensor<1x?x64xf32>
func.func @caller(%x: tensor<1x?x256xf32>) -> tensor<1x?x64xf32> {
  %w = transformer.weight "blk.0.attn_output.weight" [0] : tensor<64x256xf32, #transformer.encoding<q4_k>>
  %y = func.call @layer2(%x, %w) : (tensor<1x?x256xf32>, tensor<64x256xf32, #transformer.encoding<q4_k>>) -> tensor<1x?x64xf32>
  return %y : tensor<1x?x64xf32>
}
func.func @layer2(%x: tensor<1x?x256xf32>, %w: tensor<64x256xf32, #transformer.encoding<q4_k>>) -> tensor<1x?x64xf32> {
  %y = transformer.linear %x, %w : (tensor<1x?x256xf32>, tensor<64x256xf32, #transformer.encoding<q4_k>>) -> tensor<1x?x64xf32>
  return %y : tensor<1x?x64xf32>
}

// The gate and up matrices of a gated block may be stored differently
// (llama-quantize --tensor-type ffn_up=q6_k): only their shapes must agree.
// CHECK-LABEL: func.func @mixed_gate_up
// CHECK: transformer.feed_forward swiglu {{.*}} : (tensor<1x?x256xf32>, tensor<512x256xf32, #transformer.encoding<q6_k>>, tensor<512x256xf32, #transformer.encoding<q4_k>>, tensor<256x512xf32, #transformer.encoding<q8_0>>)
func.func @mixed_gate_up(%x: tensor<1x?x256xf32>) -> tensor<1x?x256xf32> {
  %g = transformer.weight "g" [0] : tensor<512x256xf32, #transformer.encoding<q4_k>>
  %u = transformer.weight "u" [1] : tensor<512x256xf32, #transformer.encoding<q6_k>>
  %d = transformer.weight "d" [2] : tensor<256x512xf32, #transformer.encoding<q8_0>>
  %y = transformer.feed_forward swiglu %x, up %u, gate %g, down %d : (tensor<1x?x256xf32>, tensor<512x256xf32, #transformer.encoding<q6_k>>, tensor<512x256xf32, #transformer.encoding<q4_k>>, tensor<256x512xf32, #transformer.encoding<q8_0>>) -> tensor<1x?x256xf32>
  return %y : tensor<1x?x256xf32>
}
