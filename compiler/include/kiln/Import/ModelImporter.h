//===- ModelImporter.h - .kiln model file -> transformer dialect -*- C++
//-*-===//
#ifndef KILN_IMPORT_MODELIMPORTER_H
#define KILN_IMPORT_MODELIMPORTER_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

namespace kiln {

struct ImportOptions {
  /// Batch size of the entry points (the token tensor is [batch, seq]).
  int64_t batch = 1;
};

/// Validates a model file (FlatBuffers verifier, then semantic checks) and
/// builds its whole-sequence form: `func.func @forward(tokens) -> logits`
/// in the transformer dialect. Problems are reported as diagnostics located
/// at the file and, where one is involved, the graph node (by name); returns
/// null on failure.
mlir::OwningOpRef<mlir::ModuleOp>
importModelBuffer(llvm::ArrayRef<uint8_t> bytes, llvm::StringRef path,
                  mlir::MLIRContext *context,
                  const ImportOptions &options = {});

/// Reads `path` and imports it; the module records the absolute path as the
/// default weight location of compiled executables.
mlir::OwningOpRef<mlir::ModuleOp>
importModelFile(llvm::StringRef path, mlir::MLIRContext *context,
                const ImportOptions &options = {});

} // namespace kiln

#endif // KILN_IMPORT_MODELIMPORTER_H
