// RUN: kiln-opt %s --pass-pipeline='builtin.module(convert-transformer-to-linalg,kiln-target{cpu=znver4},func.func(kiln-kernel-strategy{activations=int8},kiln-contraction-kernels),canonicalize,cse)' -split-input-file | FileCheck %s

// Tests a decode product on a q4_k weight with int8 activations. Once,
// before the products: x quantized to 8-bit integers, one scale per 4
// values (d = max|x| / 127 of the 4, x / d rounded to nearest even), and d
// times the sum of the 4 integers. Then per row
// of W, per 256-value block, per 32-value sub-block: W's 4-bit integers (the
// low nibbles of bytes 16-47 for sub-block 0) and x's 32 integers, an i8
// contraction into 8 lanes of i32 (4 values each) marked for
// kiln-lower-int8-dot, converted and scaled by d1 times the lanes' 8 scales
// into an f32 accumulator; m1 times those sums accumulated apart and
// subtracted before the horizontal sum.
// CHECK-LABEL: func.func @decode_q4_k
// CHECK: %[[W:.*]] = transformer.weight "blk.0.attn_q.weight"[3] : tensor<8x288xi8>
// (one row: the loop over rows folds away)
// CHECK: %[[Q:.*]]:3 = scf.for %[[G:.*]] = %c0 to %c16 step %c1 iter_args({{.*}}) -> (tensor<1x512xi8>, tensor<1x128xf32>, tensor<1x128xf32>)
// CHECK: %[[XV:.*]] = vector.transfer_read {{.*}} : tensor<1x512xf32>, vector<32xf32>
// CHECK: %[[ABS:.*]] = math.absf %[[XV]] : vector<32xf32>
// CHECK: vector.shuffle %[[ABS]], %[[ABS]] [0, 4, 8, 12, 16, 20, 24, 28]
// CHECK-COUNT-3: arith.maxnumf {{.*}} : vector<8xf32>
// CHECK: %[[D:.*]] = arith.divf %{{.*}}, %{{.*}} : vector<8xf32>
// CHECK: %[[ID:.*]] = arith.select {{.*}} : vector<8xi1>, vector<8xf32>
// CHECK: vector.shuffle %[[ID]], %[[ID]] [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7]
// CHECK: math.roundeven %{{.*}} : vector<32xf32>
// CHECK: %[[QI:.*]] = arith.fptosi %{{.*}} : vector<32xf32> to vector<32xi32>
// CHECK: %[[Q8:.*]] = arith.trunci %[[QI]] : vector<32xi32> to vector<32xi8>
// CHECK: vector.transfer_write %[[Q8]]
// CHECK: vector.transfer_write %[[D]]
// CHECK: scf.for %[[N:.*]] = %c0 to %c8 step %c1
// CHECK: scf.for %[[K:.*]] = %c0 to %c512 step %c256 iter_args({{.*}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK: %[[D1S:.*]] = arith.mulf %{{.*}} : vector<8xf32>
// CHECK: %[[M1S:.*]] = arith.mulf %{{.*}} : vector<8xf32>
// CHECK: %[[D1:.*]] = vector.extract %[[D1S]][0] : f32 from vector<8xf32>
// CHECK: %[[M1:.*]] = vector.extract %[[M1S]][0] : f32 from vector<8xf32>
// CHECK: %[[QS:.*]] = arith.addi %{{.*}}, %c16 : index
// CHECK: %[[WB:.*]] = vector.transfer_read %[[W]][%[[N]], %[[QS]]]{{.*}} : tensor<8x288xi8>, vector<32xi8>
// CHECK: %[[LO:.*]] = arith.andi %[[WB]], %{{.*}} : vector<32xi8>
// CHECK: %[[D1V:.*]] = vector.broadcast %[[D1]] : f32 to vector<8xf32>
// CHECK: %[[M1V:.*]] = vector.broadcast %[[M1]] : f32 to vector<8xf32>
// CHECK: %[[XQ:.*]] = vector.transfer_read %[[Q]]#0[%c0, %[[K]]]{{.*}} : tensor<1x512xi8>, vector<32xi8>
// CHECK: %[[LHS:.*]] = vector.shape_cast %[[LO]] : vector<32xi8> to vector<8x4xi8>
// CHECK: %[[RHS:.*]] = vector.shape_cast %[[XQ]] : vector<32xi8> to vector<8x4xi8>
// CHECK: %[[DOT:.*]] = vector.contract {{.*}} %[[LHS]], %[[RHS]], %{{.*}} {kiln.nonnegative_lhs} : vector<8x4xi8>, vector<8x4xi8> into vector<8xi32>
// CHECK: %[[XD:.*]] = vector.transfer_read %[[Q]]#1{{.*}} : tensor<1x128xf32>, vector<8xf32>
// CHECK: %[[XM:.*]] = vector.transfer_read %[[Q]]#2{{.*}} : tensor<1x128xf32>, vector<8xf32>
// CHECK: %[[S:.*]] = arith.mulf %[[D1V]], %[[XD]] : vector<8xf32>
// CHECK: %[[F:.*]] = arith.sitofp %[[DOT]] : vector<8xi32> to vector<8xf32>
// CHECK: vector.fma %[[F]], %[[S]], %{{.*}} : vector<8xf32>
// CHECK: vector.fma %[[M1V]], %[[XM]], %{{.*}} : vector<8xf32>
// CHECK-COUNT-7: vector.contract
// CHECK-NOT: vector.contract
// CHECK: scf.yield
// CHECK: %[[R:.*]] = arith.subf %{{.*}} : vector<8xf32>
// CHECK: vector.reduction <add>, %[[R]]
func.func @decode_q4_k(%x: tensor<1x1x512xf32>) -> tensor<1x1x8xf32> {
  %w = transformer.weight "blk.0.attn_q.weight" [3] : tensor<8x512xf32, #transformer.encoding<q4_k>>
  %y = transformer.linear %x, %w : (tensor<1x1x512xf32>, tensor<8x512xf32, #transformer.encoding<q4_k>>) -> tensor<1x1x8xf32>
  return %y : tensor<1x1x8xf32>
}

// -----

// Tests a q4_0 weight: a block's 16 bytes give the 32 integers, low
// nibbles (values 0-15) then high nibbles (16-31); d is the block's scale
// and 8 d its offset (value = d q - 8 d).
// CHECK-LABEL: func.func @decode_q4_0
// CHECK: scf.for %{{.*}} = %c0 to %c128 step %c32
// CHECK: %[[B:.*]] = vector.transfer_read {{.*}} : tensor<8x72xi8>, vector<16xi8>
// CHECK: %[[LO:.*]] = arith.andi %[[B]], %{{.*}} : vector<16xi8>
// CHECK: %[[HI:.*]] = arith.shrui %[[B]], %{{.*}} : vector<16xi8>
// CHECK: %[[Q:.*]] = vector.shuffle %[[LO]], %[[HI]] [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31]
// CHECK: %[[D:.*]] = arith.extf %{{.*}} : f16 to f32
// CHECK: %[[M:.*]] = arith.mulf %[[D]], %cst : f32
// CHECK: %[[MV:.*]] = vector.broadcast %[[M]] : f32 to vector<8xf32>
// CHECK: vector.shape_cast %[[Q]] : vector<32xi8> to vector<8x4xi8>
// CHECK: vector.contract {{.*}} {kiln.nonnegative_lhs}
// CHECK: vector.fma %[[MV]]
func.func @decode_q4_0(%x: tensor<1x1x128xf32>) -> tensor<1x1x8xf32> {
  %w = transformer.weight "blk.0.attn_q.weight" [3] : tensor<8x128xf32, #transformer.encoding<q4_0>>
  %y = transformer.linear %x, %w : (tensor<1x1x128xf32>, tensor<8x128xf32, #transformer.encoding<q4_0>>) -> tensor<1x1x8xf32>
  return %y : tensor<1x1x8xf32>
}
