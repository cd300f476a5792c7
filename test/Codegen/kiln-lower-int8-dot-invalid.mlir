// RUN: kiln-opt %s --pass-pipeline='builtin.module(kiln-target{cpu=x86-64},kiln-lower-int8-dot)' -verify-diagnostics

#ik = affine_map<(i, k) -> (i, k)>
#i = affine_map<(i, k) -> (i)>

// Tests that a marked dot product on a target without 256-bit vectors
// (SSE only) is an error, not a slow fallback.
func.func @sse(%acc: vector<8xi32>, %q: vector<8x4xi8>, %x: vector<8x4xi8>) -> vector<8xi32> {
  %ql = arith.extui %q : vector<8x4xi8> to vector<8x4xi32>
  %xl = arith.extsi %x : vector<8x4xi8> to vector<8x4xi32>
  // expected-error @below {{kiln-lower-int8-dot: integer dot products need 256-bit vectors (AVX2); the target has 128}}
  %d = vector.contract {indexing_maps = [#ik, #ik, #i], iterator_types = ["parallel", "reduction"], kind = #vector.kind<add>} %ql, %xl, %acc {kiln.lhs_below_128} : vector<8x4xi32>, vector<8x4xi32> into vector<8xi32>
  return %d : vector<8xi32>
}
