//===- ObjectEmitter.cpp - LLVM dialect -> object file -> executable ------===//
//
// Objects are emitted in-process through a TargetMachine for the CPU of the
// module's target description (kiln.target); only the final link runs the
// system compiler driver.
//
//===----------------------------------------------------------------------===//

#include "kiln/Target/ObjectEmitter.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/OpenMP/OpenMPToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/Bitcode/BitcodeReader.h"
#include "llvm/Bitcode/BitcodeWriter.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/SubtargetFeature.h"
#include "llvm/Transforms/Utils/SplitModule.h"

#include <thread>

using namespace llvm;

static std::unique_ptr<TargetMachine>
targetMachine(const kiln::TargetDescription &desc, std::string &error) {
  InitializeNativeTarget();
  InitializeNativeTargetAsmPrinter();
  // The kernels carry inline assembly (upstream x86vector's blends), which
  // the object writer parses.
  InitializeNativeTargetAsmParser();
  Triple triple(desc.triple);
  const Target *target = TargetRegistry::lookupTarget(triple, error);
  if (!target)
    return nullptr;
  // The host's own features (a VM may hide some of its CPU model's); a
  // named CPU's are implied by its name.
  SubtargetFeatures features;
  if (desc.isHost)
    for (const auto &feature : sys::getHostCPUFeatures())
      features.AddFeature(feature.first(), feature.second);
  TargetOptions options;
  // Let the backend form fused multiply-adds (PyTorch's kernels do too).
  options.AllowFPOpFusion = FPOpFusion::Fast;
  std::unique_ptr<TargetMachine> tm(target->createTargetMachine(
      triple, desc.cpu, features.getString(), options, Reloc::PIC_,
      std::nullopt, CodeGenOptLevel::Aggressive));
  if (!tm)
    error = "cannot create a target machine for " + triple.str();
  return tm;
}

std::unique_ptr<Module>
kiln::translateForTarget(mlir::ModuleOp module, LLVMContext &context,
                         const TargetDescription &target, std::string &error,
                         bool optimize) {
  // Argument and result attributes of other dialects (transformer.weights,
  // transformer.output, ...) document the IR; LLVM IR has no use for them.
  module.walk([](mlir::LLVM::LLVMFuncOp func) {
    auto strip = [](mlir::DictionaryAttr attrs) {
      llvm::SmallVector<mlir::NamedAttribute> kept;
      for (mlir::NamedAttribute a : attrs)
        if (a.getName().getValue().starts_with("llvm."))
          kept.push_back(a);
      return mlir::DictionaryAttr::get(attrs.getContext(), kept);
    };
    for (unsigned i = 0, e = func.getNumArguments(); i < e; ++i)
      func.setArgAttrs(
          i, strip(func.getArgAttrDict(i)
                       ? func.getArgAttrDict(i)
                       : mlir::DictionaryAttr::get(func.getContext())));
    for (unsigned i = 0, e = func.getNumResults(); i < e; ++i)
      if (func.getResultAttrDict(i))
        func.setResultAttrs(i, strip(func.getResultAttrDict(i)));
  });
  mlir::DialectRegistry registry;
  mlir::registerBuiltinDialectTranslation(registry);
  mlir::registerLLVMDialectTranslation(registry);
  mlir::registerOpenMPDialectTranslation(registry);
  module->getContext()->appendDialectRegistry(registry);
  std::unique_ptr<Module> llvmModule =
      mlir::translateModuleToLLVMIR(module, context, "kiln_model");
  if (!llvmModule) {
    error = "translation from the LLVM dialect to LLVM IR failed";
    return nullptr;
  }
  if (optimize && !optimizeForTarget(*llvmModule, target, error))
    return nullptr;
  return llvmModule;
}

