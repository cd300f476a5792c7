//===- Compile.cpp - kiln-compile as a library ----------------------------===//
//
// kiln::compile: validate the options, import the input, run the stages one
// pass manager each (so progress and timing name them), then print MLIR or
// translate to LLVM IR and write it, an object file, or an executable or
// shared library linked with the runtime.
//
//===----------------------------------------------------------------------===//

#include "kiln/Driver/Compile.h"
#include "kiln/Convert/Convert.h"
#include "kiln/Import/ModelImporter.h"
#include "kiln/InitAll.h"
#include "kiln/Pipelines/Pipelines.h"
#include "kiln/Target/ObjectEmitter.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Support/Timing.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/Threading.h"

#include <algorithm>
#include <optional>

using namespace llvm;
using kiln::CompileOptions;
using kiln::CompileStatus;
using kiln::EmitKind;

std::string kiln::defaultLinker() { return KILN_DEFAULT_LINKER; }

namespace {
/// The options once checked, and what the stages and emitters share.
struct Compilation {
  const CompileOptions &options;
  raw_ostream &errs;
  /// The stage to stop after and the input's stage.
  kiln::Stage stage = kiln::Stage::LLVM;
  kiln::Stage fromStage = kiln::Stage::Import;
  /// options.outputPath, or the default for the emit kind.
  std::string outputPath;
  /// An object, executable or shared library (never written to stdout).
  bool binary = false;
  mlir::TimingScope rootTimer;
  /// "[step/total] what" lines on errs, when verbose or stderr is a terminal.
  bool progress = false;
  int step = 0;
  int totalSteps = 0;

  Compilation(const CompileOptions &options, raw_ostream &errs)
      : options(options), errs(errs) {}

  CompileStatus fail(CompileStatus status, const Twine &message) {
    errs << "kiln-compile: error: " << message << "\n";
    return status;
  }

  void report(StringRef what) {
    if (progress)
      errs << "kiln-compile: [" << ++step << "/" << totalSteps << "] " << what
           << "\n";
  }
};
} // namespace

static std::string defaultRuntimeLib(const std::string &argv0, bool shared) {
  std::string exe =
      sys::fs::getMainExecutable(argv0.c_str(), (void *)&defaultRuntimeLib);
  SmallString<256> path(sys::path::parent_path(sys::path::parent_path(exe)));
  sys::path::append(path, "lib",
                    shared ? "libkiln_runtime_shared.a" : "libkiln_runtime.a");
  return std::string(path);
}

/// Checks the options that need no input and resolves the stages and the
/// output path.
static CompileStatus checkOptions(Compilation &c) {
  const CompileOptions &o = c.options;
  std::optional<kiln::Stage> stage = kiln::parseStage(o.stage);
  if (!stage)
    return c.fail(kiln::CompileUsageError,
                  "unknown --stage '" + o.stage +
                      "' (expected import, kv-cache, linalg or llvm)");
  std::optional<kiln::Stage> fromStage = kiln::parseStage(o.fromStage);
  if (!fromStage)
    return c.fail(kiln::CompileUsageError,
                  "unknown --from-stage '" + o.fromStage + "'");
  if (o.batch <= 0)
    return c.fail(kiln::CompileUsageError, "--batch must be positive");
  if (auto target = kiln::describeTarget(o.targetCPU, o.vectorBits); !target)
    return c.fail(kiln::CompileUsageError, toString(target.takeError()));
  if (o.activations != "f32" && o.activations != "int8")
    return c.fail(kiln::CompileUsageError,
                  "--activations must be f32 or int8, not '" + o.activations +
                      "'");
  if (o.kvCacheType != "f32" && o.kvCacheType != "f16" &&
      o.kvCacheType != "bf16")
    return c.fail(kiln::CompileUsageError,
                  "--kv-cache-type must be f32, f16 or bf16, not '" +
                      o.kvCacheType + "'");
  c.stage = o.emit == EmitKind::MLIR ? *stage : kiln::Stage::LLVM;
  c.fromStage = *fromStage;
  c.binary = o.emit == EmitKind::Obj || o.emit == EmitKind::Exe ||
             o.emit == EmitKind::Shared;
  c.outputPath = o.outputPath;
  if (c.outputPath.empty()) {
    StringRef stem = sys::path::stem(StringRef(o.inputPath).rtrim("/"));
    if (o.emit == EmitKind::Exe)
      c.outputPath = stem.str();
    else if (o.emit == EmitKind::Shared)
      c.outputPath = ("lib" + stem + ".so").str();
    else if (o.emit == EmitKind::Obj)
      c.outputPath = (stem + ".o").str();
    else
      c.outputPath = "-";
  }
  if (c.binary && c.outputPath == "-")
    return c.fail(kiln::CompileUsageError,
                  "refusing to write a binary to stdout; give -o");
  return kiln::CompileOk;
}

