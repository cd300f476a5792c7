// RUN: kiln-opt %s --pass-pipeline='builtin.module(convert-transformer-to-linalg,kiln-target{cpu=znver4},func.func(kiln-kernel-strategy{activations=int8},kiln-fold-norms,kiln-group-siblings,kiln-fuse-epilogues,kiln-contraction-kernels),canonicalize,cse)' -split-input-file | FileCheck %s

// Tests a decode product on a q4_k weight with int8 activations. Once,
// before the products: x quantized to 8-bit integers, one scale per 4
// values (d = max|x| / 127 of the 4, x / d rounded to nearest even), and d
// times the sum of the 4 integers, and per 32 values the sum of those (x's
// sum over the group). Then per row of W, per 256-value block: the block's
// 8 offsets (dmin m of each sub-block) times x's 8 group sums, into one
// accumulator; per pair of 32-value sub-blocks: W's 4-bit integers (for
// sub-blocks 0 and 1, the low then the high nibbles of bytes 16-47) and x's
// 64 integers, one i8 contraction into 16 lanes of i32 (4 values each)
// marked for kiln-lower-int8-dot, converted and scaled by the sub-blocks'
// d1 (lanes 0-7, then 8-15) times the lanes' 16 scales into an f32
// accumulator (the 4 pairs of a block rotate over two). The offsets' sum is
// subtracted after the horizontal sums.
// CHECK-LABEL: func.func @decode_q4_k
// CHECK: %[[W:.*]] = transformer.weight "blk.0.attn_q.weight"[3] : tensor<8x288xi8>
// (one row: the loop over rows folds away)
// CHECK: %[[Q:.*]]:4 = scf.for %[[G:.*]] = %c0 to %c16 step %c1 iter_args({{.*}}) -> (tensor<1x512xi8>, tensor<1x128xf32>, tensor<1x128xf32>, tensor<1x16xf32>)
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
// CHECK: %[[DSUM:.*]] = arith.mulf %[[D]], %{{.*}} : vector<8xf32>
// CHECK: vector.transfer_write %[[Q8]]
// CHECK: vector.transfer_write %[[D]]
// CHECK: vector.transfer_write %[[DSUM]]
// CHECK: %[[GS:.*]] = vector.reduction <add>, %[[DSUM]] : vector<8xf32> into f32
// CHECK: %[[GSV:.*]] = vector.broadcast %[[GS]] : f32 to vector<1xf32>
// CHECK: vector.transfer_write %[[GSV]], %{{.*}}[%c0, %[[G]]] {{.*}} : vector<1xf32>, tensor<1x16xf32>
// CHECK: scf.for %[[N:.*]] = %c0 to %c8 step %c1
// CHECK: scf.for %[[K:.*]] = %c0 to %c512 step %c256 iter_args(%[[A0:.*]] = %{{.*}}, %[[A1:.*]] = %{{.*}}, %[[AS:.*]] = %{{.*}}) -> (vector<16xf32>, vector<16xf32>, vector<8xf32>)
// CHECK: %[[MINS:.*]] = arith.mulf %{{.*}} : vector<8xf32>
// CHECK: %[[SB:.*]] = arith.divui %[[K]], %c32
// CHECK: %[[SUMS:.*]] = vector.transfer_read %[[Q]]#3[%c0, %[[SB]]]{{.*}} : tensor<1x16xf32>, vector<8xf32>
// CHECK: %[[NAS:.*]] = vector.fma %[[MINS]], %[[SUMS]], %[[AS]] : vector<8xf32>
// CHECK: %[[D1S:.*]] = arith.mulf %{{.*}} : vector<8xf32>
// CHECK: %[[D1:.*]] = vector.extract %[[D1S]][0] : f32 from vector<8xf32>
// CHECK: %[[QS:.*]] = arith.addi %{{.*}}, %c16 : index
// CHECK: %[[WB:.*]] = vector.transfer_read %[[W]][%[[N]], %[[QS]]]{{.*}} : tensor<8x288xi8>, vector<32xi8>
// CHECK: %[[LO:.*]] = arith.andi %[[WB]], %{{.*}} : vector<32xi8>
// CHECK: %[[D1V:.*]] = vector.broadcast %[[D1]] : f32 to vector<8xf32>
// CHECK: %[[D2:.*]] = vector.extract %[[D1S]][1] : f32 from vector<8xf32>
// CHECK: %[[HI:.*]] = arith.shrui %[[WB]], %{{.*}} : vector<32xi8>
// CHECK: %[[D2V:.*]] = vector.broadcast %[[D2]] : f32 to vector<8xf32>
// CHECK: %[[QQ:.*]] = vector.shuffle %[[LO]], %[[HI]] [0, 1, 2, {{.*}}, 62, 63] : vector<32xi8>, vector<32xi8>
// CHECK: %[[DD:.*]] = vector.shuffle %[[D1V]], %[[D2V]] [0, 1, 2, {{.*}}, 14, 15] : vector<8xf32>, vector<8xf32>
// CHECK: %[[XQ:.*]] = vector.transfer_read %[[Q]]#0[%c0, %[[K]]]{{.*}} : tensor<1x512xi8>, vector<64xi8>
// CHECK: %[[LHS:.*]] = vector.shape_cast %[[QQ]] : vector<64xi8> to vector<16x4xi8>
// CHECK: %[[RHS:.*]] = vector.shape_cast %[[XQ]] : vector<64xi8> to vector<16x4xi8>
// CHECK: %[[LHSW:.*]] = arith.extui %[[LHS]] : vector<16x4xi8> to vector<16x4xi32>
// CHECK: %[[RHSW:.*]] = arith.extsi %[[RHS]] : vector<16x4xi8> to vector<16x4xi32>
// CHECK: %[[DOT:.*]] = vector.contract {{.*}} %[[LHSW]], %[[RHSW]], %{{.*}} {kiln.lhs_below_128} : vector<16x4xi32>, vector<16x4xi32> into vector<16xi32>
// CHECK: %[[XD:.*]] = vector.transfer_read %[[Q]]#1{{.*}} : tensor<1x128xf32>, vector<16xf32>
// CHECK: %[[F:.*]] = arith.sitofp %[[DOT]] : vector<16xi32> to vector<16xf32>
// CHECK: %[[S:.*]] = arith.mulf %[[DD]], %[[XD]] : vector<16xf32>
// CHECK: %[[NA0:.*]] = vector.fma %[[F]], %[[S]], %[[A0]] : vector<16xf32>
// CHECK: vector.contract
// CHECK: %[[NA1:.*]] = vector.fma %{{.*}}, %{{.*}}, %[[A1]] : vector<16xf32>
// CHECK: vector.contract
// CHECK: vector.fma %{{.*}}, %{{.*}}, %[[NA0]] : vector<16xf32>
// CHECK: vector.contract
// CHECK-NOT: vector.contract
// CHECK: scf.yield %{{.*}}, %{{.*}}, %[[NAS]]
// CHECK: %[[SA:.*]] = arith.addf %{{.*}}#0, %{{.*}}#1
// CHECK: %[[R:.*]] = vector.reduction <add>, %[[SA]] {{.*}} : vector<16xf32> into f32
// CHECK: %[[RO:.*]] = vector.reduction <add>, %{{.*}}#2 {{.*}} : vector<8xf32> into f32
// CHECK: arith.subf %[[R]], %[[RO]]
func.func @decode_q4_k(%x: tensor<1x1x512xf32>) -> tensor<1x1x8xf32> {
  %w = transformer.weight "blk.0.attn_q.weight" [3] : tensor<8x512xf32, #transformer.encoding<q4_k>>
  %y = transformer.linear %x, %w : (tensor<1x1x512xf32>, tensor<8x512xf32, #transformer.encoding<q4_k>>) -> tensor<1x1x8xf32>
  return %y : tensor<1x1x8xf32>
}

// -----

// Tests a q4_0 weight: a block's 16 bytes give the 32 integers, low
// nibbles (values 0-15) then high nibbles (16-31); d is the block's scale
// and 8 d its offset (value = d q - 8 d). Two blocks make one 16-lane
// contraction; a step covers 4 blocks (128 values), here the whole row.
// The offsets' accumulator sums d xm (no vector of 8 d is built), and is
// scaled by 8 once, before the horizontal sum.
// CHECK-LABEL: func.func @decode_q4_0
// CHECK: scf.for %[[N:.*]] = %c0 to %c8 step %c1
// CHECK-NOT: scf.for
// CHECK: %[[B:.*]] = vector.transfer_read %{{.*}}[%[[N]], %c2]{{.*}} : tensor<8x72xi8>, vector<16xi8>
// CHECK: %[[LO:.*]] = arith.andi %[[B]], %{{.*}} : vector<16xi8>
// CHECK: %[[HI:.*]] = arith.shrui %[[B]], %{{.*}} : vector<16xi8>
// CHECK: %[[Q:.*]] = vector.shuffle %[[LO]], %[[HI]] [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31]
// CHECK: %[[D:.*]] = arith.extf %{{.*}} : f16 to f32
// CHECK: %[[DV:.*]] = vector.broadcast %[[D]] : f32 to vector<8xf32>
// (the second block: bytes 20-35)
// CHECK: vector.transfer_read %{{.*}}[%[[N]], %c20]{{.*}} : tensor<8x72xi8>, vector<16xi8>
// CHECK: %[[Q2:.*]] = vector.shuffle
// CHECK: %[[D2V:.*]] = vector.broadcast %{{.*}} : f32 to vector<8xf32>
// CHECK: %[[QQ:.*]] = vector.shuffle %[[Q]], %[[Q2]] [0, 1, 2, {{.*}}, 62, 63] : vector<32xi8>, vector<32xi8>
// CHECK: %[[DD:.*]] = vector.shuffle %[[DV]], %[[D2V]] [0, 1, 2, {{.*}}, 14, 15] : vector<8xf32>, vector<8xf32>
// CHECK: vector.shape_cast %[[QQ]] : vector<64xi8> to vector<16x4xi8>
// CHECK: vector.contract {{.*}} {kiln.lhs_below_128} : vector<16x4xi32>, vector<16x4xi32> into vector<16xi32>
// CHECK: vector.transfer_read {{.*}} : tensor<1x32xf32>, vector<16xf32>
// CHECK: vector.fma
// CHECK: %[[XM:.*]] = vector.transfer_read {{.*}} : tensor<1x32xf32>, vector<16xf32>
// CHECK: vector.fma %[[DD]], %[[XM]], %{{.*}} : vector<16xf32>
// CHECK: vector.contract {{.*}} {kiln.lhs_below_128} : vector<16x4xi32>, vector<16x4xi32> into vector<16xi32>
// CHECK-NOT: vector.contract
// CHECK: %[[SA:.*]] = arith.addf
// CHECK: %[[SM:.*]] = arith.addf
// CHECK: %[[SM8:.*]] = arith.mulf %[[SM]], %{{.*}} : vector<16xf32>
// CHECK: arith.subf %[[SA]], %[[SM8]]
// CHECK: vector.reduction <add>

func.func @decode_q4_0(%x: tensor<1x1x128xf32>) -> tensor<1x1x8xf32> {
  %w = transformer.weight "blk.0.attn_q.weight" [3] : tensor<8x128xf32, #transformer.encoding<q4_0>>
  %y = transformer.linear %x, %w : (tensor<1x1x128xf32>, tensor<8x128xf32, #transformer.encoding<q4_0>>) -> tensor<1x1x8xf32>
  return %y : tensor<1x1x8xf32>
}

// -----

// Tests a q4_0 row of 160 values: one whole step (128 values, two pairs),
// then the fifth block alone, an 8-lane contraction with its own
// accumulators, added after the horizontal sums.
// CHECK-LABEL: func.func @decode_q4_0_rest
// CHECK: scf.for %[[N:.*]] = %c0 to %c8 step %c1
// CHECK-COUNT-2: vector.contract {{.*}} : vector<16x4xi32>, vector<16x4xi32> into vector<16xi32>
// CHECK: %[[MAIN:.*]] = vector.reduction <add>, %{{.*}} : vector<16xf32> into f32
// CHECK: vector.transfer_read %{{.*}}[%[[N]], %c74]{{.*}} : tensor<8x90xi8>, vector<16xi8>
// CHECK: vector.contract {{.*}} : vector<8x4xi32>, vector<8x4xi32> into vector<8xi32>
// CHECK: %[[REST:.*]] = vector.reduction <add>, %{{.*}} : vector<8xf32> into f32
// CHECK: arith.addf %[[MAIN]], %[[REST]]
func.func @decode_q4_0_rest(%x: tensor<1x1x160xf32>) -> tensor<1x1x8xf32> {
  %w = transformer.weight "blk.0.attn_q.weight" [3] : tensor<8x160xf32, #transformer.encoding<q4_0>>
  %y = transformer.linear %x, %w : (tensor<1x1x160xf32>, tensor<8x160xf32, #transformer.encoding<q4_0>>) -> tensor<1x1x8xf32>
  return %y : tensor<1x1x8xf32>
}

// -----

// Tests a q8_0 weight (on this VNNI target): a block's 32 signed bytes
// (bytes 2-33, after the f16 scale) offset to unsigned by flipping their
// sign bits (q + 128 in [0, 255]), so that value = d (q + 128) - 128 d. The
// contraction is not marked below 128 (kiln-lower-int8-dot takes it to
// vpdpbusd only). The offsets' accumulator sums d xm and is scaled by 128
// once, before the horizontal sum.
// CHECK-LABEL: func.func @decode_q8_0
// CHECK: %[[C128:.*]] = arith.constant dense<1.280000e+02> : vector<16xf32>
// CHECK: scf.for %[[N:.*]] = %c0 to %c8 step %c1
// CHECK-NOT: scf.for
// CHECK: %[[B:.*]] = vector.transfer_read %{{.*}}[%[[N]], %c2]{{.*}} : tensor<8x136xi8>, vector<32xi8>
// CHECK: %[[Q:.*]] = arith.xori %[[B]], %{{.*}} : vector<32xi8>
// CHECK: vector.transfer_read %{{.*}}[%[[N]], %c36]{{.*}} : tensor<8x136xi8>, vector<32xi8>
// CHECK: %[[Q2:.*]] = arith.xori
// CHECK: %[[QQ:.*]] = vector.shuffle %[[Q]], %[[Q2]] [0, 1, 2, {{.*}}, 62, 63] : vector<32xi8>, vector<32xi8>
// CHECK: %[[L:.*]] = vector.shape_cast %[[QQ]] : vector<64xi8> to vector<16x4xi8>
// CHECK: arith.extui %[[L]] : vector<16x4xi8> to vector<16x4xi32>
// CHECK: vector.contract
// CHECK-NOT: kiln.lhs_below_128
// CHECK-SAME: : vector<16x4xi32>, vector<16x4xi32> into vector<16xi32>
// CHECK: vector.contract
// CHECK: %[[SA:.*]] = arith.addf
// CHECK: %[[SM:.*]] = arith.addf
// CHECK: %[[SM128:.*]] = arith.mulf %[[SM]], %[[C128]] {{.*}}: vector<16xf32>
// CHECK: arith.subf %[[SA]], %[[SM128]]
// CHECK: vector.reduction <add>
func.func @decode_q8_0(%x: tensor<1x1x128xf32>) -> tensor<1x1x8xf32> {
  %w = transformer.weight "blk.0.attn_q.weight" [3] : tensor<8x128xf32, #transformer.encoding<q8_0>>
  %y = transformer.linear %x, %w : (tensor<1x1x128xf32>, tensor<8x128xf32, #transformer.encoding<q8_0>>) -> tensor<1x1x8xf32>
  return %y : tensor<1x1x8xf32>
}

// -----

// Tests a prompt product on a q4_0 weight with int8 activations on a target
// with AVX-512 VNNI: the integer GEMM. Once, before the products: per 32
// values of x, u = max|x| / 32512 and v = x / u rounded to nearest even (a
// 16-bit integer) split into two signed bytes, q1 = (v + 128) >> 8 and q2
// = v - 256 q1, whose quads are interleaved (q1's 4 bytes, then q2's) into
// one i32 row; u per group; x's sum per 16 values (u times v's sum). Per
// block of 32 columns: each row's 32-value groups read as integers (the
// nibbles), their quads transposed 8 rows at a time into a [K / 4, 32] i32
// panel and their scales into a [K / 32, 32] f32 panel. Tiles of 4 rows x
// 32 columns: per group, each row's 8 quad pairs read at once; per 4 values
// of k, two vectors of the panel times each row's q1 and q2 quads broadcast, i8 contractions for kiln-lower-int8-dot (16
// per step, 128 per group); per group, 256 A1 + A2 converted, times u, minus 8 x's sum
// (q4_0's zero point 8 d), times the columns' d, into the f32 accumulators.
// CHECK-LABEL: func.func @prompt_q4_0
// CHECK: %[[W:.*]] = transformer.weight "blk.0.attn_q.weight"[1] : tensor<32x36xi8>
// CHECK: %[[X:.*]]:3 = scf.for {{.*}} -> (tensor<?x32xi32>, tensor<?x2xf32>, tensor<?x4xf32>)
// CHECK: vector.reduction <maxnumf>, %{{.*}} : vector<32xf32> into f32
// CHECK: %[[U:.*]] = arith.divf %{{.*}}, %cst{{.*}} : f32
// CHECK: %[[V:.*]] = arith.fptosi %{{.*}} : vector<32xf32> to vector<32xi32>
// CHECK: %[[Q1:.*]] = arith.shrsi %{{.*}}, %{{.*}} : vector<32xi32>
// CHECK: %[[HI:.*]] = arith.shli %[[Q1]], %{{.*}} : vector<32xi32>
// CHECK: %[[Q2:.*]] = arith.subi %[[V]], %[[HI]] : vector<32xi32>
// CHECK: vector.reduction <add>, %{{.*}} : vector<16xi32> into i32
// CHECK: vector.reduction <add>, %{{.*}} : vector<16xi32> into i32
// CHECK: %[[B1:.*]] = arith.trunci %[[Q1]] : vector<32xi32> to vector<32xi8>
// CHECK: %[[B2:.*]] = arith.trunci %[[Q2]] : vector<32xi32> to vector<32xi8>
// CHECK: %[[BOTH:.*]] = vector.interleave %{{.*}}, %{{.*}} : vector<8xi32> -> vector<16xi32>
// CHECK: vector.transfer_write %[[BOTH]]
// CHECK: %[[P:.*]]:2 = scf.for %[[N:.*]] = %c0 to %{{.*}} step %c8 iter_args({{.*}}) -> (tensor<16x32xi32>, tensor<2x32xf32>)
// CHECK: scf.for %[[K:.*]] = %c0 to %c64 step %c32
// CHECK-COUNT-8: arith.andi %{{.*}} : vector<16xi8>
// CHECK: vector.shuffle {{.*}} [0, 8, 1, 9, 4, 12, 5, 13] : vector<8xf32>, vector<8xf32>
// CHECK-COUNT-8: vector.transfer_write %{{.*}} : vector<8xi32>, tensor<16x32xi32>
// CHECK: %[[DS:.*]] = vector.from_elements %{{.*}} : vector<8xf32>
// CHECK: vector.transfer_write %[[DS]], %{{.*}} : vector<8xf32>, tensor<2x32xf32>
// CHECK: scf.for %[[M:.*]] = %c0 to %{{.*}} step %c4
// CHECK: scf.for {{.*}} step %c32
// CHECK: scf.for %[[G:.*]] = %c0 to %c2 step %c1 iter_args({{.*}}) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>)
// CHECK: %[[XQ:.*]] = vector.transfer_read %[[X]]#0[%[[M]], %{{.*}}]{{.*}} : tensor<?x32xi32>, vector<16xi32>
// CHECK: vector.transfer_read %[[P]]#0{{.*}} : tensor<16x32xi32>, vector<16xi32>
// CHECK: %[[X1:.*]] = vector.extract %[[XQ]][0] : i32 from vector<16xi32>
// CHECK: vector.broadcast %[[X1]] : i32 to vector<16xi32>
// CHECK: arith.extsi %{{.*}} : vector<16x4xi8> to vector<16x4xi32>
// CHECK: vector.contract {{.*}} {kiln.lhs_below_128} : vector<16x4xi32>, vector<16x4xi32> into vector<16xi32>
// CHECK-COUNT-127: vector.contract
// CHECK-NOT: vector.contract
// CHECK: %[[D:.*]] = vector.transfer_read %[[P]]#1[%[[G]], %{{.*}}]{{.*}} : tensor<2x32xf32>, vector<16xf32>
// CHECK: %[[XU:.*]] = tensor.extract %[[X]]#1[%[[M]], %[[G]]] : tensor<?x2xf32>
// CHECK: %[[NEG:.*]] = arith.negf %{{.*}} : f32
// CHECK: %[[OFF:.*]] = arith.mulf %[[NEG]], %cst{{.*}} : f32
// CHECK: %[[A1:.*]] = arith.shli %{{.*}}, %{{.*}} : vector<16xi32>
// CHECK: %[[A:.*]] = arith.addi %[[A1]], %{{.*}} : vector<16xi32>
// CHECK: %[[F:.*]] = arith.sitofp %[[A]] : vector<16xi32> to vector<16xf32>
// CHECK: %[[T:.*]] = vector.fma %[[F]], %{{.*}}, %{{.*}} : vector<16xf32>
// CHECK: vector.fma %[[D]], %[[T]], %{{.*}} : vector<16xf32>
func.func @prompt_q4_0(%x: tensor<1x?x64xf32>) -> tensor<1x?x32xf32> {
  %w = transformer.weight "blk.0.attn_q.weight" [1] : tensor<32x64xf32, #transformer.encoding<q4_0>>
  %y = transformer.linear %x, %w : (tensor<1x?x64xf32>, tensor<32x64xf32, #transformer.encoding<q4_0>>) -> tensor<1x?x32xf32>
  return %y : tensor<1x?x32xf32>
}

// -----

// Tests a decode product on a q5_0 weight with int8 activations: per block,
// the 16 bytes of nibbles as 32 integers (low nibbles, then high), and bit
// l of the block's 32 high bits (bytes 2-5, little-endian) as bit 4 of
// integer l; q5_0's zero point 16 d taken out as a multiple of d.
// CHECK-LABEL: func.func @decode_q5_0
// CHECK-DAG: %[[IOTA:.*]] = arith.constant dense<[0, 1, 2, {{.*}}, 30, 31]> : vector<32xi32>
// CHECK-DAG: %[[SIXTEEN:.*]] = arith.constant dense<1.600000e+01> : vector<16xf32>
// CHECK: %[[W:.*]] = transformer.weight "blk.0.attn_q.weight"[1] : tensor<8x88xi8>
// CHECK: scf.for %[[N:.*]] = %c0 to %c8 step %c1
// CHECK: %[[QS:.*]] = vector.transfer_read %[[W]][%[[N]], %c6]{{.*}} : tensor<8x88xi8>, vector<16xi8>
// CHECK: %[[NIB:.*]] = vector.shuffle
// CHECK: tensor.extract %[[W]][%[[N]], %c2]
// CHECK: tensor.extract %[[W]][%[[N]], %c5]
// CHECK: arith.ori %{{.*}} : i32
// CHECK: arith.shli %{{.*}}, %c16_i32 : i32
// CHECK-NEXT: %[[QH:.*]] = arith.ori %{{.*}} : i32
// CHECK-NEXT: %[[QHV:.*]] = vector.broadcast %[[QH]] : i32 to vector<32xi32>
// CHECK: %[[SH:.*]] = arith.shrui %[[QHV]], %[[IOTA]] : vector<32xi32>
// CHECK: %[[BIT:.*]] = arith.andi %[[SH]], %{{.*}} : vector<32xi32>
// CHECK: %[[B8:.*]] = arith.trunci %[[BIT]] : vector<32xi32> to vector<32xi8>
// CHECK: %[[HI:.*]] = arith.shli %[[B8]], %{{.*}} : vector<32xi8>
// CHECK: arith.ori %[[NIB]], %[[HI]] : vector<32xi8>
// CHECK: vector.contract {{.*}} {kiln.lhs_below_128} : vector<16x4xi32>, vector<16x4xi32> into vector<16xi32>
// CHECK: arith.mulf %{{.*}}, %[[SIXTEEN]]
func.func @decode_q5_0(%x: tensor<1x1x128xf32>) -> tensor<1x1x8xf32> {
  %w = transformer.weight "blk.0.attn_q.weight" [1] : tensor<8x128xf32, #transformer.encoding<q5_0>>
  %y = transformer.linear %x, %w : (tensor<1x1x128xf32>, tensor<8x128xf32, #transformer.encoding<q5_0>>) -> tensor<1x1x8xf32>
  return %y : tensor<1x1x8xf32>
}
