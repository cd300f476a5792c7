// RUN: kiln-opt %s --pass-pipeline='builtin.module(func.func(kiln-parallelize-rows{rows-per-task=0}))' -verify-diagnostics

// Tests that a task needs at least one row.
// expected-error @below {{kiln-parallelize-rows: rows-per-task must be positive}}
func.func @f() {
  return
}
