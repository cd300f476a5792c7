// RUN: kiln-opt %s -split-input-file -verify-diagnostics

// Errors of #transformer.encoding (WeightEncodingAttr::verifyEncoding): a
// stored weight holds f32 values, is a static [rows, cols] matrix, and its
// rows are whole blocks (32 elements for q8_0..q5_1, 256 for the k-quants).

// Tests that the values of a stored weight are f32.
func.func @f() {
  // expected-error@+1 {{a weight stored as q8_0 holds f32 values, got element type 'f16'}}
  %w = transformer.weight "w" [0] : tensor<64x64xf16, #transformer.encoding<q8_0>>
  return
}

// -----

// Tests that an integer element type is refused too (the storage type is
// i8, but the logical type is not).
func.func @f() {
  // expected-error@+1 {{a weight stored as bf16 holds f32 values, got element type 'i8'}}
  %w = transformer.weight "w" [0] : tensor<64x64xi8, #transformer.encoding<bf16>>
  return
}

// -----

// Tests that a stored weight is not a vector (rank 1).
func.func @f() {
  // expected-error@+1 {{a weight stored as q4_0 is a matrix of static shape [rows, cols]}}
  %w = transformer.weight "w" [0] : tensor<64xf32, #transformer.encoding<q4_0>>
  return
}

// -----

// Tests that a stored weight is not of rank 3.
func.func @f() {
  // expected-error@+1 {{a weight stored as f16 is a matrix of static shape [rows, cols]}}
  %w = transformer.weight "w" [0] : tensor<2x64x64xf32, #transformer.encoding<f16>>
  return
}

// -----

// Tests that a stored weight has a static shape.
func.func @f() {
  // expected-error@+1 {{a weight stored as q8_0 is a matrix of static shape [rows, cols]}}
  %w = transformer.weight "w" [0] : tensor<?x64xf32, #transformer.encoding<q8_0>>
  return
}

// -----

// Tests that a dynamic row length is refused as well.
func.func @f() {
  // expected-error@+1 {{a weight stored as q6_k is a matrix of static shape [rows, cols]}}
  %w = transformer.weight "w" [0] : tensor<64x?xf32, #transformer.encoding<q6_k>>
  return
}

// -----

// Tests that a q8_0 row is a whole number of 32-element blocks.
func.func @f() {
  // expected-error@+1 {{a weight stored as q8_0 has rows of 48 elements, not a multiple of its 32-element block}}
  %w = transformer.weight "w" [0] : tensor<64x48xf32, #transformer.encoding<q8_0>>
  return
}

// -----

// Tests that a q4_k row is a whole number of 256-element blocks: 384 is a
// multiple of 32 (llama-quantize stores such rows as a 32-block fallback
// type), but not of 256.
func.func @f() {
  // expected-error@+1 {{a weight stored as q4_k has rows of 384 elements, not a multiple of its 256-element block}}
  %w = transformer.weight "w" [0] : tensor<64x384xf32, #transformer.encoding<q4_k>>
  return
}

// -----

// Tests that the encoding is checked on function signatures too.
// expected-error@+1 {{a weight stored as q5_k has rows of 128 elements, not a multiple of its 256-element block}}
func.func @f(%w: tensor<64x128xf32, #transformer.encoding<q5_k>>) {
  return
}

// -----

// Tests that an unknown encoding is refused by name.
func.func @f() {
  // expected-error@+2 {{expected ::kiln::transformer::WeightEncoding to be one of: f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k}}
  // expected-error@+1 {{failed to parse Transformer_EncodingAttr parameter 'value'}}
  %w = transformer.weight "w" [0] : tensor<64x64xf32, #transformer.encoding<q3_k>>
  return
}

// -----

// Errors of WeightOp::verify: a stored weight is read only as the matrix of
// a linear or feed_forward, an embedding or position table, or passed to a
// call.

// Tests that a stored weight is not an operand of transformer.add.
func.func @f() {
  // expected-error@+1 {{'transformer.weight' op weight 'w' is stored as q8_0 but read by transformer.add; only the matrices of linear and feed_forward and embedding and position tables may be stored in a non-f32 encoding}}
  %w = transformer.weight "w" [0] : tensor<64x64xf32, #transformer.encoding<q8_0>>
  %0 = transformer.add %w, %w : tensor<64x64xf32, #transformer.encoding<q8_0>>
  return
}

// -----

// Tests that a stored weight is not the input of transformer.rms_norm.
func.func @f(%g: tensor<64xf32>) {
  // expected-error@+1 {{'transformer.weight' op weight 'w' is stored as f16 but read by transformer.rms_norm; only the matrices of linear and feed_forward and embedding and position tables may be stored in a non-f32 encoding}}
  %w = transformer.weight "w" [0] : tensor<4x64xf32, #transformer.encoding<f16>>
  %0 = transformer.rms_norm %w, %g {epsilon = 1.0e-5 : f32} : (tensor<4x64xf32, #transformer.encoding<f16>>, tensor<64xf32>) -> tensor<4x64xf32>
  return
}

// -----

// Tests that a stored weight is not the input x of transformer.linear
// (operand 0), only its matrix (operand 1).
func.func @f(%m: tensor<32x64xf32>) {
  // expected-error@+1 {{'transformer.weight' op weight 'w' is stored as q4_0 but read by transformer.linear; only the matrices of linear and feed_forward and embedding and position tables may be stored in a non-f32 encoding}}
  %w = transformer.weight "w" [0] : tensor<4x64xf32, #transformer.encoding<q4_0>>
  %0 = transformer.linear %w, %m : (tensor<4x64xf32, #transformer.encoding<q4_0>>, tensor<32x64xf32>) -> tensor<4x32xf32>
  return
}

// -----

// Tests that a stored weight is not the input of transformer.feed_forward.
func.func @f(%up: tensor<128x64xf32>, %down: tensor<64x128xf32>) {
  // expected-error@+1 {{'transformer.weight' op weight 'w' is stored as bf16 but read by transformer.feed_forward; only the matrices of linear and feed_forward and embedding and position tables may be stored in a non-f32 encoding}}
  %w = transformer.weight "w" [0] : tensor<4x64xf32, #transformer.encoding<bf16>>
  %0 = transformer.feed_forward relu %w, up %up, down %down : (tensor<4x64xf32, #transformer.encoding<bf16>>, tensor<128x64xf32>, tensor<64x128xf32>) -> tensor<4x64xf32>
  return
}

// -----

// Tests that a stored weight is not returned (func.return is not a call).
func.func @f() -> tensor<4x64xf32, #transformer.encoding<q8_0>> {
  // expected-error@+1 {{'transformer.weight' op weight 'w' is stored as q8_0 but read by func.return; only the matrices of linear and feed_forward and embedding and position tables may be stored in a non-f32 encoding}}
  %w = transformer.weight "w" [0] : tensor<4x64xf32, #transformer.encoding<q8_0>>
  return %w : tensor<4x64xf32, #transformer.encoding<q8_0>>
}
