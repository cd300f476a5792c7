// RUN: kiln-opt %s | FileCheck %s
// RUN: kiln-opt %s | kiln-opt | FileCheck %s
// RUN: kiln-opt %s -mlir-print-op-generic | kiln-opt | FileCheck %s

!cache = !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 2, head_dim = 16, capacity = 128, element_type = f32>

// Tests that every op of a GPT-2 style block round-trips.
// CHECK-LABEL: func.func @gpt2_block
func.func @gpt2_block(%ids: tensor<1x?xi32>) -> tensor<1x?x64xf32> {
  // CHECK: %[[WTE:.*]] = transformer.weight "wte"[0] : tensor<256x64xf32>
  %wte = transformer.weight "wte" [0] : tensor<256x64xf32>
  %wpe = transformer.weight "wpe" [1] : tensor<128x64xf32>
  %g = transformer.weight "ln.g" [2] : tensor<64xf32>
  %b = transformer.weight "ln.b" [3] : tensor<64xf32>
  %w = transformer.weight "q" [4] : tensor<64x64xf32>
  %bias = transformer.weight "q.b" [5] : tensor<64xf32>
  %up = transformer.weight "up" [6] : tensor<256x64xf32>
  %upb = transformer.weight "up.b" [7] : tensor<256xf32>
  %down = transformer.weight "down" [8] : tensor<64x256xf32>
  // CHECK: %[[X:.*]] = transformer.embedding %{{.*}}, %[[WTE]] : (tensor<1x?xi32>, tensor<256x64xf32>) -> tensor<1x?x64xf32>
  %x = transformer.embedding %ids, %wte : (tensor<1x?xi32>, tensor<256x64xf32>) -> tensor<1x?x64xf32>
  // CHECK: transformer.position_embedding %[[X]], %{{.*}} : (tensor<1x?x64xf32>, tensor<128x64xf32>) -> tensor<1x?x64xf32>
  %p = transformer.position_embedding %x, %wpe : (tensor<1x?x64xf32>, tensor<128x64xf32>) -> tensor<1x?x64xf32>
  // CHECK: transformer.layer_norm %{{.*}}, %{{.*}}, %{{.*}} {epsilon = 9.99999974E-6 : f32}
  %n = transformer.layer_norm %p, %g, %b {epsilon = 1.0e-5 : f32} : (tensor<1x?x64xf32>, tensor<64xf32>, tensor<64xf32>) -> tensor<1x?x64xf32>
  // CHECK: transformer.linear %{{.*}}, %{{.*}} bias %{{.*}} : (tensor<1x?x64xf32>, tensor<64x64xf32>, tensor<64xf32>) -> tensor<1x?x64xf32>
  %q = transformer.linear %n, %w bias %bias : (tensor<1x?x64xf32>, tensor<64x64xf32>, tensor<64xf32>) -> tensor<1x?x64xf32>
  // CHECK: transformer.attention causal %{{.*}}, %{{.*}}, %{{.*}} {head_dim = 16 : i64, num_heads = 4 : i64, num_kv_heads = 4 : i64, scale = 2.500000e-01 : f32}
  %a = transformer.attention causal %q, %q, %q {num_heads = 4 : i64, num_kv_heads = 4 : i64, head_dim = 16 : i64, scale = 0.25 : f32} : (tensor<1x?x64xf32>, tensor<1x?x64xf32>, tensor<1x?x64xf32>) -> tensor<1x?x64xf32>
  // CHECK: transformer.add %{{.*}}, %{{.*}} : tensor<1x?x64xf32>
  %r = transformer.add %p, %a : tensor<1x?x64xf32>
  // CHECK: transformer.feed_forward gelu_tanh %{{.*}}, up %{{.*}} bias %{{.*}}, down %{{.*}} :
  %f = transformer.feed_forward gelu_tanh %r, up %up bias %upb, down %down : (tensor<1x?x64xf32>, tensor<256x64xf32>, tensor<256xf32>, tensor<64x256xf32>) -> tensor<1x?x64xf32>
  return %f : tensor<1x?x64xf32>
}

