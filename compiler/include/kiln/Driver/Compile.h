//===- Compile.h - kiln-compile as a library --------------------*- C++ -*-===//
//
// The whole of kiln-compile behind one call, so tests and other tools can
// drive the pipeline without its command line (as iree-compile's main is one
// call into iree_compile_lib):
//
//   kiln::CompileOptions options;
//   options.inputPath = "model.kiln";
//   options.outputPath = "mymodel";
//   int status = kiln::compile(options, llvm::errs());
//
// The options are plain data; kiln-compile fills them from its flags. MLIR's
// pass-manager and timing command-line options
// (mlir::registerPassManagerCLOptions,
// mlir::registerDefaultTimingManagerCLOptions) apply when the caller has
// registered them, and are ignored otherwise.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_DRIVER_COMPILE_H
#define KILN_DRIVER_COMPILE_H

#include "llvm/Support/raw_ostream.h"

#include <cstdint>
#include <string>
#include <vector>

namespace kiln {

/// What to produce.
enum class EmitKind {
  /// MLIR text at CompileOptions::stage.
  MLIR,
  /// Optimized LLVM IR for the target CPU.
  LLVM,
  /// An object file.
  Obj,
  /// An executable linked with the runtime.
  Exe,
  /// A shared library with the C API of kiln.h.
  Shared,
};

/// kiln::compile's result; the values are kiln-compile's exit codes.
enum CompileStatus : int {
  CompileOk = 0,
  /// Bad options (an unknown stage, a non-positive batch, an unknown CPU...).
  CompileUsageError = 1,
  /// An invalid model file or input IR.
  CompileBadInput = 2,
  /// A pass or LLVM code generation failed.
  CompileFailed = 3,
  /// The output (or a converted model beside it) cannot be written, or the
  /// link failed.
  CompileOutputFailed = 4,
};

/// The C++ compiler driver Kiln was built with: the default linker.
std::string defaultLinker();

/// Everything kiln-compile's flags choose.
struct CompileOptions {
  /// A model file (.kiln), a GGUF file or Hugging Face directory (converted
  /// in memory), or a stage's MLIR printout (.mlir).
  std::string inputPath;
  /// Empty: the model's name for an executable, lib<name>.so, <name>.o, and
  /// stdout ("-") for text.
  std::string outputPath;
  EmitKind emit = EmitKind::Exe;
  /// With EmitKind::MLIR: the stage to stop after (import, kv-cache, linalg,
  /// llvm). Other kinds always run to llvm.
  std::string stage = "llvm";
  /// For .mlir input: the stage it was printed at.
  std::string fromStage = "import";
  /// Batch size of the entry points.
  int64_t batch = 1;
  /// The runtime archive to link. Empty: ../lib/libkiln_runtime.a (or
  /// libkiln_runtime_shared.a) beside the executable `argv0` names.
  std::string runtimeLib;
  /// argv[0] of the running tool, to find the default runtime archive.
  std::string argv0;
  /// The C++ compiler driver used to link.
  std::string linker = defaultLinker();
  /// Encoder-decoder models: hoist the cross-attention key/value
  /// projections into encode (PipelineOptions::hoistCross).
  bool hoistCross = true;
  /// Layer blocks compiled once: none, decode or all
  /// (PipelineOptions::outlineLayers).
  std::string outlineLayers = "all";
  /// The CPU to generate code for, as LLVM names it ("host": this machine's).
  std::string targetCPU = "host";
  /// The vector width the kernels are tiled for, in bits (0: the CPU's
  /// widest).
  int64_t vectorBits = 0;
  /// Products on weights with integer groups: "f32" (exact) or "int8"
  /// (PipelineOptions::activations).
  std::string activations = "f32";
  /// The KV cache's element type: "f32", "f16" or "bf16"
  /// (PipelineOptions::kvCacheType).
  std::string kvCacheType = "f32";
  /// Print the time of every stage and pass.
  bool timing = false;
  /// Print the IR (to `errs`) after every pass, or after the passes with
  /// these flag names.
  bool printIRAfterAll = false;
  std::vector<std::string> printIRAfter;
  /// Report each stage as it starts (also done when stderr is a terminal).
  bool verbose = false;
};

/// Compiles `options.inputPath` as kiln-compile does: imports (or converts,
/// or parses) it, runs the stages, and writes MLIR, LLVM IR, an object, an
/// executable or a shared library. Errors, diagnostics, progress and IR
/// printouts go to `errs`; text written to "-" goes to stdout.
CompileStatus compile(const CompileOptions &options, llvm::raw_ostream &errs);

} // namespace kiln

#endif // KILN_DRIVER_COMPILE_H
