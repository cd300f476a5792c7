// RUN: kiln-opt %s --pass-pipeline='builtin.module(func.func(kiln-kernel-strategy))' -verify-diagnostics

// Tests that the strategy needs the target description.
// expected-error @below {{kiln-kernel-strategy: the module has no 'kiln.target' (run kiln-target first)}}
func.func @f() {
  return
}
