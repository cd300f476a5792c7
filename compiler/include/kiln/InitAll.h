//===- InitAll.h - Register what Kiln's tools use ---------------*- C++ -*-===//
//
// One registration point shared by kiln-opt and kiln-compile: the transformer
// dialect, the upstream dialects the pipeline lowers through, Kiln's passes
// and pipelines, and the upstream passes Kiln uses.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_INITALL_H
#define KILN_INITALL_H

namespace mlir {
class DialectRegistry;
} // namespace mlir

namespace kiln {
/// Registers every dialect (and dialect extension/interface) Kiln uses.
void registerAllDialects(mlir::DialectRegistry &registry);
/// Registers Kiln's passes, its pipelines, and the upstream passes it uses.
void registerAllPasses();
} // namespace kiln

#endif // KILN_INITALL_H