/// Prints a diagnostic about a model file naming the file and the graph
/// node:
///   model.kiln: node 'h.0.attn': error: ...
static void printDiagnostic(raw_ostream &errs, mlir::Diagnostic &d) {
  std::string where;
  mlir::Location loc = d.getLocation();
  if (auto name = dyn_cast<mlir::NameLoc>(loc)) {
    if (auto file = dyn_cast<mlir::FileLineColLoc>(name.getChildLoc()))
      where = (file.getFilename().getValue() + ": ").str();
    where += "node '" + name.getName().getValue().str() + "': ";
  } else if (auto file = dyn_cast<mlir::FileLineColLoc>(loc)) {
    where = file.getFilename().getValue().str();
    if (file.getLine() != 0)
      where += ":" + std::to_string(file.getLine()) + ":" +
               std::to_string(file.getColumn());
    where += ": ";
  }
  const char *severity =
      d.getSeverity() == mlir::DiagnosticSeverity::Error     ? "error"
      : d.getSeverity() == mlir::DiagnosticSeverity::Warning ? "warning"
                                                             : "note";
  errs << where << severity << ": " << d.str() << "\n";
  for (const mlir::Diagnostic &note : d.getNotes())
    if (!StringRef(note.str()).starts_with("see current operation"))
      errs << "  note: " << note.str() << "\n";
}

/// Imports the model file (converting a GGUF file or Hugging Face directory
/// first) or parses an earlier stage's output into `module`.
static CompileStatus importInput(Compilation &c, mlir::MLIRContext &context,
                                 mlir::OwningOpRef<mlir::ModuleOp> &module) {
  const CompileOptions &o = c.options;
  mlir::TimingScope t = c.rootTimer.nest("import");
  if (StringRef(o.inputPath).ends_with(".mlir")) {
    llvm::SourceMgr sourceMgr;
    std::string err;
    auto file = mlir::openInputFile(o.inputPath, &err);
    if (!file)
      return c.fail(kiln::CompileBadInput, err);
    sourceMgr.AddNewSourceBuffer(std::move(file), SMLoc());
    module = mlir::parseSourceFile<mlir::ModuleOp>(sourceMgr, &context);
  } else {
    c.fromStage = kiln::Stage::Import;
    kiln::ImportOptions options;
    options.batch = o.batch;
    if (!kiln::convert::needsConversion(o.inputPath)) {
      module = kiln::importModelFile(o.inputPath, &context, options);
    } else {
      // A GGUF file or Hugging Face directory: convert in memory. A binary
      // reads its weights at run time, so the converted model is written
      // beside it (OUTPUT.kiln), and that is the path the binary records.
      auto converted = kiln::convert::convertToKiln(o.inputPath);
      if (!converted)
        return c.fail(kiln::CompileBadInput, toString(converted.takeError()));
      if (c.binary) {
        SmallString<256> kilnPath(c.outputPath);
        sys::path::replace_extension(kilnPath, ".kiln");
        if (Error e = kiln::convert::writeModelFile(kilnPath, *converted))
          return c.fail(kiln::CompileOutputFailed, toString(std::move(e)));
        c.errs << "kiln-compile: converted " << o.inputPath << " to "
               << kilnPath << " (the weights the output reads)\n";
        module = kiln::importModelFile(kilnPath, &context, options);
      } else {
        std::unique_ptr<llvm::MemoryBuffer> bytes =
            converted->toMemoryBuffer();
        if (!bytes)
          return c.fail(kiln::CompileBadInput, "out of memory");
        module = kiln::importModelBuffer(
            ArrayRef<uint8_t>(
                reinterpret_cast<const uint8_t *>(bytes->getBufferStart()),
                bytes->getBufferSize()),
            o.inputPath, &context, options);
      }
    }
  }
  if (!module)
    return kiln::CompileBadInput;
  return kiln::CompileOk;
}

