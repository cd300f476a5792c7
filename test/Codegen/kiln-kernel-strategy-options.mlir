// RUN: kiln-opt %s --pass-pipeline='builtin.module(kiln-target{cpu=haswell},func.func(kiln-kernel-strategy{block-cols=0}))' -verify-diagnostics

// Tests that a task needs at least one column.
// expected-error @below {{kiln-kernel-strategy: block-cols must be positive}}
func.func @f() {
  return
}
