// RUN: kiln-opt %s --pass-pipeline='builtin.module(func.func(kiln-contraction-kernels{vector-bits=20}))' -verify-diagnostics

// A vector width that is not a whole number of f32 lanes is refused.
// expected-error @below {{kiln-contraction-kernels: vector-bits must be 0 (the host's) or a positive multiple of 32, and block-cols positive}}
func.func @f() {
  return
}