/// Runs the stages after c.fromStage up to c.stage, one pass manager each.
static CompileStatus runStages(Compilation &c, mlir::MLIRContext &context,
                               mlir::ModuleOp module) {
  const CompileOptions &o = c.options;
  for (int s = (int)c.fromStage + 1; s <= (int)c.stage; ++s) {
    auto stage = (kiln::Stage)s;
    c.report(kiln::stageName(stage));
    mlir::PassManager pm = mlir::PassManager::on<mlir::ModuleOp>(&context);
    if (failed(mlir::applyPassManagerCLOptions(pm)))
      return c.fail(kiln::CompileUsageError, "bad pass manager options");
    if (o.printIRAfterAll || !o.printIRAfter.empty()) {
      context.disableMultithreading();
      pm.enableIRPrinting(
          [](mlir::Pass *, mlir::Operation *) { return false; },
          [all = o.printIRAfterAll, names = o.printIRAfter](mlir::Pass *pass,
                                                            mlir::Operation *) {
            return all || llvm::is_contained(names, pass->getArgument().str());
          },
          /*printModuleScope=*/true, /*printAfterOnlyOnChange=*/false,
          /*printAfterOnlyOnFailure=*/false, c.errs);
    }
    mlir::TimingScope stageTimer = c.rootTimer.nest(kiln::stageName(stage));
    pm.enableTiming(stageTimer);
    kiln::PipelineOptions pipelineOptions;
    pipelineOptions.hoistCross = o.hoistCross;
    pipelineOptions.outlineLayers = o.outlineLayers;
    pipelineOptions.targetCPU = o.targetCPU;
    pipelineOptions.vectorBits = o.vectorBits;
    pipelineOptions.activations = o.activations;
    pipelineOptions.kvCacheType = o.kvCacheType;
    kiln::buildPipeline(pm, (kiln::Stage)(s - 1), stage, pipelineOptions);
    if (failed(pm.run(module)))
      return c.fail(kiln::CompileFailed,
                    "compilation failed in stage " + kiln::stageName(stage));
  }
  return kiln::CompileOk;
}

/// --emit=mlir: the module as text.
static CompileStatus emitMLIR(Compilation &c, mlir::ModuleOp module) {
  mlir::TimingScope t = c.rootTimer.nest("print");
  std::string error;
  if (!kiln::convert::writeFileAtomically(
          c.outputPath,
          [&](raw_pwrite_stream &os) {
            module->print(os);
            os << "\n";
            return true;
          },
          error))
    return c.fail(kiln::CompileOutputFailed, error);
  return kiln::CompileOk;
}

/// --emit=llvm: the optimized LLVM IR as text.
static CompileStatus emitLLVMIR(Compilation &c, llvm::Module &llvmModule) {
  std::string error;
  if (!kiln::convert::writeFileAtomically(
          c.outputPath,
          [&](raw_pwrite_stream &os) {
            llvmModule.print(os, nullptr);
            return true;
          },
          error))
    return c.fail(kiln::CompileOutputFailed, error);
  return kiln::CompileOk;
}

/// --emit=obj: one object file of the optimized module.
static CompileStatus emitObjectFile(Compilation &c, llvm::Module &llvmModule,
                                    const kiln::TargetDescription &target) {
  std::string error;
  auto emitObj = [&](raw_pwrite_stream &os) {
    c.report("object");
    mlir::TimingScope t = c.rootTimer.nest("codegen");
    return kiln::emitObject(llvmModule, target, os, error);
  };
  if (!kiln::convert::writeFileAtomically(c.outputPath, emitObj, error))
    return c.fail(
        error.empty() ? kiln::CompileOutputFailed : kiln::CompileFailed, error);
  return kiln::CompileOk;
}

/// --emit=exe or shared: -O2 and code generation of the module's parts on
/// every CPU this process may use (one object file each, in temporary
/// files), then link to a temporary file next to the output and rename it
/// into place.
static CompileStatus emitLinked(Compilation &c,
                                std::unique_ptr<llvm::Module> llvmModule,
                                const kiln::TargetDescription &target) {
  const CompileOptions &o = c.options;
  bool shared = o.emit == EmitKind::Shared;
  std::string lib =
      o.runtimeLib.empty() ? defaultRuntimeLib(o.argv0, shared) : o.runtimeLib;
  if (!sys::fs::exists(lib))
    return c.fail(kiln::CompileOutputFailed,
                  "runtime library '" + lib +
                      "' not found (give --runtime-lib)");
  unsigned parts = std::max(
      1u, std::min(8u, llvm::hardware_concurrency().compute_thread_count()));
  std::string error;
  SmallVector<SmallString<0>> objects;
  {
    c.report("objects and link");
    mlir::TimingScope t = c.rootTimer.nest("llvm-opt+codegen (" +
                                           std::to_string(parts) + " threads)");
    if (!kiln::emitObjectsInParallel(std::move(llvmModule), target, parts,
                                     objects, error))
      return c.fail(kiln::CompileFailed, error);
  }
  std::vector<std::string> objPaths;
  std::vector<std::unique_ptr<FileRemover>> objRemovers;
  for (const SmallString<0> &object : objects) {
    SmallString<256> objPath;
    if (std::error_code ec =
            sys::fs::createTemporaryFile("kiln-model", "o", objPath))
      return c.fail(kiln::CompileOutputFailed,
                    "cannot create a temporary file: " + ec.message());
    objRemovers.push_back(std::make_unique<FileRemover>(objPath));
    std::error_code ec;
    raw_fd_ostream os(objPath, ec);
    if (!ec)
      os << object;
    os.close();
    if (ec || os.has_error())
      return c.fail(kiln::CompileOutputFailed,
                    "cannot write '" + objPath.str().str() + "'");
    objPaths.push_back(objPath.str().str());
  }
  SmallString<256> dir(sys::path::parent_path(c.outputPath));
  if (dir.empty())
    dir = ".";
  SmallString<256> tmpExe(dir);
  sys::path::append(tmpExe, ".kiln-link-%%%%%%");
  if (std::error_code ec = sys::fs::createUniqueFile(tmpExe, tmpExe))
    return c.fail(kiln::CompileOutputFailed,
                  "cannot write '" + c.outputPath + "': " + ec.message());
  FileRemover exeRemover(tmpExe);
  {
    mlir::TimingScope t = c.rootTimer.nest("link");
    if (!kiln::linkExecutable(o.linker, objPaths, lib, tmpExe, shared, error))
      return c.fail(kiln::CompileOutputFailed, error);
  }
  if (std::error_code ec = sys::fs::rename(tmpExe, c.outputPath))
    return c.fail(kiln::CompileOutputFailed,
                  "cannot write '" + c.outputPath + "': " + ec.message());
  exeRemover.releaseFile();
  return kiln::CompileOk;
}

