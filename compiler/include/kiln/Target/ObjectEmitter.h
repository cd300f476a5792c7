//===- ObjectEmitter.h - LLVM dialect -> object file -> exe -----*- C++ -*-===//
#ifndef KILN_TARGET_OBJECTEMITTER_H
#define KILN_TARGET_OBJECTEMITTER_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"

#include <memory>
#include <string>

namespace kiln {

/// Translates a module in the LLVM dialect to LLVM IR for the host CPU
/// (triple, data layout, CPU and features of this machine) and optimizes it
/// at -O2. Returns null and sets `error` on failure.
std::unique_ptr<llvm::Module> translateForHost(mlir::ModuleOp module,
                                               llvm::LLVMContext &context,
                                               std::string &error);

/// Emits `module` as a position-independent object file into `os`.
bool emitObject(llvm::Module &module, llvm::raw_pwrite_stream &os,
                std::string &error);

/// Links `objectPath` with the runtime archive into an executable (or a
/// shared library) at `outputPath` using the C++ compiler driver `linker`.
bool linkExecutable(llvm::StringRef linker, llvm::StringRef objectPath,
                    llvm::StringRef runtimeLib, llvm::StringRef outputPath,
                    bool shared, std::string &error);

} // namespace kiln

#endif // KILN_TARGET_OBJECTEMITTER_H
