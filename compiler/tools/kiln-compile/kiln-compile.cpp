//===- kiln-compile.cpp - Compile a model file into an executable ---------===//
//
//   kiln-compile model.kiln -o mymodel
//   kiln-compile model.kiln --emit=mlir --stage=kv-cache | kiln-opt ...
//
// Exit codes: 0 success, 1 bad usage, 2 invalid model file or input IR,
// 3 compilation failure, 4 cannot write the output or link.
//
//===----------------------------------------------------------------------===//

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
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/Threading.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

using namespace llvm;

namespace {
enum ExitCode {
  Ok = 0,
  Usage = 1,
  BadInput = 2,
  CompileFailed = 3,
  OutputFailed = 4
};
enum class Emit { MLIR, LLVM, Obj, Exe, Shared };

cl::OptionCategory category("kiln-compile options");
cl::opt<std::string> inputPath(cl::Positional, cl::Required,
                               cl::desc("<model.kiln | model.gguf | hf-model-dir | stage.mlir>"),
                               cl::cat(category));
cl::opt<std::string> outputPath(
    "o",
    cl::desc("Output file (default: the model name for exe, stdout for text)"),
    cl::value_desc("path"), cl::cat(category));
cl::opt<Emit> emit(
    "emit", cl::desc("What to produce (default: exe)"), cl::init(Emit::Exe),
    cl::values(clEnumValN(Emit::MLIR, "mlir", "MLIR text at --stage"),
               clEnumValN(Emit::LLVM, "llvm", "optimized LLVM IR for this CPU"),
               clEnumValN(Emit::Obj, "obj", "object file"),
               clEnumValN(Emit::Exe, "exe",
                          "executable linked with the runtime"),
               clEnumValN(Emit::Shared, "shared",
                          "shared library with the C API of kiln.h")),
    cl::cat(category));
cl::opt<std::string> stageOpt(
    "stage",
    cl::desc("With --emit=mlir: stop after this stage: import, kv-cache, "
             "linalg, llvm (default: llvm)"),
    cl::init("llvm"), cl::cat(category));
cl::opt<std::string> fromStageOpt(
    "from-stage",
    cl::desc("For .mlir input: the stage it was printed at (default: import)"),
    cl::init("import"), cl::cat(category));
cl::opt<int64_t> batch("batch", cl::desc("Batch size of the entry points"),
                       cl::init(1), cl::cat(category));
cl::opt<std::string> runtimeLib(
    "runtime-lib",
    cl::desc("Runtime archive to link (default: ../lib/libkiln_runtime.a "
             "next to kiln-compile)"),
    cl::cat(category));
cl::opt<std::string> linker("linker",
                            cl::desc("C++ compiler driver used to link"),
                            cl::init(KILN_DEFAULT_LINKER), cl::cat(category));
cl::opt<bool> noHoistCross(
    "no-hoist-cross",
    cl::desc("Encoder-decoder models: do not hoist the cross-attention key/"
             "value projections into encode; every decode step projects the "
             "cached encoder output again (to measure what hoisting saves)"),
    cl::init(false), cl::cat(category));
cl::opt<std::string> targetCPU(
    "target-cpu",
    cl::desc("CPU to generate code for, as LLVM names it (e.g. znver4, "
             "skylake-avx512, haswell; default host: this machine's)"),
    cl::init("host"), cl::cat(category));
cl::opt<int64_t> vectorBits(
    "vector-bits",
    cl::desc("Vector register width the kernels are tiled for, in bits "
             "(128, 256 or 512; default 0: the target CPU's widest)"),
    cl::init(0), cl::cat(category));
cl::opt<bool> timing("timing",
                     cl::desc("Print the time of every stage and pass"),
                     cl::cat(category));
cl::opt<bool> printAfterAll("print-ir-after-all",
                            cl::desc("Print the IR after every pass (stderr)"),
                            cl::cat(category));
cl::list<std::string>
    printAfter("print-ir-after",
               cl::desc("Print the IR after the pass with this flag name "
                        "(e.g. transformer-kv-cache); repeatable"),
               cl::value_desc("pass"), cl::CommaSeparated, cl::cat(category));
cl::opt<bool> verbose("v",
                      cl::desc("Report each stage as it starts (default "
                               "when stderr is a terminal)"),
                      cl::cat(category));

int fail(int code, const Twine &message) {
  errs() << "kiln-compile: error: " << message << "\n";
  return code;
}

std::string defaultRuntimeLib(const char *argv0, bool shared) {
  std::string exe =
      sys::fs::getMainExecutable(argv0, (void *)&defaultRuntimeLib);
  SmallString<256> path(sys::path::parent_path(sys::path::parent_path(exe)));
  sys::path::append(path, "lib",
                    shared ? "libkiln_runtime_shared.a" : "libkiln_runtime.a");
  return std::string(path);
}

/// Writes `write(os)` to `path` atomically: a temporary file in the same
/// directory, renamed over `path` only when complete.
bool writeAtomically(StringRef path,
                     function_ref<bool(raw_pwrite_stream &)> write,
                     std::string &error) {
  if (path == "-") {
    outs().SetUnbuffered();
    raw_fd_ostream &os = outs();
    return write(os);
  }
  SmallString<256> tmp;
  int fd;
  StringRef dir = sys::path::parent_path(path);
  SmallString<256> model(dir.empty() ? "." : dir);
  sys::path::append(model, ".kiln-tmp-%%%%%%");
  if (std::error_code ec = sys::fs::createUniqueFile(model, fd, tmp)) {
    error = ("cannot write '" + path + "': " + ec.message()).str();
    return false;
  }
  bool ok;
  {
    raw_fd_ostream os(fd, /*shouldClose=*/true);
    ok = write(os);
    os.close();
    if (os.has_error()) {
      error = ("cannot write '" + path + "': " + os.error().message()).str();
      os.clear_error();
      ok = false;
    }
  }
  if (ok) {
    if (std::error_code ec = sys::fs::rename(tmp, path)) {
      error = ("cannot write '" + path + "': " + ec.message()).str();
      ok = false;
    }
  }
  if (!ok)
    sys::fs::remove(tmp);
  return ok;
}
} // namespace

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  mlir::registerPassManagerCLOptions();
  mlir::registerDefaultTimingManagerCLOptions();
  // --help lists Kiln's options, not LLVM's and MLIR's hundreds (they still
  // parse; --help-hidden lists them).
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(
      argc, argv,
      "Kiln: compiles a transformer model file into a native executable\n\n"
      "  kiln-compile model.kiln -o mymodel\n"
      "  kiln-compile model.gguf -o mymodel    (or a Hugging Face directory:\n"
      "      converted as kiln-convert does; writes mymodel.kiln beside it)\n"
      "  kiln-compile model.kiln --emit=mlir --stage=kv-cache\n\n"
      "Exit codes: 0 success, 1 bad usage, 2 invalid model or input IR,\n"
      "3 compilation failed, 4 cannot write the output or link.\n");

  std::optional<kiln::Stage> stage = kiln::parseStage(stageOpt);
  if (!stage)
    return fail(Usage, "unknown --stage '" + stageOpt +
                           "' (expected import, kv-cache, linalg or llvm)");
  std::optional<kiln::Stage> fromStage = kiln::parseStage(fromStageOpt);
  if (!fromStage)
    return fail(Usage, "unknown --from-stage '" + fromStageOpt + "'");
  if (batch <= 0)
    return fail(Usage, "--batch must be positive");
  if (auto target = kiln::describeTarget(targetCPU, vectorBits); !target)
    return fail(Usage, toString(target.takeError()));
  if (emit != Emit::MLIR)
    stage = kiln::Stage::LLVM;
  bool binary = emit == Emit::Obj || emit == Emit::Exe || emit == Emit::Shared;
  if (outputPath.empty()) {
    StringRef stem = sys::path::stem(StringRef(inputPath).rtrim("/"));
    if (emit == Emit::Exe)
      outputPath = stem.str();
    else if (emit == Emit::Shared)
      outputPath = ("lib" + stem + ".so").str();
    else if (emit == Emit::Obj)
      outputPath = (stem + ".o").str();
    else
      outputPath = "-";
  }
  if (binary && outputPath == "-")
    return fail(Usage, "refusing to write a binary to stdout; give -o");

  mlir::DefaultTimingManager tm;
  mlir::applyDefaultTimingManagerCLOptions(tm);
  if (timing)
    tm.setEnabled(true);
  mlir::TimingScope rootTimer = tm.getRootScope();

  mlir::DialectRegistry registry;
  kiln::registerAllDialects(registry);
  kiln::registerAllPasses();
  mlir::MLIRContext context(registry);
  context.loadAllAvailableDialects();
  // Diagnostics about a model file name the file and the graph node:
  //   model.kiln: node 'h.0.attn': error: ...
  mlir::ScopedDiagnosticHandler diagnostics(&context, [](mlir::Diagnostic &d) {
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
    errs() << where << severity << ": " << d.str() << "\n";
    for (const mlir::Diagnostic &note : d.getNotes())
      if (!StringRef(note.str()).starts_with("see current operation"))
        errs() << "  note: " << note.str() << "\n";
    return mlir::success();
  });

  // Import (or parse an earlier stage's output).
  mlir::OwningOpRef<mlir::ModuleOp> module;
  {
    mlir::TimingScope t = rootTimer.nest("import");
    if (StringRef(inputPath).ends_with(".mlir")) {
      llvm::SourceMgr sourceMgr;
      std::string err;
      auto file = mlir::openInputFile(inputPath, &err);
      if (!file)
        return fail(BadInput, err);
      sourceMgr.AddNewSourceBuffer(std::move(file), SMLoc());
      module = mlir::parseSourceFile<mlir::ModuleOp>(sourceMgr, &context);
    } else {
      fromStage = kiln::Stage::Import;
      kiln::ImportOptions options;
      options.batch = batch;
      if (!kiln::convert::needsConversion(inputPath)) {
        module = kiln::importModelFile(inputPath, &context, options);
      } else {
        // A GGUF file or Hugging Face directory: convert in memory. A binary
        // reads its weights at run time, so the converted model is written
        // beside it (OUTPUT.kiln), and that is the path the binary records.
        auto bytes = kiln::convert::convertToKiln(inputPath);
        if (!bytes)
          return fail(BadInput, toString(bytes.takeError()));
        if (binary) {
          SmallString<256> kilnPath(outputPath);
          sys::path::replace_extension(kilnPath, ".kiln");
          if (Error e = kiln::convert::writeFileAtomically(kilnPath,
                                                            bytes->bytes()))
            return fail(OutputFailed, toString(std::move(e)));
          errs() << "kiln-compile: converted " << inputPath << " to "
                 << kilnPath << " (the weights the output reads)\n";
          module = kiln::importModelFile(kilnPath, &context, options);
        } else {
          module =
              kiln::importModelBuffer(bytes->bytes(), inputPath, &context,
                                      options);
        }
      }
    }
    if (!module)
      return BadInput;
  }
  if (*stage < *fromStage)
    return fail(Usage, "--stage " + stageOpt +
                           " comes before the input's stage " + fromStageOpt);

  // One pass manager per stage, so progress and timing name the stages.
  bool progress = verbose || sys::Process::StandardErrIsDisplayed();
  std::vector<kiln::Stage> stages;
  for (int s = (int)*fromStage + 1; s <= (int)*stage; ++s)
    stages.push_back((kiln::Stage)s);
  int totalSteps = stages.size() + (emit == Emit::MLIR   ? 0
                                    : emit == Emit::LLVM ? 1
                                                         : 2);
  int step = 0;
  auto report = [&](StringRef what) {
    if (progress)
      errs() << "kiln-compile: [" << ++step << "/" << totalSteps << "] " << what
             << "\n";
  };
  for (kiln::Stage s : stages) {
    report(kiln::stageName(s));
    mlir::PassManager pm = mlir::PassManager::on<mlir::ModuleOp>(&context);
    if (failed(mlir::applyPassManagerCLOptions(pm)))
      return fail(Usage, "bad pass manager options");
    if (printAfterAll || !printAfter.empty()) {
      context.disableMultithreading();
      std::vector<std::string> names(printAfter.begin(), printAfter.end());
      pm.enableIRPrinting(
          [](mlir::Pass *, mlir::Operation *) { return false; },
          [names](mlir::Pass *pass, mlir::Operation *) {
            return printAfterAll ||
                   llvm::is_contained(names, pass->getArgument().str());
          },
          /*printModuleScope=*/true, /*printAfterOnlyOnChange=*/false);
    }
    mlir::TimingScope stageTimer = rootTimer.nest(kiln::stageName(s));
    pm.enableTiming(stageTimer);
    kiln::PipelineOptions pipelineOptions;
    pipelineOptions.hoistCross = !noHoistCross;
    pipelineOptions.targetCPU = targetCPU;
    pipelineOptions.vectorBits = vectorBits;
    kiln::buildPipeline(pm, (kiln::Stage)((int)s - 1), s, pipelineOptions);
    if (failed(pm.run(*module)))
      return fail(CompileFailed,
                  "compilation failed in stage " + kiln::stageName(s));
  }

  std::string error;
  if (emit == Emit::MLIR) {
    mlir::TimingScope t = rootTimer.nest("print");
    if (!writeAtomically(
            outputPath,
            [&](raw_pwrite_stream &os) {
              module->print(os);
              os << "\n";
              return true;
            },
            error))
      return fail(OutputFailed, error);
    return Ok;
  }

  // Object emission reads the target the kernels were generated for.
  Expected<kiln::TargetDescription> target = kiln::targetOf(*module);
  if (!target)
    return fail(CompileFailed, toString(target.takeError()));
  LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule;
  bool serial = emit == Emit::LLVM || emit == Emit::Obj;
  report(serial ? "llvm-ir (-O2 for this CPU)" : "llvm-ir");
  {
    mlir::TimingScope t = rootTimer.nest(serial ? "llvm-opt" : "llvm-translate");
    llvmModule = kiln::translateForTarget(*module, llvmContext, *target, error,
                                          /*optimize=*/serial);
    if (!llvmModule)
      return fail(CompileFailed, error);
  }
  if (emit == Emit::LLVM) {
    if (!writeAtomically(
            outputPath,
            [&](raw_pwrite_stream &os) {
              llvmModule->print(os, nullptr);
              return true;
            },
            error))
      return fail(OutputFailed, error);
    return Ok;
  }
  if (emit == Emit::Obj) {
    auto emitObj = [&](raw_pwrite_stream &os) {
      report("object");
      mlir::TimingScope t = rootTimer.nest("codegen");
      return kiln::emitObject(*llvmModule, *target, os, error);
    };
    if (!writeAtomically(outputPath, emitObj, error))
      return fail(error.empty() ? OutputFailed : CompileFailed, error);
    return Ok;
  }

  // Executable or shared library: -O2 and code generation of the module's
  // parts on every CPU this process may use (one object file each, in
  // temporary files), then link to a temporary file next to the output and
  // rename it into place.
  bool shared = emit == Emit::Shared;
  std::string lib = runtimeLib.empty() ? defaultRuntimeLib(argv[0], shared)
                                       : std::string(runtimeLib);
  if (!sys::fs::exists(lib))
    return fail(OutputFailed,
                "runtime library '" + lib + "' not found (give --runtime-lib)");
  unsigned parts = std::max(
      1u, std::min(8u, llvm::hardware_concurrency().compute_thread_count()));
  SmallVector<SmallString<0>> objects;
  {
    report("objects and link");
    mlir::TimingScope t = rootTimer.nest("llvm-opt+codegen (" +
                                         std::to_string(parts) + " threads)");
    if (!kiln::emitObjectsInParallel(std::move(llvmModule), *target, parts,
                                     objects, error))
      return fail(CompileFailed, error);
  }
  std::vector<std::string> objPaths;
  std::vector<std::unique_ptr<FileRemover>> objRemovers;
  for (const SmallString<0> &object : objects) {
    SmallString<256> objPath;
    if (std::error_code ec =
            sys::fs::createTemporaryFile("kiln-model", "o", objPath))
      return fail(OutputFailed,
                  "cannot create a temporary file: " + ec.message());
    objRemovers.push_back(std::make_unique<FileRemover>(objPath));
    std::error_code ec;
    raw_fd_ostream os(objPath, ec);
    if (!ec)
      os << object;
    os.close();
    if (ec || os.has_error())
      return fail(OutputFailed, "cannot write '" + objPath.str().str() + "'");
    objPaths.push_back(objPath.str().str());
  }
  SmallString<256> dir(sys::path::parent_path(outputPath));
  if (dir.empty())
    dir = ".";
  SmallString<256> tmpExe(dir);
  sys::path::append(tmpExe, ".kiln-link-%%%%%%");
  if (std::error_code ec = sys::fs::createUniqueFile(tmpExe, tmpExe))
    return fail(OutputFailed,
                "cannot write '" + outputPath + "': " + ec.message());
  FileRemover exeRemover(tmpExe);
  {
    mlir::TimingScope t = rootTimer.nest("link");
    if (!kiln::linkExecutable(linker, objPaths, lib, tmpExe, shared, error))
      return fail(OutputFailed, error);
  }
  if (std::error_code ec = sys::fs::rename(tmpExe, outputPath))
    return fail(OutputFailed,
                "cannot write '" + outputPath + "': " + ec.message());
  exeRemover.releaseFile();
  return Ok;
}