// Tests the Llama-style ops: rotary positions (with scaling), RMS norm (and
// per-head, Qwen3's q/k norm), GQA, SwiGLU.
// CHECK-LABEL: func.func @llama_block
func.func @llama_block(%x: tensor<1x?x64xf32>, %k: tensor<1x?x32xf32>, %v: tensor<1x?x32xf32>, %pos: index) -> tensor<1x?x64xf32> {
  %g = transformer.weight "norm" [0] : tensor<64xf32>
  %wg = transformer.weight "gate" [1] : tensor<96x64xf32>
  %wu = transformer.weight "up" [2] : tensor<96x64xf32>
  %wd = transformer.weight "down" [3] : tensor<64x96xf32>
  %g16 = transformer.weight "k_norm" [4] : tensor<16xf32>
  // CHECK: transformer.rms_norm %{{.*}}, %{{.*}} {epsilon = 9.99999997E-7 : f32}
  %n = transformer.rms_norm %x, %g {epsilon = 1.0e-6 : f32} : (tensor<1x?x64xf32>, tensor<64xf32>) -> tensor<1x?x64xf32>
  // CHECK: transformer.rope rotate_half %{{.*}} offset %{{.*}} {head_dim = 16 : i64, theta = 1.000000e+04 : f32}
  %q = transformer.rope rotate_half %n offset %pos {head_dim = 16 : i64, theta = 1.0e4 : f32} : (tensor<1x?x64xf32>, index) -> tensor<1x?x64xf32>
  // CHECK: transformer.rope interleaved
  %q2 = transformer.rope interleaved %q {head_dim = 16 : i64, theta = 5.0e5 : f32} : (tensor<1x?x64xf32>) -> tensor<1x?x64xf32>
  // CHECK: transformer.rms_norm %{{.*}}, %{{.*}} {epsilon = 9.99999997E-7 : f32, group_size = 16 : i64} : (tensor<1x?x32xf32>, tensor<16xf32>)
  %kn = transformer.rms_norm %k, %g16 {epsilon = 1.0e-6 : f32, group_size = 16 : i64} : (tensor<1x?x32xf32>, tensor<16xf32>) -> tensor<1x?x32xf32>
  // CHECK: transformer.rope rotate_half %{{.*}} {attention_factor = 1.250000e+00 : f32, freq_factors = array<f32: 1.000000e+00, 1.000000e+00, 1.500000e+00, 2.000000e+00, 4.000000e+00, 8.000000e+00, 8.000000e+00, 8.000000e+00>, head_dim = 16 : i64, theta = 5.000000e+05 : f32}
  %k2 = transformer.rope rotate_half %k {head_dim = 16 : i64, theta = 5.0e5 : f32, freq_factors = array<f32: 1.0, 1.0, 1.5, 2.0, 4.0, 8.0, 8.0, 8.0>, attention_factor = 1.25 : f32} : (tensor<1x?x32xf32>) -> tensor<1x?x32xf32>
  // CHECK: transformer.attention causal %{{.*}}, %{{.*}}, %{{.*}} offset %{{.*}} {head_dim = 16 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64
  %a = transformer.attention causal %q2, %k, %v offset %pos {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 0.25 : f32} : (tensor<1x?x64xf32>, tensor<1x?x32xf32>, tensor<1x?x32xf32>, index) -> tensor<1x?x64xf32>
  // CHECK: transformer.attention causal {{.*}} window = 4096 : i64}
  %aw = transformer.attention causal %q2, %k, %v offset %pos {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 0.25 : f32, window = 4096 : i64} : (tensor<1x?x64xf32>, tensor<1x?x32xf32>, tensor<1x?x32xf32>, index) -> tensor<1x?x64xf32>
  // CHECK: transformer.feed_forward swiglu %{{.*}}, up %{{.*}}, gate %{{.*}}, down %{{.*}} :
  %f = transformer.feed_forward swiglu %a, up %wu, gate %wg, down %wd : (tensor<1x?x64xf32>, tensor<96x64xf32>, tensor<96x64xf32>, tensor<64x96xf32>) -> tensor<1x?x64xf32>
  return %f : tensor<1x?x64xf32>
}

// Tests the KV cache type and ops.
// CHECK-LABEL: func.func @cache
// CHECK-SAME: !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 2, head_dim = 16, capacity = 128, element_type = f32>
func.func @cache(%c: !cache, %k: tensor<1x1x32xf32>, %v: tensor<1x1x32xf32>, %pos: index, %len: index) -> (tensor<1x?x32xf32>, !cache) {
  // CHECK: %[[C1:.*]] = transformer.kv_cache_append %{{.*}}[1], %{{.*}}, %{{.*}} at %{{.*}} :
  %c1 = transformer.kv_cache_append %c[1], %k, %v at %pos : !cache, tensor<1x1x32xf32>, tensor<1x1x32xf32>
  // CHECK: %[[K:.*]], %{{.*}} = transformer.kv_cache_read %[[C1]][1] length %{{.*}} :
  %kk, %vv = transformer.kv_cache_read %c1[1] length %len : !cache -> tensor<1x?x32xf32>, tensor<1x?x32xf32>
  return %kk, %c1 : tensor<1x?x32xf32>, !cache
}

