//===- ObjectEmitter.h - LLVM dialect -> object file -> exe -----*- C++ -*-===//
#ifndef KILN_TARGET_OBJECTEMITTER_H
#define KILN_TARGET_OBJECTEMITTER_H

#include "kiln/Target/TargetDescription.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/IR/Module.h"

#include <memory>
#include <string>

namespace kiln {

/// Translates a module in the LLVM dialect to LLVM IR and, unless
/// `optimize` is false, optimizes it for `target` (optimizeForTarget).
/// Returns null and sets `error` on failure.
std::unique_ptr<llvm::Module>
translateForTarget(mlir::ModuleOp module, llvm::LLVMContext &context,
                   const TargetDescription &target, std::string &error,
                   bool optimize = true);

/// Sets the target's triple and data layout on `module` and optimizes it
/// at -O2 for its CPU, features and vector width.
bool optimizeForTarget(llvm::Module &module, const TargetDescription &target,
                       std::string &error);

/// Splits an unoptimized `module` into `parts` linkable modules
/// (llvm::SplitModule; internal symbols become hidden) and optimizes and
/// emits each on a thread of its own, in a context of its own: one object
/// file per part in `objects`. LLVM's -O2 and code generation are most of
/// a compile; on two cores this nearly halves their wall time.
bool emitObjectsInParallel(std::unique_ptr<llvm::Module> module,
                           const TargetDescription &target, unsigned parts,
                           llvm::SmallVectorImpl<llvm::SmallString<0>> &objects,
                           std::string &error);

/// Emits `module` as a position-independent object file for `target` into
/// `os`.
bool emitObject(llvm::Module &module, const TargetDescription &target,
                llvm::raw_pwrite_stream &os, std::string &error);

/// Links `objectPaths` with the runtime archive into an executable (or a
/// shared library) at `outputPath` using the C++ compiler driver `linker`.
bool linkExecutable(llvm::StringRef linker,
                    llvm::ArrayRef<std::string> objectPaths,
                    llvm::StringRef runtimeLib, llvm::StringRef outputPath,
                    bool shared, std::string &error);

} // namespace kiln

#endif // KILN_TARGET_OBJECTEMITTER_H
