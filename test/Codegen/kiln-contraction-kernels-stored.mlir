// RUN: kiln-opt %s --pass-pipeline='builtin.module(convert-transformer-to-linalg,kiln-target{cpu=skylake-avx512},func.func(kiln-kernel-strategy,kiln-fold-norms,kiln-group-siblings,kiln-fuse-epilogues,kiln-contraction-kernels),canonicalize,cse)' -split-input-file | FileCheck %s

// Products on weights kept as stored (#transformer.encoding): the kernels
// read the weight's bytes and dequantize them in registers, a group of 32
// values (one scale) at a time; no f32 copy of the weight is made.

// Tests a decode product on a q4_k weight (rows of 512 values: two
// 144-byte blocks of 8 sub-blocks of 32). Row by row, one step of the k loop
// covers a whole 256-value block, so that each vector's sub-block is a
// constant: the 6-bit scales and mins of all 8 sub-blocks are unpacked from
// the block's 12 scale bytes (at 4) by vector operations, once per block,
// times d (at 0) and dmin (at 2), each read first as one 16-bit half; each vector
// takes its sub-block's lane (0 for sub-block 0, 1 for sub-block 1) and
// reads its nibbles at fixed positions (the low nibbles of bytes 16-47 for
// sub-blocks 0 and 1, shifted by a constant 4 for sub-block 1). The loop
// index is divided once per block (by 256) and never reduced modulo
// anything.
// CHECK-LABEL: func.func @decode_q4_k
// CHECK-NOT: kiln.dequantize
// CHECK-NOT: tensor<8x512xf32>
// CHECK: %[[W:.*]] = transformer.weight "blk.0.attn_q.weight"[3] : tensor<8x288xi8>
// CHECK: scf.for %[[N:.*]] = %c0 to %c8 step %c1
// CHECK: scf.for %[[K:.*]] = %c0 to %c512 step %c256 iter_args({{.*}}) -> (vector<16xf32>, vector<16xf32>)
// CHECK-NOT: arith.remui
// CHECK: %[[BLK:.*]] = arith.divui %[[K]], %c256 : index
// CHECK: %[[BASE:.*]] = arith.muli %[[BLK]], %c144 : index
// CHECK: vector.transfer_read %[[W]][%[[N]], %[[BASE]]]{{.*}} : tensor<8x288xi8>, vector<2xi8>
// CHECK: vector.bitcast %{{.*}} : vector<2xi8> to vector<1xf16>
// CHECK: %[[SCAT:.*]] = arith.addi %[[BASE]], %c4 : index
// CHECK: %[[SCB:.*]] = vector.transfer_read %[[W]][%[[N]], %[[SCAT]]]{{.*}} : tensor<8x288xi8>, vector<16xi8>
// CHECK: vector.shuffle %[[SCB]], %[[SCB]] [0, 1, 2, 3, 8, 9, 10, 11]
// CHECK: arith.select %{{.*}} : vector<8xi1>, vector<8xi32>
// CHECK: arith.select %{{.*}} : vector<8xi1>, vector<8xi32>
// CHECK: %[[D1S:.*]] = arith.mulf %{{.*}} : vector<8xf32>
// CHECK: %[[M1S:.*]] = arith.mulf %{{.*}} : vector<8xf32>
// CHECK: %[[D10:.*]] = vector.extract %[[D1S]][0] : f32 from vector<8xf32>
// CHECK: %[[M10:.*]] = vector.extract %[[M1S]][0] : f32 from vector<8xf32>
// CHECK: %[[QS:.*]] = arith.addi %[[BASE]], %c16 : index
// CHECK: %[[Q:.*]] = vector.transfer_read %[[W]][%[[N]], %[[QS]]]{{.*}} : tensor<8x288xi8>, vector<16xi8>
// CHECK: %[[Q32:.*]] = arith.extui %[[Q]] : vector<16xi8> to vector<16xi32>
// CHECK: arith.andi %[[Q32]], %{{.*}} : vector<16xi32>
// CHECK: vector.broadcast %[[D10]]
// CHECK: vector.broadcast %[[M10]]
// CHECK: vector.fma
// CHECK: vector.extract %[[D1S]][1] : f32 from vector<8xf32>
// CHECK: vector.extract %[[M1S]][1] : f32 from vector<8xf32>
// CHECK: %[[HI:.*]] = arith.shrui %[[Q32]], %{{.*}} : vector<16xi32>
// CHECK: arith.andi %[[HI]], %{{.*}} : vector<16xi32>
// CHECK-COUNT-14: vector.fma
// CHECK-NOT: vector.fma
// CHECK: scf.yield
// CHECK: vector.reduction <add>
func.func @decode_q4_k(%x: tensor<1x1x512xf32>) -> tensor<1x1x8xf32> {
  %w = transformer.weight "blk.0.attn_q.weight" [3] : tensor<8x512xf32, #transformer.encoding<q4_k>>
  %y = transformer.linear %x, %w : (tensor<1x1x512xf32>, tensor<8x512xf32, #transformer.encoding<q4_k>>) -> tensor<1x1x8xf32>
  return %y : tensor<1x1x8xf32>
}

// -----

// Tests the same weight in a prompt-sized product: its 4 x 4 dot tiles (the
// rows the packed path leaves, and all rows here: packing starts at 16) step
// by one 32-value sub-block, whose place in the block is computed (a
// remainder), which keeps their unrolled bodies small.
// CHECK-LABEL: func.func @prompt_q4_k
// CHECK: scf.for %{{.*}} = %c0 to %{{.*}} step %c4
// CHECK: scf.for %{{.*}} = %c0 to %c8 step %c4
// CHECK: scf.for %[[K:.*]] = %c0 to %c512 step %c32 iter_args({{.*}}) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>)
// CHECK: arith.divui %[[K]], %c256 : index
// CHECK: %[[R:.*]] = arith.remui %[[K]], %c256 : index
// CHECK: arith.divui %[[R]], %c32 : index
func.func @prompt_q4_k(%x: tensor<1x?x512xf32>) -> tensor<1x?x8xf32> {
  %w = transformer.weight "blk.0.attn_q.weight" [3] : tensor<8x512xf32, #transformer.encoding<q4_k>>
  %y = transformer.linear %x, %w : (tensor<1x?x512xf32>, tensor<8x512xf32, #transformer.encoding<q4_k>>) -> tensor<1x?x8xf32>
  return %y : tensor<1x?x8xf32>
}

// -----

// Tests a decode product on a q4_0 weight (blocks of 32 values: an f16
// scale d and 16 bytes of nibbles, 18 bytes): one step per block, two
// vectors of 16 (the low nibbles, then the high ones), each
// d * (q - 8) as ggml computes it, into two accumulators.
// CHECK-LABEL: func.func @decode_q4_0
// CHECK: %[[W:.*]] = transformer.weight "blk.0.attn_q.weight"[3] : tensor<8x72xi8>
// CHECK: scf.for %[[N:.*]] = %c0 to %c8 step %c1
// CHECK: scf.for %[[K:.*]] = %c0 to %c128 step %c32 iter_args({{.*}}) -> (vector<16xf32>, vector<16xf32>)
// CHECK: %[[BLK:.*]] = arith.divui %[[K]], %c32 : index
// CHECK: %[[BASE:.*]] = arith.muli %[[BLK]], %c18 : index
// CHECK: %[[QS:.*]] = arith.addi %[[BASE]], %c2 : index
// CHECK: vector.transfer_read %[[W]][%[[N]], %[[QS]]]{{.*}} : tensor<8x72xi8>, vector<16xi8>
// CHECK: vector.transfer_read %[[W]][%[[N]], %[[BASE]]]{{.*}} : tensor<8x72xi8>, vector<2xi8>
// CHECK: vector.bitcast %{{.*}} : vector<2xi8> to vector<1xf16>
// CHECK: arith.subi
// CHECK: arith.sitofp
// CHECK: arith.mulf
// CHECK: vector.fma
// CHECK: arith.shrui
// CHECK: vector.fma
// CHECK-NOT: vector.fma
// CHECK: scf.yield
func.func @decode_q4_0(%x: tensor<1x1x128xf32>) -> tensor<1x1x8xf32> {
  %w = transformer.weight "blk.0.attn_q.weight" [3] : tensor<8x128xf32, #transformer.encoding<q4_0>>
  %y = transformer.linear %x, %w : (tensor<1x1x128xf32>, tensor<8x128xf32, #transformer.encoding<q4_0>>) -> tensor<1x1x8xf32>
  return %y : tensor<1x1x8xf32>
}

// -----

// Tests a decode product on a q6_k weight (two 210-byte blocks per row of
// 512, each: 16 signed 8-bit scales at byte 192, one per 16 values, and an f16 d
// at 208). The 16 products d * scale are computed by vector operations once
// per block; the vectors take lanes 0, 1, 2, ... of them in order.
// CHECK-LABEL: func.func @decode_q6_k
// CHECK: %[[W:.*]] = transformer.weight "output.weight"[1] : tensor<8x420xi8>
// CHECK: scf.for %[[K:.*]] = %c0 to %c512 step %c256
// CHECK: %[[D:.*]] = vector.bitcast %{{.*}} : vector<2xi8> to vector<1xf16>
// CHECK: %[[SCAT:.*]] = arith.addi %{{.*}}, %c192 : index
// CHECK: %[[SC8:.*]] = vector.transfer_read %[[W]][%{{.*}}, %[[SCAT]]]{{.*}} : tensor<8x420xi8>, vector<16xi8>
// CHECK: arith.extsi %[[SC8]] : vector<16xi8> to vector<16xi32>
// CHECK: %[[SCALES:.*]] = arith.mulf %{{.*}} : vector<16xf32>
// CHECK: vector.extract %[[SCALES]][0] : f32 from vector<16xf32>
// CHECK: vector.fma
// CHECK: vector.extract %[[SCALES]][1] : f32 from vector<16xf32>
// CHECK: vector.fma
// CHECK: vector.extract %[[SCALES]][2] : f32 from vector<16xf32>
// CHECK-COUNT-14: vector.fma
// CHECK-NOT: vector.fma
// CHECK: scf.yield
func.func @decode_q6_k(%x: tensor<1x1x512xf32>) -> tensor<1x1x8xf32> {
  %w = transformer.weight "output.weight" [1] : tensor<8x512xf32, #transformer.encoding<q6_k>>
  %y = transformer.linear %x, %w : (tensor<1x1x512xf32>, tensor<8x512xf32, #transformer.encoding<q6_k>>) -> tensor<1x1x8xf32>
  return %y : tensor<1x1x8xf32>
}
