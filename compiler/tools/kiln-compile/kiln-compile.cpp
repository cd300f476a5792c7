//===- kiln-compile.cpp - Compile a model file into an executable ---------===//
//
//   kiln-compile model.kiln -o mymodel
//   kiln-compile model.kiln --emit=mlir --stage=kv-cache | kiln-opt ...
//
// Exit codes: 0 success, 1 bad usage, 2 invalid model file or input IR,
// 3 compilation failure, 4 cannot write the output or link.
//
// The flags fill a kiln::CompileOptions; kiln::compile (kiln/Driver) does
// the work.
//
//===----------------------------------------------------------------------===//

#include "kiln/Driver/Compile.h"

#include "mlir/Pass/PassManager.h"
#include "mlir/Support/Timing.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/raw_ostream.h"

using namespace llvm;

namespace {
cl::OptionCategory category("kiln-compile options");
cl::opt<std::string>
    inputPath(cl::Positional, cl::Required,
              cl::desc("<model.kiln | model.gguf | hf-model-dir | stage.mlir>"),
              cl::cat(category));
cl::opt<std::string> outputPath(
    "o",
    cl::desc("Output file (default: the model name for exe, stdout for text)"),
    cl::value_desc("path"), cl::cat(category));
cl::opt<kiln::EmitKind> emit(
    "emit", cl::desc("What to produce (default: exe)"),
    cl::init(kiln::EmitKind::Exe),
    cl::values(clEnumValN(kiln::EmitKind::MLIR, "mlir", "MLIR text at --stage"),
               clEnumValN(kiln::EmitKind::LLVM, "llvm",
                          "optimized LLVM IR for this CPU"),
               clEnumValN(kiln::EmitKind::Obj, "obj", "object file"),
               clEnumValN(kiln::EmitKind::Exe, "exe",
                          "executable linked with the runtime"),
               clEnumValN(kiln::EmitKind::Shared, "shared",
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
                            cl::init(kiln::defaultLinker()), cl::cat(category));
cl::opt<bool> noHoistCross(
    "no-hoist-cross",
    cl::desc("Encoder-decoder models: do not hoist the cross-attention key/"
             "value projections into encode; every decode step projects the "
             "cached encoder output again (to measure what hoisting saves)"),
    cl::init(false), cl::cat(category));
enum class Outline { None, Decode, All };
cl::opt<Outline> outlineLayers(
    "outline-layers",
    cl::desc("Layer blocks compiled once and called per layer"),
    cl::init(Outline::All),
    cl::values(clEnumValN(Outline::None, "none",
                          "every layer inline (compile time grows with "
                          "depth)"),
               clEnumValN(Outline::Decode, "decode",
                          "decode's blocks only; prompts' inline"),
               clEnumValN(Outline::All, "all",
                          "every entry point's blocks (default: as fast as "
                          "inline, many times faster to compile)")),
    cl::cat(category));
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
enum class Activations { F32, Int8 };
cl::opt<Activations> activations(
    "activations",
    cl::desc("How products on Q4_0/Q4_1/Q5_0/Q5_1/Q4_K/Q5_K/Q6_K (with "
             "AVX-512 VNNI also Q8_0) weights read x"),
    cl::init(Activations::F32),
    cl::values(clEnumValN(Activations::F32, "f32",
                          "as computed, times exactly dequantized weights "
                          "(default: logits within ~1e-6 of float64)"),
               clEnumValN(Activations::Int8, "int8",
                          "quantized, integer dot products with the "
                          "weights' integers: decode x at 8 bits (a scale "
                          "per 4 values), with AVX-512 VNNI prompts at 16 "
                          "bits per 32 values (faster decode and prefill, "
                          "logits within ~1e-2)")),
    cl::cat(category));
enum class KVCacheType { F32, F16, BF16 };
cl::opt<KVCacheType> kvCacheType(
    "kv-cache-type",
    cl::desc("Element type of the KV cache (the keys and values of every "
             "position)"),
    cl::init(KVCacheType::F32),
    cl::values(clEnumValN(KVCacheType::F32, "f32",
                          "as computed (default: exact)"),
               clEnumValN(KVCacheType::F16, "f16",
                          "rounded to half precision as appended: half the "
                          "memory and the attention's reads (llama.cpp's "
                          "default)"),
               clEnumValN(KVCacheType::BF16, "bf16",
                          "rounded to bfloat16: half the memory, 8 bits "
                          "of mantissa")),
    cl::cat(category));
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

  kiln::CompileOptions options;
  options.inputPath = inputPath;
  options.outputPath = outputPath;
  options.emit = emit;
  options.stage = stageOpt;
  options.fromStage = fromStageOpt;
  options.batch = batch;
  options.runtimeLib = runtimeLib;
  options.argv0 = argv[0];
  options.linker = linker;
  options.hoistCross = !noHoistCross;
  options.outlineLayers = outlineLayers == Outline::None     ? "none"
                          : outlineLayers == Outline::Decode ? "decode"
                                                             : "all";
  options.targetCPU = targetCPU;
  options.vectorBits = vectorBits;
  options.activations = activations == Activations::Int8 ? "int8" : "f32";
  options.kvCacheType = kvCacheType == KVCacheType::F16    ? "f16"
                        : kvCacheType == KVCacheType::BF16 ? "bf16"
                                                           : "f32";
  options.timing = timing;
  options.printIRAfterAll = printAfterAll;
  options.printIRAfter.assign(printAfter.begin(), printAfter.end());
  options.verbose = verbose;
  return kiln::compile(options, llvm::errs());
}
