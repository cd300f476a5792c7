//===- Passes.h - Kiln entry-point ABI passes -------------------*- C++ -*-===//
//
// The passes that give the compiled entry points the runtime's C ABI
// (runtime/include/kiln_runtime.h).
//
//===----------------------------------------------------------------------===//
#ifndef KILN_ABI_PASSES_H
#define KILN_ABI_PASSES_H

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Pass/Pass.h"

namespace kiln {

#define GEN_PASS_DECL
#include "kiln/ABI/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "kiln/ABI/Passes.h.inc"

} // namespace kiln

#endif // KILN_ABI_PASSES_H
