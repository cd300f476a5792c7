// RUN: kiln-opt %s -split-input-file -verify-diagnostics

// Tests that an empty weight name is rejected.
func.func @f() {
  // expected-error@+1 {{weight name must not be empty}}
  %w = transformer.weight "" [0] : tensor<4xf32>
  return
}

// -----

// Tests that weights need a static shape.
func.func @f() {
  // expected-error@+1 {{weight must have a static shape}}
  %w = transformer.weight "w" [0] : tensor<?xf32>
  return
}

// -----

// Tests that embedding ids must be [batch, seq].
func.func @f(%ids: tensor<4xi32>, %t: tensor<16x8xf32>) {
  // expected-error@+1 {{'transformer.embedding' op expects ids of shape [batch, seq], got 'tensor<4xi32>'}}
  %0 = transformer.embedding %ids, %t : (tensor<4xi32>, tensor<16x8xf32>) -> tensor<1x4x8xf32>
  // expected-error@-1 {{failed to infer returned types}}
  return
}

// -----

// Tests that the position table width must match.
func.func @f(%x: tensor<1x4x8xf32>, %t: tensor<16x6xf32>) {
  // expected-error@+1 {{'transformer.position_embedding' op expects a table of shape [positions, 8], got 'tensor<16x6xf32>'}}
  %0 = transformer.position_embedding %x, %t : (tensor<1x4x8xf32>, tensor<16x6xf32>) -> tensor<1x4x8xf32>
  // expected-error@-1 {{failed to infer returned types}}
  return
}

// -----

// Tests that a sequence longer than the position table is rejected.
func.func @f(%x: tensor<1x32x8xf32>, %t: tensor<16x8xf32>) {
  // expected-error@+1 {{'transformer.position_embedding' op sequence of 32 positions exceeds the table's 16}}
  %0 = transformer.position_embedding %x, %t : (tensor<1x32x8xf32>, tensor<16x8xf32>) -> tensor<1x32x8xf32>
  // expected-error@-1 {{failed to infer returned types}}
  return
}

// -----

// Tests that rope needs an even head_dim.
func.func @f(%x: tensor<1x4x9xf32>) {
  // expected-error@+1 {{'transformer.rope' op head_dim must be positive and even, got 3}}
  %0 = transformer.rope rotate_half %x {head_dim = 3 : i64, theta = 1.0e4 : f32} : (tensor<1x4x9xf32>) -> tensor<1x4x9xf32>
  // expected-error@-1 {{failed to infer returned types}}
  return
}

// -----

// Tests that rope features must be whole heads.
func.func @f(%x: tensor<1x4x12xf32>) {
  // expected-error@+1 {{'transformer.rope' op feature dimension 12 is not a multiple of head_dim 8}}
  %0 = transformer.rope rotate_half %x {head_dim = 8 : i64, theta = 1.0e4 : f32} : (tensor<1x4x12xf32>) -> tensor<1x4x12xf32>
  // expected-error@-1 {{failed to infer returned types}}
  return
}

// -----