// Tests cache ops whose layer is an index value (a function that serves
// several layers).
// CHECK-LABEL: func.func @cache_layer_value
// CHECK-SAME: %[[L:[a-z0-9]+]]: index) ->
// CHECK: %[[C1:.*]] = transformer.kv_cache_append %{{.*}}[%[[L]]], %{{.*}}, %{{.*}} at %{{.*}} :
// CHECK: transformer.kv_cache_read %[[C1]][%[[L]]] length %{{.*}} :
func.func @cache_layer_value(%c: !cache, %k: tensor<1x1x32xf32>, %v: tensor<1x1x32xf32>, %pos: index, %len: index, %layer: index) -> (tensor<1x?x32xf32>, !cache) {
  %c1 = transformer.kv_cache_append %c[%layer], %k, %v at %pos : !cache, tensor<1x1x32xf32>, tensor<1x1x32xf32>
  %kk, %vv = transformer.kv_cache_read %c1[%layer] length %len : !cache -> tensor<1x?x32xf32>, tensor<1x?x32xf32>
  return %kk, %c1 : tensor<1x?x32xf32>, !cache
}

// Tests the encoder-decoder ops: a scaled embedding, the sinusoidal
// encoding (default base elided), the padding mask, bidirectional attention
// and cross-attention with a key mask (query and key lengths independent).
// CHECK-LABEL: func.func @encoder_decoder
func.func @encoder_decoder(%src: tensor<1x?xi32>, %tgt: tensor<1x?xi32>, %t: tensor<32x16xf32>, %pos: index) -> tensor<1x?x16xf32> {
  // CHECK: %[[M:.*]] = transformer.padding_mask %{{.*}} {pad_id = 0 : i64} : (tensor<1x?xi32>) -> tensor<1x?xi1>
  %m = transformer.padding_mask %src {pad_id = 0 : i64} : (tensor<1x?xi32>) -> tensor<1x?xi1>
  // CHECK: transformer.embedding %{{.*}}, %{{.*}} {scale = 4.000000e+00 : f32}
  %e = transformer.embedding %src, %t {scale = 4.0 : f32} : (tensor<1x?xi32>, tensor<32x16xf32>) -> tensor<1x?x16xf32>
  // CHECK: transformer.sinusoidal_position %{{.*}} : (tensor<1x?x16xf32>) -> tensor<1x?x16xf32>
  %ep = transformer.sinusoidal_position %e : (tensor<1x?x16xf32>) -> tensor<1x?x16xf32>
  // CHECK: transformer.attention bidirectional %{{.*}}, %{{.*}}, %{{.*}} key_mask %[[M]] {
  %enc = transformer.attention bidirectional %ep, %ep, %ep key_mask %m {num_heads = 2 : i64, num_kv_heads = 2 : i64, head_dim = 8 : i64, scale = 0.25 : f32} : (tensor<1x?x16xf32>, tensor<1x?x16xf32>, tensor<1x?x16xf32>, tensor<1x?xi1>) -> tensor<1x?x16xf32>
  %d = transformer.embedding %tgt, %t : (tensor<1x?xi32>, tensor<32x16xf32>) -> tensor<1x?x16xf32>
  // CHECK: transformer.sinusoidal_position %{{.*}} offset %{{.*}} {base = 5.000000e+02 : f32}
  %dp = transformer.sinusoidal_position %d offset %pos {base = 500.0 : f32} : (tensor<1x?x16xf32>, index) -> tensor<1x?x16xf32>
  // CHECK: transformer.attention cross %{{.*}}, %{{.*}}, %{{.*}} key_mask %[[M]] {
  %c = transformer.attention cross %dp, %enc, %enc key_mask %m {num_heads = 2 : i64, num_kv_heads = 2 : i64, head_dim = 8 : i64, scale = 0.25 : f32} : (tensor<1x?x16xf32>, tensor<1x?x16xf32>, tensor<1x?x16xf32>, tensor<1x?xi1>) -> tensor<1x?x16xf32>
  return %c : tensor<1x?x16xf32>
}