bool kiln::optimizeForTarget(Module &module, const TargetDescription &target,
                             std::string &error) {
  std::unique_ptr<TargetMachine> tm = targetMachine(target, error);
  if (!tm)
    return false;
  module.setTargetTriple(tm->getTargetTriple());
  module.setDataLayout(tm->createDataLayout());
  // The kernels are written for the target's vector width; without this
  // LLVM splits 512-bit vectors in two on CPUs it tunes for 256 bits (Zen 4),
  // and a 4x4 tile of accumulators no longer fits the register file.
  std::string width = std::to_string(target.vectorBits);
  for (Function &f : module)
    if (!f.isDeclaration())
      f.addFnAttr("prefer-vector-width", width);

  LoopAnalysisManager lam;
  FunctionAnalysisManager fam;
  CGSCCAnalysisManager cgam;
  ModuleAnalysisManager mam;
  PassBuilder pb(tm.get());
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  // -O2: on a 288-wide 6-layer Llama it compiled 30% faster than -O3 (16 s
  // vs 23 s of LLVM time) with equal or better speed (median of 3 runs:
  // decode 267 vs 258 tok/s, prefill of 16 tokens 18.7 vs 20.6 ms); -O1
  // loses vectorization (52 tok/s).
  ModulePassManager mpm =
      pb.buildPerModuleDefaultPipeline(OptimizationLevel::O2);
  mpm.run(module, mam);
  return true;
}

bool kiln::emitObjectsInParallel(std::unique_ptr<Module> module,
                                 const TargetDescription &target,
                                 unsigned parts,
                                 SmallVectorImpl<SmallString<0>> &objects,
                                 std::string &error) {
  // The target is initialised here, before any thread starts.
  if (!targetMachine(target, error))
    return false;
  // Each part travels as bitcode into a context of its own: an LLVMContext
  // is not shared between threads.
  SmallVector<SmallString<0>> bitcode;
  SplitModule(
      *module, std::max(parts, 1u),
      [&](std::unique_ptr<Module> part) {
        SmallString<0> &buf = bitcode.emplace_back();
        raw_svector_ostream os(buf);
        WriteBitcodeToFile(*part, os);
      },
      /*PreserveLocals=*/false);
  module.reset();
  objects.assign(bitcode.size(), SmallString<0>());
  std::vector<std::string> errors(bitcode.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < bitcode.size(); ++i)
    threads.emplace_back([&, i] {
      LLVMContext context;
      Expected<std::unique_ptr<Module>> part = parseBitcodeFile(
          MemoryBufferRef(StringRef(bitcode[i].data(), bitcode[i].size()),
                          "kiln-part"),
          context);
      if (!part) {
        errors[i] = toString(part.takeError());
        return;
      }
      raw_svector_ostream os(objects[i]);
      if (optimizeForTarget(**part, target, errors[i]))
        emitObject(**part, target, os, errors[i]);
    });
  for (std::thread &t : threads)
    t.join();
  for (std::string &e : errors)
    if (!e.empty()) {
      error = e;
      return false;
    }
  return true;
}

bool kiln::emitObject(Module &module, const TargetDescription &target,
                      raw_pwrite_stream &os, std::string &error) {
  std::unique_ptr<TargetMachine> tm = targetMachine(target, error);
  if (!tm)
    return false;
  legacy::PassManager pm;
  if (tm->addPassesToEmitFile(pm, os, nullptr, CodeGenFileType::ObjectFile)) {
    error = "the target cannot emit object files";
    return false;
  }
  pm.run(module);
  return true;
}

bool kiln::linkExecutable(StringRef linker, ArrayRef<std::string> objectPaths,
                          StringRef runtimeLib, StringRef outputPath,
                          bool shared, std::string &error) {
  ErrorOr<std::string> program = sys::findProgramByName(linker);
  if (!program) {
    error = ("cannot find the linker driver '" + linker + "'").str();
    return false;
  }
  // Parallel kernels run on the OpenMP runtime's thread pool (libomp).
  SmallVector<StringRef> args = {*program};
  if (shared)
    args.push_back("-shared");
  for (const std::string &o : objectPaths)
    args.push_back(o);
  if (shared) { // Keep the whole C API, which nothing in the library calls.
    args.append({"-Wl,--whole-archive", runtimeLib, "-Wl,--no-whole-archive"});
  } else {
    args.push_back(runtimeLib);
  }
  args.append({"-lm", "-l:libomp.so.5", "-pthread", "-o", outputPath});
  std::string message;
  int rc =
      sys::ExecuteAndWait(*program, args, std::nullopt, {}, 0, 0, &message);
  if (rc != 0) {
    error = "linking failed (" + *program + " exited with " +
            std::to_string(rc) + (message.empty() ? "" : ": " + message) + ")";
    return false;
  }
  return true;
}
