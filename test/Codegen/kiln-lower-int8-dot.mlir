// RUN: kiln-opt %s --pass-pipeline='builtin.module(kiln-target{cpu=znver4},kiln-lower-int8-dot)' | FileCheck %s --check-prefix=VNNI
// RUN: kiln-opt %s --pass-pipeline='builtin.module(kiln-target{cpu=haswell},kiln-lower-int8-dot)' | FileCheck %s --check-prefix=AVX2

#ik = affine_map<(i, k) -> (i, k)>
#i = affine_map<(i, k) -> (i)>

// Tests that a marked 8-bit dot product (lhs in [0, 127]) becomes vpdpbusd
// with AVX-512 VNNI, and vpmaddubsw then vpmaddwd by ones, added to the
// accumulator, with AVX2 only; the operands are the 32 bytes of each side.
// VNNI-LABEL: func.func @marked
// VNNI-SAME: (%[[ACC:.*]]: vector<8xi32>, %[[Q:.*]]: vector<8x4xi8>, %[[X:.*]]: vector<8x4xi8>)
// VNNI-DAG: %[[Q32:.*]] = vector.shape_cast %[[Q]] : vector<8x4xi8> to vector<32xi8>
// VNNI-DAG: %[[X32:.*]] = vector.shape_cast %[[X]] : vector<8x4xi8> to vector<32xi8>
// VNNI: %[[D:.*]] = llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.256"(%[[ACC]], %[[Q32]], %[[X32]]) : (vector<8xi32>, vector<32xi8>, vector<32xi8>) -> vector<8xi32>
// VNNI-NOT: vector.contract
// VNNI: return %[[D]]
// AVX2-LABEL: func.func @marked
// AVX2-SAME: (%[[ACC:.*]]: vector<8xi32>, %[[Q:.*]]: vector<8x4xi8>, %[[X:.*]]: vector<8x4xi8>)
// AVX2-DAG: %[[Q32:.*]] = vector.shape_cast %[[Q]] : vector<8x4xi8> to vector<32xi8>
// AVX2-DAG: %[[X32:.*]] = vector.shape_cast %[[X]] : vector<8x4xi8> to vector<32xi8>
// AVX2: %[[P:.*]] = llvm.call_intrinsic "llvm.x86.avx2.pmadd.ub.sw"(%[[Q32]], %[[X32]]) : (vector<32xi8>, vector<32xi8>) -> vector<16xi16>
// AVX2: %[[ONES:.*]] = arith.constant dense<1> : vector<16xi16>
// AVX2: %[[S:.*]] = llvm.call_intrinsic "llvm.x86.avx2.pmadd.wd"(%[[P]], %[[ONES]]) : (vector<16xi16>, vector<16xi16>) -> vector<8xi32>
// AVX2: %[[D:.*]] = arith.addi %[[ACC]], %[[S]] : vector<8xi32>
// AVX2-NOT: vector.contract
// AVX2: return %[[D]]
func.func @marked(%acc: vector<8xi32>, %q: vector<8x4xi8>, %x: vector<8x4xi8>) -> vector<8xi32> {
  %d = vector.contract {indexing_maps = [#ik, #ik, #i], iterator_types = ["parallel", "reduction"], kind = #vector.kind<add>} %q, %x, %acc {kiln.nonnegative_lhs} : vector<8x4xi8>, vector<8x4xi8> into vector<8xi32>
  return %d : vector<8xi32>
}

// Tests that an unmarked contraction (its lhs may be negative: vpdpbusd
// would read it as unsigned) is left to the upstream lowering.
// VNNI-LABEL: func.func @unmarked
// VNNI: vector.contract
// VNNI-NOT: llvm.call_intrinsic
// AVX2-LABEL: func.func @unmarked
// AVX2: vector.contract
// AVX2-NOT: llvm.call_intrinsic
func.func @unmarked(%acc: vector<8xi32>, %q: vector<8x4xi8>, %x: vector<8x4xi8>) -> vector<8xi32> {
  %d = vector.contract {indexing_maps = [#ik, #ik, #i], iterator_types = ["parallel", "reduction"], kind = #vector.kind<add>} %q, %x, %acc : vector<8x4xi8>, vector<8x4xi8> into vector<8xi32>
  return %d : vector<8xi32>
}
