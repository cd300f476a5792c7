// RUN: kiln-opt %s --pass-pipeline='builtin.module(kiln-target{cpu=haswell},func.func(kiln-kernel-strategy{activations=int4}))' -verify-diagnostics

// Tests that activations is f32 or int8.
// expected-error @below {{kiln-kernel-strategy: activations must be f32 or int8, not 'int4'}}
func.func @f() {
  return
}