// Tests that rope theta must be positive.
func.func @f(%x: tensor<1x4x8xf32>) {
  // expected-error@+1 {{'transformer.rope' op theta must be positive, got 0}}
  %0 = transformer.rope rotate_half %x {head_dim = 8 : i64, theta = 0.0 : f32} : (tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
  // expected-error@-1 {{failed to infer returned types}}
  return
}

// -----

// Tests that rope has one frequency factor per pair of a head.
func.func @f(%x: tensor<1x4x8xf32>) {
  // expected-error@+1 {{'transformer.rope' op freq_factors has 3 values; expected head_dim / 2 = 4}}
  %0 = transformer.rope rotate_half %x {head_dim = 8 : i64, theta = 1.0e4 : f32, freq_factors = array<f32: 1.0, 2.0, 4.0>} : (tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
  // expected-error@-1 {{failed to infer returned types}}
  return
}

// -----

// Tests that rope frequency factors must be positive.
func.func @f(%x: tensor<1x4x8xf32>) {
  // expected-error@+1 {{'transformer.rope' op freq_factors[2] must be positive and finite, got 0}}
  %0 = transformer.rope rotate_half %x {head_dim = 8 : i64, theta = 1.0e4 : f32, freq_factors = array<f32: 1.0, 2.0, 0.0, 4.0>} : (tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
  // expected-error@-1 {{failed to infer returned types}}
  return
}

// -----

// Tests that the rope attention factor must be positive.
func.func @f(%x: tensor<1x4x8xf32>) {
  // expected-error@+1 {{'transformer.rope' op attention_factor must be positive and finite, got -1}}
  %0 = transformer.rope rotate_half %x {head_dim = 8 : i64, theta = 1.0e4 : f32, attention_factor = -1.0 : f32} : (tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
  // expected-error@-1 {{failed to infer returned types}}
  return
}

// -----

// Tests that an rms_norm group must divide the features.
func.func @f(%x: tensor<1x4x12xf32>, %g: tensor<8xf32>) {
  // expected-error@+1 {{'transformer.rms_norm' op group_size 8 does not divide the last dimension of 'tensor<1x4x12xf32>'}}
  %0 = transformer.rms_norm %x, %g {epsilon = 1.0e-6 : f32, group_size = 8 : i64} : (tensor<1x4x12xf32>, tensor<8xf32>) -> tensor<1x4x12xf32>
  // expected-error@-1 {{failed to infer returned types}}
  return
}

// -----

// Tests that a grouped rms_norm has one gain per feature of a group.
func.func @f(%x: tensor<1x4x16xf32>, %g: tensor<16xf32>) {
  // expected-error@+1 {{'transformer.rms_norm' op expects gamma of shape [4] (group_size), got 'tensor<16xf32>'}}
  %0 = transformer.rms_norm %x, %g {epsilon = 1.0e-6 : f32, group_size = 4 : i64} : (tensor<1x4x16xf32>, tensor<16xf32>) -> tensor<1x4x16xf32>
  // expected-error@-1 {{failed to infer returned types}}
  return
}

// -----

// Tests that an rms_norm group is positive.
func.func @f(%x: tensor<1x4x16xf32>, %g: tensor<16xf32>) {
  // expected-error@+1 {{'transformer.rms_norm' op group_size must be positive, got 0}}
  %0 = transformer.rms_norm %x, %g {epsilon = 1.0e-6 : f32, group_size = 0 : i64} : (tensor<1x4x16xf32>, tensor<16xf32>) -> tensor<1x4x16xf32>
  // expected-error@-1 {{failed to infer returned types}}
  return
}

// -----

// Tests that layer_norm gamma must match the last dimension.
func.func @f(%x: tensor<1x4x8xf32>, %g: tensor<6xf32>, %b: tensor<8xf32>) {
  // expected-error@+1 {{'transformer.layer_norm' op expects gamma of shape [8], got 'tensor<6xf32>'}}
  %0 = transformer.layer_norm %x, %g, %b {epsilon = 1.0e-5 : f32} : (tensor<1x4x8xf32>, tensor<6xf32>, tensor<8xf32>) -> tensor<1x4x8xf32>
  // expected-error@-1 {{failed to infer returned types}}
  return
}

// -----

// Tests that layer_norm beta must match the last dimension.
func.func @f(%x: tensor<1x4x8xf32>, %g: tensor<8xf32>, %b: tensor<8x1xf32>) {
  // expected-error@+1 {{'transformer.layer_norm' op expects beta of shape [8], got 'tensor<8x1xf32>'}}
  %0 = transformer.layer_norm %x, %g, %b {epsilon = 1.0e-5 : f32} : (tensor<1x4x8xf32>, tensor<8xf32>, tensor<8x1xf32>) -> tensor<1x4x8xf32>
  // expected-error@-1 {{failed to infer returned types}}
  return
}

// -----

// Tests that a negative epsilon is rejected.
func.func @f(%x: tensor<1x4x8xf32>, %g: tensor<8xf32>) {
  // expected-error@+1 {{'transformer.rms_norm' op epsilon must be non-negative, got -1}}
  %0 = transformer.rms_norm %x, %g {epsilon = -1.0 : f32} : (tensor<1x4x8xf32>, tensor<8xf32>) -> tensor<1x4x8xf32>
  // expected-error@-1 {{failed to infer returned types}}
  return
}

// -----

// Tests that rms_norm gamma element types must match.
func.func @f(%x: tensor<1x4x8xf32>, %g: tensor<8xf16>) {
  // expected-error@+1 {{'transformer.rms_norm' op element types differ: 'tensor<1x4x8xf32>' and 'tensor<8xf16>'}}
  %0 = transformer.rms_norm %x, %g {epsilon = 1.0e-5 : f32} : (tensor<1x4x8xf32>, tensor<8xf16>) -> tensor<1x4x8xf32>
  // expected-error@-1 {{failed to infer returned types}}
  return
}

// -----

// Tests that a linear weight must be [out, in].
func.func @f(%x: tensor<1x?x64xf32>, %w: tensor<32x48xf32>) {
  // expected-error@+1 {{'transformer.linear' op expects weight of shape [out, 64] for input 'tensor<1x?x64xf32>', got 'tensor<32x48xf32>'}}
  %0 = transformer.linear %x, %w : (tensor<1x?x64xf32>, tensor<32x48xf32>) -> tensor<1x?x32xf32>
  // expected-error@-1 {{failed to infer returned types}}
  return
}

// -----

// Tests that a linear bias must be [out].
func.func @f(%x: tensor<1x?x64xf32>, %w: tensor<32x64xf32>, %b: tensor<64xf32>) {
  // expected-error@+1 {{'transformer.linear' op expects bias of shape [32], got 'tensor<64xf32>'}}
  %0 = transformer.linear %x, %w bias %b : (tensor<1x?x64xf32>, tensor<32x64xf32>, tensor<64xf32>) -> tensor<1x?x32xf32>
  // expected-error@-1 {{failed to infer returned types}}
  return
}

// -----

// Tests that a declared result type must match the inferred one.
func.func @f(%x: tensor<1x?x64xf32>, %w: tensor<32x64xf32>) {
  // expected-error@+1 {{'transformer.linear' op inferred type(s) 'tensor<1x?x32xf32>' are incompatible with return type(s) of operation 'tensor<1x?x16xf32>'}}
  %0 = transformer.linear %x, %w : (tensor<1x?x64xf32>, tensor<32x64xf32>) -> tensor<1x?x16xf32>
  // expected-error@-1 {{failed to infer returned types}}
  return
}

// -----

// Tests that add operands must have the same type.
func.func @f(%a: tensor<1x4x8xf32>, %b: tensor<1x4x6xf32>) {
  // expected-error@+1 {{'transformer.add' op requires the same type for all operands and results}}
  %0 = "transformer.add"(%a, %b) : (tensor<1x4x8xf32>, tensor<1x4x6xf32>) -> tensor<1x4x8xf32>
  return
}

// -----

// Tests that only causal attention has a sliding window.
func.func @f(%q: tensor<1x4x64xf32>, %k: tensor<1x4x64xf32>) {
  // expected-error@+1 {{'transformer.attention' op only causal attention takes a window}}
  %0 = transformer.attention bidirectional %q, %k, %k {num_heads = 4 : i64, num_kv_heads = 4 : i64, head_dim = 16 : i64, scale = 0.25 : f32, window = 2 : i64} : (tensor<1x4x64xf32>, tensor<1x4x64xf32>, tensor<1x4x64xf32>) -> tensor<1x4x64xf32>
  // expected-error@-1 {{failed to infer returned types}}
  return
}

// -----

// Tests that a sliding window is positive.
func.func @f(%q: tensor<1x4x64xf32>, %k: tensor<1x4x64xf32>) {
  // expected-error@+1 {{'transformer.attention' op window must be positive, got 0}}
  %0 = transformer.attention causal %q, %k, %k {num_heads = 4 : i64, num_kv_heads = 4 : i64, head_dim = 16 : i64, scale = 0.25 : f32, window = 0 : i64} : (tensor<1x4x64xf32>, tensor<1x4x64xf32>, tensor<1x4x64xf32>) -> tensor<1x4x64xf32>
  // expected-error@-1 {{failed to infer returned types}}
  return
}

// -----

// Tests that num_heads must be a multiple of num_kv_heads.
func.func @f(%q: tensor<1x4x48xf32>, %k: tensor<1x4x32xf32>) {
  // expected-error@+1 {{'transformer.attention' op num_heads (3) must be a multiple of num_kv_heads (2)}}
  %0 = transformer.attention causal %q, %k, %k {num_heads = 3 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 0.25 : f32} : (tensor<1x4x48xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>) -> tensor<1x4x48xf32>
  // expected-error@-1 {{failed to infer returned types}}
  return
}

// -----

// Tests that the query width must be num_heads * head_dim.
func.func @f(%q: tensor<1x4x60xf32>, %k: tensor<1x4x64xf32>) {
  // expected-error@+1 {{'transformer.attention' op expects query of shape [batch, seq, 64] (num_heads * head_dim), got 'tensor<1x4x60xf32>'}}
  %0 = transformer.attention causal %q, %k, %k {num_heads = 4 : i64, num_kv_heads = 4 : i64, head_dim = 16 : i64, scale = 0.25 : f32} : (tensor<1x4x60xf32>, tensor<1x4x64xf32>, tensor<1x4x64xf32>) -> tensor<1x4x60xf32>
  // expected-error@-1 {{failed to infer returned types}}
  return
}

// -----

// Tests that the key width must be num_kv_heads * head_dim.
func.func @f(%q: tensor<1x4x64xf32>, %k: tensor<1x4x64xf32>) {
  // expected-error@+1 {{'transformer.attention' op expects key of shape [batch, kv_seq, 32] (num_kv_heads * head_dim), got 'tensor<1x4x64xf32>'}}
  %0 = transformer.attention causal %q, %k, %k {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 0.25 : f32} : (tensor<1x4x64xf32>, tensor<1x4x64xf32>, tensor<1x4x64xf32>) -> tensor<1x4x64xf32>
  // expected-error@-1 {{failed to infer returned types}}
  return
}

// -----

// Tests that keys and values must have the same length.
func.func @f(%q: tensor<1x4x64xf32>, %k: tensor<1x4x64xf32>, %v: tensor<1x5x64xf32>, %i: index) {
  // expected-error@+1 {{'transformer.attention' op key 'tensor<1x4x64xf32>' and value 'tensor<1x5x64xf32>' have different lengths}}
  %0 = transformer.attention causal %q, %k, %v offset %i {num_heads = 4 : i64, num_kv_heads = 4 : i64, head_dim = 16 : i64, scale = 0.25 : f32} : (tensor<1x4x64xf32>, tensor<1x4x64xf32>, tensor<1x5x64xf32>, index) -> tensor<1x4x64xf32>
  // expected-error@-1 {{failed to infer returned types}}
  return
}

// -----

// Tests that the scale must be positive.
func.func @f(%q: tensor<1x4x64xf32>) {
  // expected-error@+1 {{'transformer.attention' op scale must be positive, got 0}}
  %0 = transformer.attention causal %q, %q, %q {num_heads = 4 : i64, num_kv_heads = 4 : i64, head_dim = 16 : i64, scale = 0.0 : f32} : (tensor<1x4x64xf32>, tensor<1x4x64xf32>, tensor<1x4x64xf32>) -> tensor<1x4x64xf32>
  // expected-error@-1 {{failed to infer returned types}}
  return
}

// -----

// Tests that causal attention without an offset needs as many keys as queries.
func.func @f(%q: tensor<1x4x64xf32>, %k: tensor<1x6x64xf32>) {
  // expected-error@+1 {{'transformer.attention' op causal attention without an offset needs as many keys as queries, got 'tensor<1x4x64xf32>' and 'tensor<1x6x64xf32>'}}
  %0 = transformer.attention causal %q, %k, %k {num_heads = 4 : i64, num_kv_heads = 4 : i64, head_dim = 16 : i64, scale = 0.25 : f32} : (tensor<1x4x64xf32>, tensor<1x6x64xf32>, tensor<1x6x64xf32>) -> tensor<1x4x64xf32>
  // expected-error@-1 {{failed to infer returned types}}
  return
}

// -----

// Tests that only causal attention takes an offset.
func.func @f(%q: tensor<1x4x64xf32>, %i: index) {
  // expected-error@+1 {{'transformer.attention' op only causal attention takes an offset}}
  %0 = transformer.attention bidirectional %q, %q, %q offset %i {num_heads = 4 : i64, num_kv_heads = 4 : i64, head_dim = 16 : i64, scale = 0.25 : f32} : (tensor<1x4x64xf32>, tensor<1x4x64xf32>, tensor<1x4x64xf32>, index) -> tensor<1x4x64xf32>
  // expected-error@-1 {{failed to infer returned types}}
  return
}

// -----

// Tests that a gated feed-forward needs a gate.
func.func @f(%x: tensor<1x4x8xf32>, %u: tensor<12x8xf32>, %d: tensor<8x12xf32>) {
  // expected-error@+1 {{'transformer.feed_forward' op gated activation 'swiglu' needs a gate weight}}
  %0 = transformer.feed_forward swiglu %x, up %u, down %d : (tensor<1x4x8xf32>, tensor<12x8xf32>, tensor<8x12xf32>) -> tensor<1x4x8xf32>
  // expected-error@-1 {{failed to infer returned types}}
  return
}

// -----

// Tests that an ungated feed-forward takes no gate.
func.func @f(%x: tensor<1x4x8xf32>, %u: tensor<12x8xf32>, %d: tensor<8x12xf32>) {
  // expected-error@+1 {{'transformer.feed_forward' op activation 'gelu' takes no gate weight}}
  %0 = transformer.feed_forward gelu %x, up %u, gate %u, down %d : (tensor<1x4x8xf32>, tensor<12x8xf32>, tensor<12x8xf32>, tensor<8x12xf32>) -> tensor<1x4x8xf32>
  // expected-error@-1 {{failed to infer returned types}}
  return
}

// -----

// Tests that a gated feed-forward takes no biases.
func.func @f(%x: tensor<1x4x8xf32>, %u: tensor<12x8xf32>, %b: tensor<12xf32>, %d: tensor<8x12xf32>) {
  // expected-error@+1 {{'transformer.feed_forward' op gated activation 'swiglu' takes no biases}}
  %0 = transformer.feed_forward swiglu %x, up %u bias %b, gate %u, down %d : (tensor<1x4x8xf32>, tensor<12x8xf32>, tensor<12xf32>, tensor<12x8xf32>, tensor<8x12xf32>) -> tensor<1x4x8xf32>
  // expected-error@-1 {{failed to infer returned types}}
  return
}

// -----

// Tests that the gate must have the up weight's shape.
func.func @f(%x: tensor<1x4x8xf32>, %u: tensor<12x8xf32>, %g: tensor<10x8xf32>, %d: tensor<8x12xf32>) {
  // expected-error@+1 {{'transformer.feed_forward' op gate weight 'tensor<10x8xf32>' differs from the up weight 'tensor<12x8xf32>'}}
  %0 = transformer.feed_forward swiglu %x, up %u, gate %g, down %d : (tensor<1x4x8xf32>, tensor<12x8xf32>, tensor<10x8xf32>, tensor<8x12xf32>) -> tensor<1x4x8xf32>
  // expected-error@-1 {{failed to infer returned types}}
  return
}

// -----

// Tests that the down weight must be [dim, hidden].
func.func @f(%x: tensor<1x4x8xf32>, %u: tensor<12x8xf32>, %d: tensor<8x10xf32>) {
  // expected-error@+1 {{'transformer.feed_forward' op expects down weight of shape [8, 12], got 'tensor<8x10xf32>'}}
  %0 = transformer.feed_forward relu %x, up %u, down %d : (tensor<1x4x8xf32>, tensor<12x8xf32>, tensor<8x10xf32>) -> tensor<1x4x8xf32>
  // expected-error@-1 {{failed to infer returned types}}
  return
}

// -----

// Tests that the down bias must be [dim].
func.func @f(%x: tensor<1x4x8xf32>, %u: tensor<12x8xf32>, %d: tensor<8x12xf32>, %b: tensor<12xf32>) {
  // expected-error@+1 {{'transformer.feed_forward' op expects down bias of shape [8], got 'tensor<12xf32>'}}
  %0 = transformer.feed_forward relu %x, up %u, down %d bias %b : (tensor<1x4x8xf32>, tensor<12x8xf32>, tensor<8x12xf32>, tensor<12xf32>) -> tensor<1x4x8xf32>
  // expected-error@-1 {{failed to infer returned types}}
  return
}

// -----

// Tests that cache dimensions must be positive.
// expected-error@+1 {{kv_cache dimensions must be positive, got layers = 0, batch = 1, kv_heads = 2, head_dim = 16, capacity = 8}}
func.func @f(%c: !transformer.kv_cache<layers = 0, batch = 1, kv_heads = 2, head_dim = 16, capacity = 8, element_type = f32>) {
  return
}

// -----

// Tests that the cache element type must be f32, f16 or bf16.
// expected-error@+1 {{kv_cache element type must be f32, f16 or bf16, got 'i32'}}
func.func @f(%c: !transformer.kv_cache<layers = 1, batch = 1, kv_heads = 2, head_dim = 16, capacity = 8, element_type = i32>) {
  return
}

// -----

// Tests that a float type other than the three is refused too.
// expected-error@+1 {{kv_cache element type must be f32, f16 or bf16, got 'f64'}}
func.func @f(%c: !transformer.kv_cache<layers = 1, batch = 1, kv_heads = 2, head_dim = 16, capacity = 8, element_type = f64>) {
  return
}

// -----

// Tests that rows appended to an f16 cache are f16 or f32 (rounded), not
// another type.
func.func @f(%c: !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 2, head_dim = 16, capacity = 8, element_type = f16>, %k: tensor<1x1x32xbf16>, %p: index) {
  // expected-error@+1 {{'transformer.kv_cache_append' op expects key of element type 'f16' or f32, got 'tensor<1x1x32xbf16>'}}
  %0 = transformer.kv_cache_append %c[0], %k, %k at %p : !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 2, head_dim = 16, capacity = 8, element_type = f16>, tensor<1x1x32xbf16>, tensor<1x1x32xbf16>
  return
}

// -----

// Tests that an f32 cache is not appended narrower rows.
func.func @f(%c: !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 2, head_dim = 16, capacity = 8, element_type = f32>, %k: tensor<1x1x32xf16>, %p: index) {
  // expected-error@+1 {{'transformer.kv_cache_append' op expects key of element type 'f32', got 'tensor<1x1x32xf16>'}}
  %0 = transformer.kv_cache_append %c[0], %k, %k at %p : !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 2, head_dim = 16, capacity = 8, element_type = f32>, tensor<1x1x32xf16>, tensor<1x1x32xf16>
  return
}

// -----

// Tests that attention takes f16 keys and values only with f32 queries
// (a narrower cache's rows), not other mixes.
func.func @f(%q: tensor<1x4x32xf16>, %k: tensor<1x4x32xf32>) {
  // expected-error@+1 {{'transformer.attention' op element types differ: 'tensor<1x4x32xf16>' and 'tensor<1x4x32xf32>' (keys and values may be f16 or bf16 with f32 queries)}}
  %0 = transformer.attention causal %q, %k, %k {num_heads = 2 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 0.25 : f32} : (tensor<1x4x32xf16>, tensor<1x4x32xf32>, tensor<1x4x32xf32>) -> tensor<1x4x32xf16>
  // expected-error@-1 {{failed to infer returned types}}
  return
}

// -----

// Tests that the appended layer must exist.
func.func @f(%c: !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 2, head_dim = 16, capacity = 8, element_type = f32>, %k: tensor<1x1x32xf32>, %p: index) {
  // expected-error@+1 {{'transformer.kv_cache_append' op layer 2 is out of range for a cache of 2 layers}}
  %0 = transformer.kv_cache_append %c[2], %k, %k at %p : !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 2, head_dim = 16, capacity = 8, element_type = f32>, tensor<1x1x32xf32>, tensor<1x1x32xf32>
  return
}

// -----

// Tests that appended keys must be cache rows.
func.func @f(%c: !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 2, head_dim = 16, capacity = 8, element_type = f32>, %k: tensor<1x1x64xf32>, %p: index) {
  // expected-error@+1 {{'transformer.kv_cache_append' op expects key of shape [1, seq, 32] (batch, seq, kv_heads * head_dim), got 'tensor<1x1x64xf32>'}}
  %0 = transformer.kv_cache_append %c[0], %k, %k at %p : !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 2, head_dim = 16, capacity = 8, element_type = f32>, tensor<1x1x64xf32>, tensor<1x1x64xf32>
  return
}

// -----

// Tests that appending more positions than the capacity is rejected.
func.func @f(%c: !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 2, head_dim = 16, capacity = 8, element_type = f32>, %k: tensor<1x9x32xf32>, %p: index) {
  // expected-error@+1 {{'transformer.kv_cache_append' op key of 9 positions exceeds the cache capacity of 8}}
  %0 = transformer.kv_cache_append %c[0], %k, %k at %p : !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 2, head_dim = 16, capacity = 8, element_type = f32>, tensor<1x9x32xf32>, tensor<1x9x32xf32>
  return
}

// -----

// Tests that appended keys and values must agree.
func.func @f(%c: !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 2, head_dim = 16, capacity = 8, element_type = f32>, %k: tensor<1x1x32xf32>, %v: tensor<1x2x32xf32>, %p: index) {
  // expected-error@+1 {{'transformer.kv_cache_append' op key 'tensor<1x1x32xf32>' and value 'tensor<1x2x32xf32>' differ}}
  %0 = transformer.kv_cache_append %c[0], %k, %v at %p : !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 2, head_dim = 16, capacity = 8, element_type = f32>, tensor<1x1x32xf32>, tensor<1x2x32xf32>
  return
}

// -----

// Tests that read values must have the cache element type.
func.func @f(%c: !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 2, head_dim = 16, capacity = 8, element_type = f32>, %n: index) {
  // expected-error@+1 {{'transformer.kv_cache_read' op expects key of element type 'f32', got 'tensor<1x?x32xf16>'}}
  %k, %v = transformer.kv_cache_read %c[0] length %n : !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 2, head_dim = 16, capacity = 8, element_type = f32> -> tensor<1x?x32xf16>, tensor<1x?x32xf16>
  return
}

// -----

// Tests that the read layer must exist.
func.func @f(%c: !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 2, head_dim = 16, capacity = 8, element_type = f32>, %n: index) {
  // expected-error@+1 {{'transformer.kv_cache_read' op layer -1 is out of range for a cache of 2 layers}}
  %k, %v = transformer.kv_cache_read %c[-1] length %n : !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 2, head_dim = 16, capacity = 8, element_type = f32> -> tensor<1x?x32xf32>, tensor<1x?x32xf32>
  return
}

// -----

// Tests that a cache op's layer is a constant or a value, not both.
func.func @f(%c: !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 2, head_dim = 16, capacity = 8, element_type = f32>, %n: index, %l: index) {
  // expected-error@+1 {{'transformer.kv_cache_read' op needs either a constant or a dynamic layer}}
  %k, %v = transformer.kv_cache_read %c[%l] length %n {layer = 1 : i64} : !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 2, head_dim = 16, capacity = 8, element_type = f32> -> tensor<1x?x32xf32>, tensor<1x?x32xf32>
  return
}

// -----

// Tests that the sinusoidal encoding needs an even feature dimension.
func.func @f(%x: tensor<1x?x7xf32>) {
  // expected-error@+2 {{'transformer.sinusoidal_position' op feature dimension must be even, got 7}}
  // expected-error@+1 {{failed to infer returned types}}
  %y = transformer.sinusoidal_position %x : (tensor<1x?x7xf32>) -> tensor<1x?x7xf32>
  return
}

// -----

// Tests that the sinusoidal encoding needs [batch, seq, dim] input.
func.func @f(%x: tensor<?x8xf32>) {
  // expected-error@+2 {{'transformer.sinusoidal_position' op expects input of shape [batch, seq, dim] with a static last dimension, got 'tensor<?x8xf32>'}}
  // expected-error@+1 {{failed to infer returned types}}
  %y = transformer.sinusoidal_position %x : (tensor<?x8xf32>) -> tensor<?x8xf32>
  return
}

// -----

// Tests that the sinusoidal base must exceed 1.
func.func @f(%x: tensor<1x?x8xf32>) {
  // expected-error@+2 {{'transformer.sinusoidal_position' op base must be greater than 1, got 1}}
  // expected-error@+1 {{failed to infer returned types}}
  %y = transformer.sinusoidal_position %x {base = 1.0 : f32} : (tensor<1x?x8xf32>) -> tensor<1x?x8xf32>
  return
}

// -----

// Tests that the padding mask needs [batch, seq] ids.
func.func @f(%ids: tensor<?xi32>) {
  // expected-error@+2 {{'transformer.padding_mask' op expects ids of shape [batch, seq], got 'tensor<?xi32>'}}
  // expected-error@+1 {{failed to infer returned types}}
  %m = transformer.padding_mask %ids {pad_id = 0 : i64} : (tensor<?xi32>) -> tensor<?xi1>
  return
}

// -----

// Tests that pad_id must not be negative.
func.func @f(%ids: tensor<1x?xi32>) {
  // expected-error@+2 {{'transformer.padding_mask' op pad_id must be non-negative, got -1}}
  // expected-error@+1 {{failed to infer returned types}}
  %m = transformer.padding_mask %ids {pad_id = -1 : i64} : (tensor<1x?xi32>) -> tensor<1x?xi1>
  return
}

// -----

// Tests that the key mask covers the keys (not the queries) of the batch.
func.func @f(%q: tensor<1x4x8xf32>, %kv: tensor<1x6x8xf32>, %m: tensor<1x4xi1>) {
  // expected-error@+2 {{'transformer.attention' op expects key_mask of shape [1, 6] (batch, kv_seq), got 'tensor<1x4xi1>'}}
  // expected-error@+1 {{failed to infer returned types}}
  %a = transformer.attention cross %q, %kv, %kv key_mask %m {num_heads = 2 : i64, num_kv_heads = 2 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : (tensor<1x4x8xf32>, tensor<1x6x8xf32>, tensor<1x6x8xf32>, tensor<1x4xi1>) -> tensor<1x4x8xf32>
  return
}

// -----

// Tests that cross-attention takes no offset (only causal attention does).
func.func @f(%q: tensor<1x4x8xf32>, %kv: tensor<1x6x8xf32>, %p: index) {
  // expected-error@+2 {{'transformer.attention' op only causal attention takes an offset}}
  // expected-error@+1 {{failed to infer returned types}}
  %a = transformer.attention cross %q, %kv, %kv offset %p {num_heads = 2 : i64, num_kv_heads = 2 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : (tensor<1x4x8xf32>, tensor<1x6x8xf32>, tensor<1x6x8xf32>, index) -> tensor<1x4x8xf32>
  return
}

// -----

// Tests that the key mask is i1.
func.func @f(%q: tensor<1x4x8xf32>, %kv: tensor<1x6x8xf32>, %m: tensor<1x6xi32>) {
  // expected-error@+1 {{'transformer.attention' op operand #3 must be ranked tensor of 1-bit signless integer values, but got 'tensor<1x6xi32>'}}
  %a = transformer.attention cross %q, %kv, %kv key_mask %m {num_heads = 2 : i64, num_kv_heads = 2 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : (tensor<1x4x8xf32>, tensor<1x6x8xf32>, tensor<1x6x8xf32>, tensor<1x6xi32>) -> tensor<1x4x8xf32>
  return
}
