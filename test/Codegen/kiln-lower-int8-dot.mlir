// RUN: kiln-opt %s --pass-pipeline='builtin.module(kiln-target{cpu=znver4},kiln-lower-int8-dot)' | FileCheck %s --check-prefix=VNNI
// RUN: kiln-opt %s --pass-pipeline='builtin.module(kiln-target{cpu=haswell},kiln-lower-int8-dot)' | FileCheck %s --check-prefix=AVX2
// RUN: kiln-opt %s --pass-pipeline='builtin.module(kiln-target{cpu=znver4 vector-bits=256},kiln-lower-int8-dot)' | FileCheck %s --check-prefix=VNNI256

#ik = affine_map<(i, k) -> (i, k)>
#i = affine_map<(i, k) -> (i)>

// Tests that a dot product of zero-extended W bytes marked below 128 and
// sign-extended x bytes becomes vpdpbusd
// with AVX-512 VNNI, and vpmaddubsw then vpmaddwd by ones, added to the
// accumulator, with AVX2 only; the operands are the 32 bytes of each side.
// VNNI-LABEL: func.func @marked(
// VNNI256-LABEL: func.func @marked(
// VNNI256: llvm.x86.avx512.vpdpbusd.256
// VNNI-SAME: %[[ACC:.*]]: vector<8xi32>, %[[Q:.*]]: vector<8x4xi8>, %[[X:.*]]: vector<8x4xi8>)
// VNNI-DAG: %[[Q32:.*]] = vector.shape_cast %[[Q]] : vector<8x4xi8> to vector<32xi8>
// VNNI-DAG: %[[X32:.*]] = vector.shape_cast %[[X]] : vector<8x4xi8> to vector<32xi8>
// VNNI: %[[D:.*]] = llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.256"(%[[ACC]], %[[Q32]], %[[X32]]) : (vector<8xi32>, vector<32xi8>, vector<32xi8>) -> vector<8xi32>
// VNNI-NOT: vector.contract
// VNNI: return %[[D]]
// AVX2-LABEL: func.func @marked(
// AVX2-SAME: %[[ACC:.*]]: vector<8xi32>, %[[Q:.*]]: vector<8x4xi8>, %[[X:.*]]: vector<8x4xi8>)
// AVX2-DAG: %[[Q32:.*]] = vector.shape_cast %[[Q]] : vector<8x4xi8> to vector<32xi8>
// AVX2-DAG: %[[X32:.*]] = vector.shape_cast %[[X]] : vector<8x4xi8> to vector<32xi8>
// AVX2: %[[P:.*]] = llvm.call_intrinsic "llvm.x86.avx2.pmadd.ub.sw"(%[[Q32]], %[[X32]]) : (vector<32xi8>, vector<32xi8>) -> vector<16xi16>
// AVX2: %[[ONES:.*]] = arith.constant dense<1> : vector<16xi16>
// AVX2: %[[S:.*]] = llvm.call_intrinsic "llvm.x86.avx2.pmadd.wd"(%[[P]], %[[ONES]]) : (vector<16xi16>, vector<16xi16>) -> vector<8xi32>
// AVX2: %[[D:.*]] = arith.addi %[[ACC]], %[[S]] : vector<8xi32>
// AVX2-NOT: vector.contract
// AVX2: return %[[D]]
func.func @marked(%acc: vector<8xi32>, %q: vector<8x4xi8>, %x: vector<8x4xi8>) -> vector<8xi32> {
  %ql = arith.extui %q : vector<8x4xi8> to vector<8x4xi32>
  %xl = arith.extsi %x : vector<8x4xi8> to vector<8x4xi32>
  %d = vector.contract {indexing_maps = [#ik, #ik, #i], iterator_types = ["parallel", "reduction"], kind = #vector.kind<add>} %ql, %xl, %acc {kiln.lhs_below_128} : vector<8x4xi32>, vector<8x4xi32> into vector<8xi32>
  return %d : vector<8xi32>
}

// Tests 16 lanes (two groups of 32 bytes): one 512-bit vpdpbusd where the
// target has 512-bit vectors; otherwise each half of 8 lanes is lowered as
// above (the lanes 0-7 of each operand, then 8-15) and the two halves
// concatenated.
// VNNI-LABEL: func.func @marked16
// VNNI-SAME: (%[[ACC:.*]]: vector<16xi32>, %[[Q:.*]]: vector<16x4xi8>, %[[X:.*]]: vector<16x4xi8>)
// VNNI-DAG: %[[Q64:.*]] = vector.shape_cast %[[Q]] : vector<16x4xi8> to vector<64xi8>
// VNNI-DAG: %[[X64:.*]] = vector.shape_cast %[[X]] : vector<16x4xi8> to vector<64xi8>
// VNNI: %[[D:.*]] = llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"(%[[ACC]], %[[Q64]], %[[X64]]) : (vector<16xi32>, vector<64xi8>, vector<64xi8>) -> vector<16xi32>
// VNNI-NOT: vector.contract
// VNNI: return %[[D]]
// VNNI256-LABEL: func.func @marked16
// VNNI256-SAME: (%[[ACC:.*]]: vector<16xi32>, %[[Q:.*]]: vector<16x4xi8>, %[[X:.*]]: vector<16x4xi8>)
// VNNI256-DAG: %[[Q64:.*]] = vector.shape_cast %[[Q]] : vector<16x4xi8> to vector<64xi8>
// VNNI256-DAG: %[[X64:.*]] = vector.shape_cast %[[X]] : vector<16x4xi8> to vector<64xi8>
// VNNI256-DAG: %[[QLO:.*]] = vector.extract_strided_slice %[[Q64]] {offsets = [0], sizes = [32], strides = [1]}
// VNNI256-DAG: %[[XLO:.*]] = vector.extract_strided_slice %[[X64]] {offsets = [0], sizes = [32], strides = [1]}
// VNNI256-DAG: %[[ALO:.*]] = vector.extract_strided_slice %[[ACC]] {offsets = [0], sizes = [8], strides = [1]}
// VNNI256: %[[LO:.*]] = llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.256"(%[[ALO]], %[[QLO]], %[[XLO]])
// VNNI256-DAG: %[[QHI:.*]] = vector.extract_strided_slice %[[Q64]] {offsets = [32], sizes = [32], strides = [1]}
// VNNI256-DAG: %[[XHI:.*]] = vector.extract_strided_slice %[[X64]] {offsets = [32], sizes = [32], strides = [1]}
// VNNI256-DAG: %[[AHI:.*]] = vector.extract_strided_slice %[[ACC]] {offsets = [8], sizes = [8], strides = [1]}
// VNNI256: %[[HI:.*]] = llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.256"(%[[AHI]], %[[QHI]], %[[XHI]])
// VNNI256: %[[D:.*]] = vector.shuffle %[[LO]], %[[HI]] [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
// VNNI256: return %[[D]]
// AVX2-LABEL: func.func @marked16
// AVX2: %[[P0:.*]] = llvm.call_intrinsic "llvm.x86.avx2.pmadd.ub.sw"
// AVX2: %[[S0:.*]] = llvm.call_intrinsic "llvm.x86.avx2.pmadd.wd"(%[[P0]]
// AVX2: %[[LO:.*]] = arith.addi %{{.*}}, %[[S0]] : vector<8xi32>
// AVX2: %[[P1:.*]] = llvm.call_intrinsic "llvm.x86.avx2.pmadd.ub.sw"
// AVX2: %[[S1:.*]] = llvm.call_intrinsic "llvm.x86.avx2.pmadd.wd"(%[[P1]]
// AVX2: %[[HI:.*]] = arith.addi %{{.*}}, %[[S1]] : vector<8xi32>
// AVX2: %[[D:.*]] = vector.shuffle %[[LO]], %[[HI]] [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
// AVX2-NOT: vector.contract
// AVX2: return %[[D]]
func.func @marked16(%acc: vector<16xi32>, %q: vector<16x4xi8>, %x: vector<16x4xi8>) -> vector<16xi32> {
  %ql = arith.extui %q : vector<16x4xi8> to vector<16x4xi32>
  %xl = arith.extsi %x : vector<16x4xi8> to vector<16x4xi32>
  %d = vector.contract {indexing_maps = [#ik, #ik, #i], iterator_types = ["parallel", "reduction"], kind = #vector.kind<add>} %ql, %xl, %acc {kiln.lhs_below_128} : vector<16x4xi32>, vector<16x4xi32> into vector<16xi32>
  return %d : vector<16xi32>
}

// Tests that an unmarked dot product (W's bytes may reach 255: q8_0 offset
// by 128) is still vpdpbusd with VNNI (unsigned times signed, no
// saturation), and is left to the upstream lowering on AVX2, whose
// vpmaddubsw would saturate its pairwise i16 sums.
// VNNI-LABEL: func.func @unmarked
// VNNI: llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.256"
// VNNI-NOT: vector.contract
// VNNI-NOT: arith.ext
// VNNI: return
// VNNI256-LABEL: func.func @unmarked
// VNNI256: llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.256"
// AVX2-LABEL: func.func @unmarked
// AVX2: arith.extui
// AVX2: arith.extsi
// AVX2: vector.contract
// AVX2-NOT: llvm.call_intrinsic
func.func @unmarked(%acc: vector<8xi32>, %q: vector<8x4xi8>, %x: vector<8x4xi8>) -> vector<8xi32> {
  %ql = arith.extui %q : vector<8x4xi8> to vector<8x4xi32>
  %xl = arith.extsi %x : vector<8x4xi8> to vector<8x4xi32>
  %d = vector.contract {indexing_maps = [#ik, #ik, #i], iterator_types = ["parallel", "reduction"], kind = #vector.kind<add>} %ql, %xl, %acc : vector<8x4xi32>, vector<8x4xi32> into vector<8xi32>
  return %d : vector<8xi32>
}

// Tests that a contraction of bytes that are not zero-extended on the left
// and sign-extended on the right (here both sign-extended: a signed lhs
// that vpdpbusd would read as unsigned) is left alone.
// VNNI-LABEL: func.func @signed_lhs
// VNNI: vector.contract
// VNNI-NOT: llvm.call_intrinsic
// AVX2-LABEL: func.func @signed_lhs
// AVX2: vector.contract
func.func @signed_lhs(%acc: vector<8xi32>, %q: vector<8x4xi8>, %x: vector<8x4xi8>) -> vector<8xi32> {
  %ql = arith.extsi %q : vector<8x4xi8> to vector<8x4xi32>
  %xl = arith.extsi %x : vector<8x4xi8> to vector<8x4xi32>
  %d = vector.contract {indexing_maps = [#ik, #ik, #i], iterator_types = ["parallel", "reduction"], kind = #vector.kind<add>} %ql, %xl, %acc {kiln.lhs_below_128} : vector<8x4xi32>, vector<8x4xi32> into vector<8xi32>
  return %d : vector<8xi32>
}
