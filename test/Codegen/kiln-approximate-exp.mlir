// RUN: kiln-opt %s -kiln-approximate-exp | FileCheck %s

// exp(x) = 2^k * p(r), x = k ln 2 + r: no call to libm's expf remains, and
// the vector form stays a vector computation.
// CHECK-LABEL: func.func @scalar
// CHECK-NOT: math.exp
// CHECK: math.floor
// CHECK: math.fma
// CHECK: arith.fptosi {{.*}} : f32 to i32
// CHECK: arith.shli
// CHECK: arith.bitcast {{.*}} : i32 to f32
func.func @scalar(%x: f32) -> f32 {
  %y = math.exp %x : f32
  return %y : f32
}

// CHECK-LABEL: func.func @vector
// CHECK-NOT: math.exp
// CHECK: math.fma {{.*}} : vector<16xf32>
// CHECK: arith.bitcast {{.*}} : vector<16xi32> to vector<16xf32>
func.func @vector(%x: vector<16xf32>) -> vector<16xf32> {
  %y = math.exp %x : vector<16xf32>
  return %y : vector<16xf32>
}

// Other functions are left to libm.
// CHECK-LABEL: func.func @other
// CHECK: math.tanh
func.func @other(%x: f32) -> f32 {
  %y = math.tanh %x : f32
  return %y : f32
}
