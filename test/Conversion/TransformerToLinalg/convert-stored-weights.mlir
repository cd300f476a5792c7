// RUN: kiln-opt %s -convert-transformer-to-linalg -split-input-file | FileCheck %s

// Weights kept as published (#transformer.encoding): the weight becomes a
// weight of its bytes, tensor<rows x row_bytes x i8> (row_bytes = cols /
// block elements * block bytes), and is dequantized where it is read.

// Tests a q8_0 linear: 64 columns are 2 blocks of 34 bytes (an f16 scale d
// and 32 signed bytes), so the weight is 64x68 bytes; a generic marked
// kiln.dequantize reads them (d * qs[j]) into the 64x64 f32 matrix that the
// contraction reads. No f32 weight is left.
// CHECK-LABEL: func.func @linear_q8_0
// CHECK-SAME: %[[X:[a-z0-9]+]]: tensor<1x?x64xf32>
// CHECK-NOT: tensor<64x64xf32, #transformer.encoding
// CHECK: %[[W:.*]] = transformer.weight "blk.0.attn_q.weight"[3] : tensor<64x68xi8>
// CHECK: %[[E:.*]] = tensor.empty() : tensor<64x64xf32>
// CHECK: %[[DQ:.*]] = linalg.generic {indexing_maps = [#{{.*}}], iterator_types = ["parallel", "parallel"]} outs(%[[E]] : tensor<64x64xf32>) attrs = {kiln.dequantize = #transformer.encoding<q8_0>}
// CHECK-DAG: linalg.index 0
// CHECK-DAG: linalg.index 1
// CHECK-DAG: tensor.extract %[[W]][{{.*}}] : tensor<64x68xi8>
// CHECK-DAG: arith.bitcast %{{.*}} : i16 to f16
// CHECK-DAG: arith.extsi %{{.*}} : i8 to i32
// CHECK: arith.mulf
// CHECK: linalg.yield %{{.*}} : f32
// CHECK-NEXT: } -> tensor<64x64xf32>
// CHECK: linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%[[X]], %[[DQ]] : tensor<1x?x64xf32>, tensor<64x64xf32>) outs(%{{.*}} : tensor<1x?x64xf32>)
// CHECK-NOT: transformer.
func.func @linear_q8_0(%x: tensor<1x?x64xf32>) -> tensor<1x?x64xf32> {
  %w = transformer.weight "blk.0.attn_q.weight" [3] : tensor<64x64xf32, #transformer.encoding<q8_0>>
  %y = transformer.linear %x, %w : (tensor<1x?x64xf32>, tensor<64x64xf32, #transformer.encoding<q8_0>>) -> tensor<1x?x64xf32>
  return %y : tensor<1x?x64xf32>
}

// -----

// Tests an f16 embedding: the table is 300 rows of 128 bytes, and the
// lookup reads (and widens) only the element it gathers, at the clamped id;
// the table is not dequantized as a whole (no kiln.dequantize generic, no
// 300x64 f32 tensor).
// CHECK-LABEL: func.func @embedding_f16
// CHECK-SAME: %[[IDS:[a-z0-9]+]]: tensor<1x?xi32>
// CHECK-NOT: kiln.dequantize
// CHECK-NOT: tensor<300x64xf32
// CHECK: %[[T:.*]] = transformer.weight "token_embd.weight"[0] : tensor<300x128xi8>
// CHECK: linalg.generic {{.*}} ins(%[[IDS]] : tensor<1x?xi32>) outs(%{{.*}} : tensor<1x?x64xf32>)
// CHECK: %[[MAX:.*]] = arith.maxsi
// CHECK: %[[ID:.*]] = arith.minsi %[[MAX]], %c299
// CHECK: tensor.extract %[[T]][%[[ID]], %{{.*}}] : tensor<300x128xi8>
// CHECK: tensor.extract %[[T]][%[[ID]], %{{.*}}] : tensor<300x128xi8>
// CHECK: %[[H:.*]] = arith.bitcast %{{.*}} : i16 to f16
// CHECK: %[[F:.*]] = arith.extf %[[H]] : f16 to f32
// CHECK: linalg.yield %[[F]] : f32
// CHECK-NOT: kiln.dequantize
// CHECK-NOT: tensor<300x64xf32
// CHECK: return
func.func @embedding_f16(%ids: tensor<1x?xi32>) -> tensor<1x?x64xf32> {
  %t = transformer.weight "token_embd.weight" [0] : tensor<300x64xf32, #transformer.encoding<f16>>
  %x = transformer.embedding %ids, %t : (tensor<1x?xi32>, tensor<300x64xf32, #transformer.encoding<f16>>) -> tensor<1x?x64xf32>
  return %x : tensor<1x?x64xf32>
}

// -----

// Tests a bf16 position table (GPT-2's wpe): read at row s + offset, the
// 16 bits shifted into the high half of an f32, added to the input; no
// kiln.dequantize generic.
// CHECK-LABEL: func.func @position_bf16
// CHECK-SAME: %[[X:[a-z0-9]+]]: tensor<1x?x64xf32>, %[[POS:[a-z0-9]+]]: index
// CHECK-NOT: kiln.dequantize
// CHECK: %[[T:.*]] = transformer.weight "position_embd.weight"[1] : tensor<128x128xi8>
// CHECK: linalg.generic {{.*}} ins(%[[X]] : tensor<1x?x64xf32>)
// CHECK: %[[ROW:.*]] = arith.addi %{{.*}}, %[[POS]] : index
// CHECK: tensor.extract %[[T]][%[[ROW]], %{{.*}}] : tensor<128x128xi8>
// CHECK: %[[HI:.*]] = arith.shli %{{.*}}, %c16_i32 : i32
// CHECK: %[[PE:.*]] = arith.bitcast %[[HI]] : i32 to f32
// CHECK: arith.addf %{{.*}}, %[[PE]] : f32
// CHECK-NOT: kiln.dequantize
// CHECK: return
func.func @position_bf16(%x: tensor<1x?x64xf32>, %pos: index) -> tensor<1x?x64xf32> {
  %t = transformer.weight "position_embd.weight" [1] : tensor<128x64xf32, #transformer.encoding<bf16>>
  %y = transformer.position_embedding %x, %t offset %pos : (tensor<1x?x64xf32>, tensor<128x64xf32, #transformer.encoding<bf16>>, index) -> tensor<1x?x64xf32>
  return %y : tensor<1x?x64xf32>
}

// -----

// Tests a q4_k SwiGLU feed_forward: a q4_k block is 256 elements in 144
// bytes (f16 d and dmin, 12 bytes of 6-bit scales and mins, 128 bytes of
// nibbles), so up and gate (512x256) are 512x144 bytes and down (256x512)
// 256x288. Each matrix is dequantized by its own kiln.dequantize generic,
// which feeds the contraction that reads it: up and gate read x, down reads
// silu(gate) * up.
// CHECK-LABEL: func.func @feed_forward_q4_k
// CHECK-SAME: %[[X:[a-z0-9]+]]: tensor<1x?x256xf32>
// CHECK-DAG: %[[UP:.*]] = transformer.weight "blk.0.ffn_up.weight"[0] : tensor<512x144xi8>
// CHECK-DAG: %[[GATE:.*]] = transformer.weight "blk.0.ffn_gate.weight"[1] : tensor<512x144xi8>
// CHECK-DAG: %[[DOWN:.*]] = transformer.weight "blk.0.ffn_down.weight"[2] : tensor<256x288xi8>
// CHECK: %[[UPF:.*]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<512x256xf32>) attrs = {kiln.dequantize = #transformer.encoding<q4_k>}
// CHECK: tensor.extract %[[UP]]
// CHECK: } -> tensor<512x256xf32>
// CHECK: %[[U:.*]] = linalg.generic {{.*}} ins(%[[X]], %[[UPF]] : tensor<1x?x256xf32>, tensor<512x256xf32>) outs(%{{.*}} : tensor<1x?x512xf32>)
// CHECK: %[[GATEF:.*]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<512x256xf32>) attrs = {kiln.dequantize = #transformer.encoding<q4_k>}
// CHECK: tensor.extract %[[GATE]]
// CHECK: } -> tensor<512x256xf32>
// CHECK: %[[G:.*]] = linalg.generic {{.*}} ins(%[[X]], %[[GATEF]] : tensor<1x?x256xf32>, tensor<512x256xf32>) outs(%{{.*}} : tensor<1x?x512xf32>)
// CHECK: %[[H:.*]] = linalg.generic {{.*}} ins(%[[G]], %[[U]] : tensor<1x?x512xf32>, tensor<1x?x512xf32>)
// CHECK: %[[DOWNF:.*]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<256x512xf32>) attrs = {kiln.dequantize = #transformer.encoding<q4_k>}
// CHECK: tensor.extract %[[DOWN]]
// CHECK: } -> tensor<256x512xf32>
// CHECK: %[[Y:.*]] = linalg.generic {{.*}} ins(%[[H]], %[[DOWNF]] : tensor<1x?x512xf32>, tensor<256x512xf32>) outs(%{{.*}} : tensor<1x?x256xf32>)
// CHECK: return %[[Y]]
func.func @feed_forward_q4_k(%x: tensor<1x?x256xf32>) -> tensor<1x?x256xf32> {
  %up = transformer.weight "blk.0.ffn_up.weight" [0] : tensor<512x256xf32, #transformer.encoding<q4_k>>
  %gate = transformer.weight "blk.0.ffn_gate.weight" [1] : tensor<512x256xf32, #transformer.encoding<q4_k>>
  %down = transformer.weight "blk.0.ffn_down.weight" [2] : tensor<256x512xf32, #transformer.encoding<q4_k>>
  %f = transformer.feed_forward swiglu %x, up %up, gate %gate, down %down : (tensor<1x?x256xf32>, tensor<512x256xf32, #transformer.encoding<q4_k>>, tensor<512x256xf32, #transformer.encoding<q4_k>>, tensor<256x512xf32, #transformer.encoding<q4_k>>) -> tensor<1x?x256xf32>
  return %f : tensor<1x?x256xf32>
}

// -----

// Tests outlined layers: a function whose parameter is a stored weight (q6_k:
// 256 elements in 210 bytes) takes the bytes instead, dequantizes its
// argument where the linear reads it, and the caller passes the weight of
// bytes.
// CHECK-LABEL: func.func @layer
// CHECK-SAME: (%[[X:[a-z0-9]+]]: tensor<1x?x256xf32>, %[[W:[a-z0-9]+]]: tensor<64x210xi8>) -> tensor<1x?x64xf32>
// CHECK: %[[WF:.*]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<64x256xf32>) attrs = {kiln.dequantize = #transformer.encoding<q6_k>}
// CHECK: tensor.extract %[[W]]
// CHECK: } -> tensor<64x256xf32>
// CHECK: linalg.generic {{.*}} ins(%[[X]], %[[WF]] : tensor<1x?x256xf32>, tensor<64x256xf32>)
// CHECK-LABEL: func.func @caller
// CHECK: %[[CW:.*]] = transformer.weight "blk.0.attn_output.weight"[0] : tensor<64x210xi8>
// CHECK: call @layer(%{{.*}}, %[[CW]]) : (tensor<1x?x256xf32>, tensor<64x210xi8>) -> tensor<1x?x64xf32>
// CHECK-NOT: #transformer.encoding<q6_k>>
func.func @layer(%x: tensor<1x?x256xf32>, %w: tensor<64x256xf32, #transformer.encoding<q6_k>>) -> tensor<1x?x64xf32> {
  %y = transformer.linear %x, %w : (tensor<1x?x256xf32>, tensor<64x256xf32, #transformer.encoding<q6_k>>) -> tensor<1x?x64xf32>
  return %y : tensor<1x?x64xf32>
}
func.func @caller(%x: tensor<1x?x256xf32>) -> tensor<1x?x64xf32> {
  %w = transformer.weight "blk.0.attn_output.weight" [0] : tensor<64x256xf32, #transformer.encoding<q6_k>>
  %y = func.call @layer(%x, %w) : (tensor<1x?x256xf32>, tensor<64x256xf32, #transformer.encoding<q6_k>>) -> tensor<1x?x64xf32>
  return %y : tensor<1x?x64xf32>
}
