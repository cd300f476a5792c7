// RUN: kiln-opt %s -convert-transformer-to-linalg -split-input-file | FileCheck %s

// Tests that linear is a bias broadcast then a contraction with the weight in
// its [out, in] layout: loops (batch, seq, out) parallel, (in) reduction.
// CHECK-LABEL: func.func @linear
// CHECK: %[[INIT:.*]] = linalg.generic {{.*}} ins(%{{.*}} : tensor<4xf32>) outs(%{{.*}} : tensor<1x?x4xf32>)
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%{{.*}}, %{{.*}} : tensor<1x?x8xf32>, tensor<4x8xf32>) outs(%[[INIT]] : tensor<1x?x4xf32>)
// CHECK: arith.mulf
// CHECK: arith.addf
func.func @linear(%x: tensor<1x?x8xf32>, %w: tensor<4x8xf32>, %b: tensor<4xf32>) -> tensor<1x?x4xf32> {
  %y = transformer.linear %x, %w bias %b : (tensor<1x?x8xf32>, tensor<4x8xf32>, tensor<4xf32>) -> tensor<1x?x4xf32>
  return %y : tensor<1x?x4xf32>
}

// -----

// Tests GQA attention as one fused kernel: a parallel loop over (batch,
// head, query) rows; query head h reads kv head h / 2 (2 heads share one kv
// head); the query is pre-scaled; keys up to offset + s are visited in
// blocks of 16 with an online softmax (running max, sum and a head_dim-wide
// accumulator) and the row is written once, divided by the sum. No score
// tensor is built.
// CHECK-LABEL: func.func @attention
// CHECK-SAME: %[[Q:[a-z0-9]+]]: tensor<1x?x8xf32>, %[[K:[a-z0-9]+]]: tensor<1x?x4xf32>, %[[POS:[a-z0-9]+]]: index
// CHECK-NOT: linalg.generic
// CHECK: %[[T:.*]] = tensor.dim %[[K]], %c1
// CHECK: scf.forall (%[[B:.*]], %[[H:.*]], %[[S:.*]]) in (%{{.*}}, 2, %{{.*}}) shared_outs(%[[OUT:.*]] = %{{.*}}) -> (tensor<1x?x8xf32>)
// CHECK: %[[H0:.*]] = arith.muli %[[H]], %c1
// CHECK: %[[KVH:.*]] = arith.divui %[[H0]], %c2
// CHECK: %[[KVCOL:.*]] = arith.muli %[[KVH]], %c4
// CHECK: %[[QCOL:.*]] = arith.muli %[[H0]], %c4
// CHECK: %[[QROW:.*]] = vector.transfer_read %[[Q]][%[[B]], %[[S]], %[[QCOL]]]{{.*}} : tensor<1x?x8xf32>, vector<4xf32>
// CHECK: %[[QS:.*]] = arith.mulf %[[QROW]], %{{.*}} : vector<4xf32>
// CHECK: %[[P1:.*]] = arith.addi %[[S]], %[[POS]]
// CHECK: %[[P2:.*]] = arith.addi %[[P1]], %c1
// CHECK: %[[LIMIT:.*]] = arith.minsi %[[T]], %[[P2]]
// CHECK: scf.for %[[T0:.*]] = %{{.*}} to %[[LIMIT]] step %c16 iter_args(%[[M:.*]] = %cst{{.*}}, %[[L:.*]] = %cst{{.*}}, %[[ACC:.*]] = %cst{{.*}}) -> (f32, f32, vector<4xf32>)
// CHECK-COUNT-16: vector.reduction <add>
// CHECK: %[[VIS:.*]] = vector.from_elements {{.*}} : vector<16xi1>
// CHECK: %[[SV:.*]] = vector.from_elements {{.*}} : vector<16xf32>
// CHECK: %[[MASKED:.*]] = arith.select %[[VIS]], %[[SV]], %{{.*}} : vector<16xi1>, vector<16xf32>
// CHECK: %[[BMAX:.*]] = vector.reduction <maximumf>, %[[MASKED]]
// CHECK: %[[MNEW:.*]] = arith.maximumf %[[M]], %[[BMAX]]
// CHECK: math.exp {{.*}} : f32
// CHECK: math.exp {{.*}} : vector<16xf32>
// CHECK-COUNT-16: vector.fma {{.*}} : vector<4xf32>
// CHECK: scf.yield %[[MNEW]]
// CHECK: arith.divf {{.*}} : vector<4xf32>
// CHECK: scf.forall.in_parallel
// CHECK-NEXT: tensor.parallel_insert_slice %{{.*}} into %[[OUT]][%[[B]], %[[S]], %[[QCOL]]] [1, 1, 4] [1, 1, 1]
func.func @attention(%q: tensor<1x?x8xf32>, %k: tensor<1x?x4xf32>, %pos: index) -> tensor<1x?x8xf32> {
  %a = transformer.attention causal %q, %k, %k offset %pos {num_heads = 2 : i64, num_kv_heads = 1 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : (tensor<1x?x8xf32>, tensor<1x?x4xf32>, tensor<1x?x4xf32>, index) -> tensor<1x?x8xf32>
  return %a : tensor<1x?x8xf32>
}

// -----

// Tests sliding-window attention: a query at position p streams over keys
// from max(0, p + 1 - window) only; the keys before are never read.
// CHECK-LABEL: func.func @window_attention
// CHECK: %[[P1:.*]] = arith.addi %{{.*}}, %{{.*}}
// CHECK: %[[END:.*]] = arith.addi %[[P1]], %c1
// CHECK: %[[LIMIT:.*]] = arith.minsi %{{.*}}, %[[END]]
// CHECK: %[[FIRST:.*]] = arith.subi %[[END]], %c6
// CHECK: %[[LOWER:.*]] = arith.maxsi %c0{{.*}}, %[[FIRST]]
// CHECK: scf.for %{{.*}} = %[[LOWER]] to %[[LIMIT]] step %c16
func.func @window_attention(%q: tensor<1x?x8xf32>, %k: tensor<1x?x4xf32>, %pos: index) -> tensor<1x?x8xf32> {
  %a = transformer.attention causal %q, %k, %k offset %pos {num_heads = 2 : i64, num_kv_heads = 1 : i64, head_dim = 4 : i64, scale = 0.5 : f32, window = 6 : i64} : (tensor<1x?x8xf32>, tensor<1x?x4xf32>, tensor<1x?x4xf32>, index) -> tensor<1x?x8xf32>
  return %a : tensor<1x?x8xf32>
}

// -----

// Tests that weights are left to kiln-weight-buffers (the ABI's job).
// CHECK-LABEL: func.func @weights()
// CHECK-NEXT: %[[W:.*]] = transformer.weight "w"[3] : tensor<4x8xf32>
// CHECK-NEXT: return %[[W]]
func.func @weights() -> tensor<4x8xf32> {
  %w = transformer.weight "w" [3] : tensor<4x8xf32>
  return %w : tensor<4x8xf32>
}

// -----

// Tests the cache storage [layers, 2, batch, capacity, width]: append inserts
// the key and value rows at the position, read slices the prefix.
// CHECK-LABEL: func.func @cache
// CHECK-SAME: %[[C:[a-z0-9]+]]: tensor<2x2x1x16x4xf32>, %[[KV:[a-z0-9]+]]: tensor<1x?x4xf32>, %[[POS:[a-z0-9]+]]: index, %[[LEN:[a-z0-9]+]]: index
// CHECK-SAME: -> (tensor<1x?x4xf32>, tensor<2x2x1x16x4xf32>)
// The append never writes past the capacity (16): position + rows is checked.
// CHECK: %[[ROWS:.*]] = tensor.dim %[[KV]]
// CHECK: %[[END:.*]] = arith.addi %[[POS]], %[[ROWS]]
// CHECK: %[[OVER:.*]] = arith.cmpi ugt, %[[END]], %c16
// CHECK: scf.if %[[OVER]] {
// CHECK: func.call @kiln_fatal_position(
// CHECK: %[[K1:.*]] = tensor.insert_slice %[[KV]] into %[[C]][1, 0, 0, %[[POS]], 0]
// CHECK: %[[V1:.*]] = tensor.insert_slice %[[KV]] into %[[K1]][1, 1, 0, %[[POS]], 0]
// CHECK: %[[VV:.*]] = tensor.extract_slice %[[V1]][1, 1, 0, 0, 0] [1, 1, 1, %[[LEN]], 4]
// CHECK: return %[[VV]], %[[V1]]
func.func @cache(%c: !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 1, head_dim = 4, capacity = 16, element_type = f32>, %k: tensor<1x?x4xf32>, %pos: index, %len: index) -> (tensor<1x?x4xf32>, !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 1, head_dim = 4, capacity = 16, element_type = f32>) {
  %c1 = transformer.kv_cache_append %c[1], %k, %k at %pos : !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 1, head_dim = 4, capacity = 16, element_type = f32>, tensor<1x?x4xf32>, tensor<1x?x4xf32>
  %kk, %vv = transformer.kv_cache_read %c1[1] length %len : !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 1, head_dim = 4, capacity = 16, element_type = f32> -> tensor<1x?x4xf32>, tensor<1x?x4xf32>
  return %vv, %c1 : tensor<1x?x4xf32>, !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 1, head_dim = 4, capacity = 16, element_type = f32>
}

// -----

// Tests that a layer given as a value is the slices' first offset.
// CHECK-LABEL: func.func @cache_layer_value
// CHECK-SAME: %[[C:[a-z0-9]+]]: tensor<2x2x1x16x4xf32>, %[[KV:[a-z0-9]+]]: tensor<1x?x4xf32>, %[[POS:[a-z0-9]+]]: index, %[[LEN:[a-z0-9]+]]: index, %[[L:[a-z0-9]+]]: index
// CHECK: %[[K1:.*]] = tensor.insert_slice %[[KV]] into %[[C]][%[[L]], 0, 0, %[[POS]], 0]
// CHECK: %[[V1:.*]] = tensor.insert_slice %[[KV]] into %[[K1]][%[[L]], 1, 0, %[[POS]], 0]
// CHECK: tensor.extract_slice %[[V1]][%[[L]], 1, 0, 0, 0] [1, 1, 1, %[[LEN]], 4]
func.func @cache_layer_value(%c: !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 1, head_dim = 4, capacity = 16, element_type = f32>, %k: tensor<1x?x4xf32>, %pos: index, %len: index, %layer: index) -> (tensor<1x?x4xf32>, !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 1, head_dim = 4, capacity = 16, element_type = f32>) {
  %c1 = transformer.kv_cache_append %c[%layer], %k, %k at %pos : !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 1, head_dim = 4, capacity = 16, element_type = f32>, tensor<1x?x4xf32>, tensor<1x?x4xf32>
  %kk, %vv = transformer.kv_cache_read %c1[%layer] length %len : !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 1, head_dim = 4, capacity = 16, element_type = f32> -> tensor<1x?x4xf32>, tensor<1x?x4xf32>
  return %vv, %c1 : tensor<1x?x4xf32>, !transformer.kv_cache<layers = 2, batch = 1, kv_heads = 1, head_dim = 4, capacity = 16, element_type = f32>
}

// -----

// Tests cross-attention with a key padding mask: no causal condition (all
// keys up to the key count), and key t is hidden where mask[b, t] is true.
// CHECK-LABEL: func.func @cross_attention_key_mask
// CHECK-SAME: %{{.*}}: tensor<1x?x8xf32>, %[[KV:[a-z0-9]+]]: tensor<1x?x8xf32>, %[[M:[a-z0-9]+]]: tensor<1x?xi1>
// CHECK: %[[T:.*]] = tensor.dim %[[KV]], %c1
// CHECK: scf.forall (%[[B:.*]], %{{.*}}, %{{.*}}) in
// CHECK-NOT: arith.minsi %[[T]]
// CHECK: scf.for %{{.*}} = %{{.*}} to %[[T]] step %c16
// CHECK: %[[PAD:.*]] = tensor.extract %[[M]][%[[B]], %{{.*}}] : tensor<1x?xi1>
// CHECK: %[[KEEP:.*]] = arith.xori %[[PAD]], %true
// CHECK: arith.andi %{{.*}}, %[[KEEP]]
// CHECK: return
func.func @cross_attention_key_mask(%q: tensor<1x?x8xf32>, %kv: tensor<1x?x8xf32>, %m: tensor<1x?xi1>) -> tensor<1x?x8xf32> {
  %a = transformer.attention cross %q, %kv, %kv key_mask %m {num_heads = 2 : i64, num_kv_heads = 2 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : (tensor<1x?x8xf32>, tensor<1x?x8xf32>, tensor<1x?x8xf32>, tensor<1x?xi1>) -> tensor<1x?x8xf32>
  return %a : tensor<1x?x8xf32>
}

// -----

// Tests the padding mask: an elementwise comparison with pad_id.
// CHECK-LABEL: func.func @padding_mask
// CHECK: %[[E:.*]] = tensor.empty(%{{.*}}) : tensor<1x?xi1>
// CHECK: linalg.generic {{.*}} ins(%{{.*}} : tensor<1x?xi32>) outs(%[[E]] : tensor<1x?xi1>)
// CHECK: ^bb0(%[[ID:.*]]: i32, %{{.*}}: i1):
// CHECK: %[[PAD:.*]] = arith.constant 3 : i32
// CHECK: arith.cmpi eq, %[[ID]], %[[PAD]] : i32
func.func @padding_mask(%ids: tensor<1x?xi32>) -> tensor<1x?xi1> {
  %m = transformer.padding_mask %ids {pad_id = 3 : i64} : (tensor<1x?xi32>) -> tensor<1x?xi1>
  return %m : tensor<1x?xi1>
}

// -----

// Tests the sinusoidal encoding: the angle (offset + s) / base^(2i/dim) in
// f64, sin for even features and cos for odd ones, rounded to f32 and added.
// CHECK-LABEL: func.func @sinusoidal_position
// CHECK-SAME: %[[X:[a-z0-9]+]]: tensor<1x?x8xf32>, %[[POS:[a-z0-9]+]]: index
// CHECK: linalg.generic {{.*}} ins(%[[X]] : tensor<1x?x8xf32>)
// CHECK: %[[S:.*]] = linalg.index 1
// CHECK: %[[D:.*]] = linalg.index 2
// CHECK: arith.addi %[[S]], %[[POS]]
// CHECK: math.powf %{{.*}}, %{{.*}} : f64
// CHECK: %[[SIN:.*]] = math.sin %{{.*}} : f64
// CHECK: %[[COS:.*]] = math.cos %{{.*}} : f64
// CHECK: %[[PE:.*]] = arith.select %{{.*}}, %[[SIN]], %[[COS]] : f64
// CHECK: %[[PE32:.*]] = arith.truncf %[[PE]] : f64 to f32
// CHECK: arith.addf %{{.*}}, %[[PE32]] : f32
func.func @sinusoidal_position(%x: tensor<1x?x8xf32>, %pos: index) -> tensor<1x?x8xf32> {
  %y = transformer.sinusoidal_position %x offset %pos : (tensor<1x?x8xf32>, index) -> tensor<1x?x8xf32>
  return %y : tensor<1x?x8xf32>
}

// -----

// Tests a scaled embedding: the gathered row is multiplied by the scale.
// CHECK-LABEL: func.func @scaled_embedding
// CHECK: %[[ROW:.*]] = tensor.extract
// CHECK: %[[SCALE:.*]] = arith.constant 8.000000e+00 : f32
// CHECK: arith.mulf %[[ROW]], %[[SCALE]] : f32
func.func @scaled_embedding(%ids: tensor<1x?xi32>, %t: tensor<16x8xf32>) -> tensor<1x?x8xf32> {
  %x = transformer.embedding %ids, %t {scale = 8.0 : f32} : (tensor<1x?xi32>, tensor<16x8xf32>) -> tensor<1x?x8xf32>
  return %x : tensor<1x?x8xf32>
}

// -----

// Tests rotary embeddings: inv_freq = 1 / theta^(2i / head_dim) folded to a
// constant (1 and 1/100 for head_dim 4, theta 10000); cos and sin of
// (offset + s) * inv_freq computed once per op into [seq, head_dim / 2]
// tables that every head reads. The generic is marked as reading its input
// only within heads of 4 columns (kiln-contraction-kernels may then apply it
// to whole heads of a projection's kernel).
// CHECK-LABEL: func.func @rope
// CHECK-SAME: %[[X:[a-z0-9]+]]: tensor<1x?x8xf32>, %[[POS:[a-z0-9]+]]: index
// CHECK: %[[FREQ:.*]] = arith.constant dense<[1.000000e+00, 0.00999999977]> : tensor<2xf32>
// CHECK: %[[TABLES:.*]]:2 = linalg.generic {{.*}} ins(%[[FREQ]] : tensor<2xf32>) outs(%{{.*}}, %{{.*}} : tensor<?x2xf32>, tensor<?x2xf32>)
// CHECK: %[[S:.*]] = linalg.index 0
// CHECK: arith.addi %[[S]], %[[POS]]
// CHECK: math.cos
// CHECK: math.sin
// CHECK: linalg.generic {{.*}} ins(%[[X]] : tensor<1x?x8xf32>) outs(%{{.*}} : tensor<1x?x8xf32>) {
// CHECK-NOT: math.powf
// CHECK: tensor.extract %[[TABLES]]#0
// CHECK: tensor.extract %[[TABLES]]#1
// CHECK: tensor.extract %[[X]]
func.func @rope(%x: tensor<1x?x8xf32>, %pos: index) -> tensor<1x?x8xf32> {
  %r = transformer.rope rotate_half %x offset %pos {head_dim = 4 : i64, theta = 1.000000e+04 : f32} : (tensor<1x?x8xf32>, index) -> tensor<1x?x8xf32>
  return %r : tensor<1x?x8xf32>
}

// -----

// Tests RoPE scaling: the frequency factors divide the folded frequencies
// (1 / 4 and 0.01 / 8) and the attention factor scales the cosine and sine
// tables once per position, not per element.
// CHECK-LABEL: func.func @rope_scaled
// CHECK: %[[FREQ:.*]] = arith.constant dense<[2.500000e-01, 1.250000e-03]> : tensor<2xf32>
// CHECK: linalg.generic {{.*}} ins(%[[FREQ]] : tensor<2xf32>)
// CHECK: %[[COS:.*]] = math.cos
// CHECK: %[[SIN:.*]] = math.sin
// CHECK: %[[M:.*]] = arith.constant 1.500000e+00 : f32
// CHECK: %[[C:.*]] = arith.mulf %[[COS]], %[[M]]
// CHECK: %[[S:.*]] = arith.mulf %[[SIN]], %[[M]]
// CHECK: linalg.yield %[[C]], %[[S]]
func.func @rope_scaled(%x: tensor<1x?x8xf32>) -> tensor<1x?x8xf32> {
  %r = transformer.rope interleaved %x {head_dim = 4 : i64, theta = 1.000000e+04 : f32, freq_factors = array<f32: 4.0, 8.0>, attention_factor = 1.5 : f32} : (tensor<1x?x8xf32>) -> tensor<1x?x8xf32>
  return %r : tensor<1x?x8xf32>
}

// -----

// Tests GQA with 4 kv heads shared by pairs of query heads: one iteration
// per (batch, kv head, query) serves both query heads of the group, so each
// key row is read once and scored against two queries.
// CHECK-LABEL: func.func @gqa_attention
// CHECK-SAME: %[[Q:[a-z0-9]+]]: tensor<1x?x32xf32>, %[[K:[a-z0-9]+]]: tensor<1x?x16xf32>
// CHECK: scf.forall (%{{.*}}, %[[KVH:.*]], %{{.*}}) in (%{{.*}}, 4, %{{.*}}) shared_outs
// CHECK: arith.muli %[[KVH]], %c2
// CHECK-COUNT-2: vector.transfer_read %[[Q]]
// CHECK: scf.for {{.*}} -> (f32, f32, vector<4xf32>, f32, f32, vector<4xf32>)
// CHECK: vector.transfer_read %[[K]]
// CHECK-COUNT-2: vector.reduction <add>
// CHECK: vector.transfer_read %[[K]]
// CHECK: scf.forall.in_parallel
// CHECK-COUNT-2: tensor.parallel_insert_slice
func.func @gqa_attention(%q: tensor<1x?x32xf32>, %k: tensor<1x?x16xf32>, %pos: index) -> tensor<1x?x32xf32> {
  %a = transformer.attention causal %q, %k, %k offset %pos {num_heads = 8 : i64, num_kv_heads = 4 : i64, head_dim = 4 : i64, scale = 0.5 : f32} : (tensor<1x?x32xf32>, tensor<1x?x16xf32>, tensor<1x?x16xf32>, index) -> tensor<1x?x32xf32>
  return %a : tensor<1x?x32xf32>
}

// -----

// Tests a per-head RMS norm (group_size 4 over 8 features): x is viewed as
// [1, ?, 2, 4], normalized over its last dimension with the [4] gains, and
// viewed back.
// CHECK-LABEL: func.func @rms_norm_grouped
// CHECK-SAME: %[[X:[a-z0-9]+]]: tensor<1x?x8xf32>, %[[G:[a-z0-9]+]]: tensor<4xf32>
// CHECK: %[[E:.*]] = tensor.expand_shape %[[X]] {{\[\[}}0], [1], [2, 3]] output_shape [1, %{{.*}}, 2, 4] : tensor<1x?x8xf32> into tensor<1x?x2x4xf32>
// CHECK: %[[SQ:.*]] = linalg.generic {{.*}} ins(%[[E]] : tensor<1x?x2x4xf32>) outs(%{{.*}} : tensor<1x?x2xf32>)
// CHECK: %[[N:.*]] = linalg.generic {{.*}} ins(%[[E]], %[[SQ]], %[[G]] : tensor<1x?x2x4xf32>, tensor<1x?x2xf32>, tensor<4xf32>)
// CHECK: math.rsqrt
// CHECK: tensor.collapse_shape %[[N]] {{\[\[}}0], [1], [2, 3]] : tensor<1x?x2x4xf32> into tensor<1x?x8xf32>
func.func @rms_norm_grouped(%x: tensor<1x?x8xf32>, %g: tensor<4xf32>) -> tensor<1x?x8xf32> {
  %y = transformer.rms_norm %x, %g {epsilon = 1.0e-6 : f32, group_size = 4 : i64} : (tensor<1x?x8xf32>, tensor<4xf32>) -> tensor<1x?x8xf32>
  return %y : tensor<1x?x8xf32>
}