/// Translates the module (in the LLVM dialect) for the target it was
/// compiled for and writes LLVM IR, an object, or a linked binary.
static CompileStatus emitFromLLVMDialect(Compilation &c,
                                         mlir::ModuleOp module) {
  EmitKind emit = c.options.emit;
  // Object emission reads the target the kernels were generated for.
  Expected<kiln::TargetDescription> target = kiln::targetOf(module);
  if (!target)
    return c.fail(kiln::CompileFailed, toString(target.takeError()));
  LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule;
  bool serial = emit == EmitKind::LLVM || emit == EmitKind::Obj;
  c.report(serial ? "llvm-ir (-O2 for this CPU)" : "llvm-ir");
  {
    mlir::TimingScope t =
        c.rootTimer.nest(serial ? "llvm-opt" : "llvm-translate");
    std::string error;
    llvmModule = kiln::translateForTarget(module, llvmContext, *target, error,
                                          /*optimize=*/serial);
    if (!llvmModule)
      return c.fail(kiln::CompileFailed, error);
  }
  if (emit == EmitKind::LLVM)
    return emitLLVMIR(c, *llvmModule);
  if (emit == EmitKind::Obj)
    return emitObjectFile(c, *llvmModule, *target);
  return emitLinked(c, std::move(llvmModule), *target);
}

CompileStatus kiln::compile(const CompileOptions &options, raw_ostream &errs) {
  // Declared first: it outlives the root timing scope `c` holds, and prints
  // its report (when enabled) as it is destroyed, after everything else.
  mlir::DefaultTimingManager tm;
  Compilation c(options, errs);
  if (CompileStatus status = checkOptions(c); status != CompileOk)
    return status;

  // The timing manager reads MLIR's timing flags where the tool registered
  // them (mlir::registerDefaultTimingManagerCLOptions).
  mlir::applyDefaultTimingManagerCLOptions(tm);
  if (options.timing)
    tm.setEnabled(true);
  c.rootTimer = tm.getRootScope();

  mlir::DialectRegistry registry;
  kiln::registerAllDialects(registry);
  static bool passesRegistered = (kiln::registerAllPasses(), true);
  (void)passesRegistered;
  mlir::MLIRContext context(registry);
  context.loadAllAvailableDialects();
  mlir::ScopedDiagnosticHandler diagnostics(&context,
                                            [&errs](mlir::Diagnostic &d) {
                                              printDiagnostic(errs, d);
                                              return mlir::success();
                                            });

  mlir::OwningOpRef<mlir::ModuleOp> module;
  if (CompileStatus status = importInput(c, context, module);
      status != CompileOk)
    return status;
  if (c.stage < c.fromStage)
    return c.fail(CompileUsageError, "--stage " + options.stage +
                                         " comes before the input's stage " +
                                         options.fromStage);

  c.progress = options.verbose || sys::Process::StandardErrIsDisplayed();
  c.totalSteps = (int)c.stage - (int)c.fromStage +
                 (options.emit == EmitKind::MLIR   ? 0
                  : options.emit == EmitKind::LLVM ? 1
                                                   : 2);
  if (CompileStatus status = runStages(c, context, *module);
      status != CompileOk)
    return status;

  if (options.emit == EmitKind::MLIR)
    return emitMLIR(c, *module);
  return emitFromLLVMDialect(c, *module);
}
