//===- Pipelines.cpp - Kiln's compilation pipelines -----------------------===//

#include "kiln/Pipelines/Pipelines.h"
#include "kiln/ABI/Passes.h"
#include "kiln/Codegen/Passes.h"
#include "kiln/Conversion/Passes.h"
#include "kiln/Dialect/Transformer/Transforms/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/SCF/Transforms/Passes.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

std::optional<kiln::Stage> kiln::parseStage(llvm::StringRef name) {
  return llvm::StringSwitch<std::optional<Stage>>(name)
      .Case("import", Stage::Import)
      .Case("kv-cache", Stage::KVCache)
      .Case("linalg", Stage::Linalg)
      .Case("llvm", Stage::LLVM)
      .Default(std::nullopt);
}

llvm::StringRef kiln::stageName(Stage stage) {
  switch (stage) {
  case Stage::Import:
    return "import";
  case Stage::KVCache:
    return "kv-cache";
  case Stage::Linalg:
    return "linalg";
  case Stage::LLVM:
    return "llvm";
  }
  llvm_unreachable("unknown stage");
}

void kiln::buildKVCachePipeline(OpPassManager &pm,
                                const PipelineOptions &options) {
  transformer::TransformerKVCacheOptions kv;
  kv.hoistCross = options.hoistCross;
  kv.elementType = options.kvCacheType;
  pm.addPass(transformer::createTransformerKVCache(kv));
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
}

void kiln::buildLowerToLinalgPipeline(OpPassManager &pm,
                                      const PipelineOptions &options) {
  if (options.outlineLayers != "none") {
    transformer::TransformerOutlineLayersOptions outline;
    outline.scope = options.outlineLayers;
    pm.addPass(transformer::createTransformerOutlineLayers(outline));
  }
  pm.addPass(createConvertTransformerToLinalg());
  pm.addPass(createKilnWeightBuffers());
  pm.addPass(createKilnEntryABI());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
}

void kiln::buildLowerToLLVMPipeline(OpPassManager &pm,
                                    const PipelineOptions &options) {
  KilnTargetOptions target;
  target.cpu = options.targetCPU;
  target.vectorBits = options.vectorBits;
  pm.addPass(createKilnTarget(target));
  pm.addNestedPass<func::FuncOp>(createKilnFuseResidualAdd());
  KilnKernelStrategyOptions strategy;
  strategy.activations = options.activations;
  pm.addNestedPass<func::FuncOp>(createKilnKernelStrategy(strategy));
  pm.addNestedPass<func::FuncOp>(createKilnFoldNorms());
  pm.addNestedPass<func::FuncOp>(createKilnGroupSiblings());
  pm.addNestedPass<func::FuncOp>(createKilnFuseEpilogues());
  pm.addNestedPass<func::FuncOp>(createKilnContractionKernels());
  pm.addNestedPass<func::FuncOp>(createKilnParallelizeRows());
  pm.addPass(createKilnApproximateExp());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addPass(createKilnBufferize());
  // Removes the self-copies left by in-place updates of the KV cache.
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addPass(createCanonicalizerPass());
  // After the loops that carry a buffer they only write to are folded: a
  // result returned through one is then seen to be the callee's alloc.
  pm.addPass(createKilnResultsToOutParams());
  pm.addPass(createCanonicalizerPass());
  // Static memory planning: every temporary of a fixed shape (all of them
  // in @decode, whose shapes do not depend on the context) lives on the
  // stack, so a decode step never calls malloc. Shapes that depend on the
  // prompt length (@prefill, @forward) stay on the heap.
  // The largest such temporary is a decode step's logits row (128 KiB for
  // a 32,000-token vocabulary); the limit keeps every temporary of the
  // models tested so far on the stack (the calling thread's, 8 MiB by
  // default on Linux). A larger vocabulary (Llama 3's 128 k: 512
  // KiB) would need it raised, or no-alloc.test fails.
  constexpr unsigned kMaxStackTemporary = 256 * 1024;
  bufferization::PromoteBuffersToStackPassOptions stack;
  stack.maxAllocSizeInBytes = kMaxStackTemporary;
  stack.maxRankOfAllocatedMemRef = 0;
  pm.addNestedPass<func::FuncOp>(
      bufferization::createPromoteBuffersToStackPass(stack));
  bufferization::BufferDeallocationPipelineOptions dealloc;
  bufferization::buildBufferDeallocationPipeline(pm, dealloc);
  pm.addNestedPass<func::FuncOp>(createKilnEarlyDealloc());
  pm.addNestedPass<func::FuncOp>(createConvertLinalgToLoopsPass());
  // Parallel loops run on the OpenMP runtime's thread pool, whose size the
  // runtime sets from -t.
  pm.addPass(createKilnForallToOpenMP());
  pm.addPass(createCanonicalizerPass());
  // Integer dot products (int8 activations) as x86 instructions, once no
  // pass that needs memory effects runs anymore.
  pm.addPass(createKilnLowerInt8Dot());
  ConvertVectorToLLVMPassOptions vector;
  vector.reassociateFPReductions = true;
  pm.addPass(createConvertVectorToLLVMPass(vector));
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  // Math with LLVM intrinsics first; the rest (erf, tanh) calls libm.
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createConvertMathToLibmPass());
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(createConvertToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  pm.addPass(createCanonicalizerPass());
}

void kiln::buildPipeline(OpPassManager &pm, Stage from, Stage to,
                         const PipelineOptions &options) {
  if (from < Stage::KVCache && to >= Stage::KVCache)
    buildKVCachePipeline(pm, options);
  if (from < Stage::Linalg && to >= Stage::Linalg)
    buildLowerToLinalgPipeline(pm, options);
  if (from < Stage::LLVM && to >= Stage::LLVM)
    buildLowerToLLVMPipeline(pm, options);
}

namespace {
struct KVCachePipelineOptions
    : public PassPipelineOptions<KVCachePipelineOptions> {
  Option<bool> hoistCross{
      *this, "hoist-cross",
      llvm::cl::desc("Encoder-decoder models: compute cross-attention "
                     "keys/values once in @encode (kiln-compile "
                     "--no-hoist-cross turns it off)"),
      llvm::cl::init(true)};
  Option<std::string> kvCacheType{
      *this, "kv-cache-type",
      llvm::cl::desc("Element type of the KV cache: f32, f16 or bf16 "
                     "(kiln-compile --kv-cache-type)"),
      llvm::cl::init("f32")};
};
struct LowerToLinalgPipelineOptions
    : public PassPipelineOptions<LowerToLinalgPipelineOptions> {
  Option<std::string> outlineLayers{
      *this, "outline-layers",
      llvm::cl::desc("Layer blocks compiled once and called per layer: "
                     "none, decode (fixed-size rows) or all (prompts too)"),
      llvm::cl::init("all")};
};
struct LowerToLLVMPipelineOptions
    : public PassPipelineOptions<LowerToLLVMPipelineOptions> {
  Option<std::string> targetCPU{
      *this, "target-cpu",
      llvm::cl::desc("LLVM CPU name to generate code for (host: this "
                     "machine's)"),
      llvm::cl::init("host")};
  Option<int64_t> vectorBits{
      *this, "vector-bits",
      llvm::cl::desc("Vector register width the kernels are tiled for, in "
                     "bits (0: the CPU's widest)"),
      llvm::cl::init(0)};
  Option<std::string> activations{
      *this, "activations",
      llvm::cl::desc("Products on weights with integer groups: f32 "
                     "(exact) or int8 (x quantized, integer dot products)"),
      llvm::cl::init("f32")};
};
} // namespace

void kiln::registerPipelines() {
  PassPipelineRegistration<KVCachePipelineOptions>(
      "kiln-kv-cache",
      "Import form -> prefill/decode over a KV cache (kiln-compile "
      "--stage=kv-cache)",
      [](OpPassManager &pm, const KVCachePipelineOptions &o) {
        PipelineOptions options;
        options.hoistCross = o.hoistCross;
        options.kvCacheType = o.kvCacheType;
        buildKVCachePipeline(pm, options);
      });
  PassPipelineRegistration<LowerToLinalgPipelineOptions>(
      "kiln-lower-to-linalg",
      "KV-cache form -> linalg on tensors with the runtime ABI "
      "(kiln-compile --stage=linalg)",
      [](OpPassManager &pm, const LowerToLinalgPipelineOptions &o) {
        PipelineOptions options;
        options.outlineLayers = o.outlineLayers;
        buildLowerToLinalgPipeline(pm, options);
      });
  PassPipelineRegistration<LowerToLLVMPipelineOptions>(
      "kiln-lower-to-llvm",
      "Linalg form -> the LLVM dialect (kiln-compile --stage=llvm)",
      [](OpPassManager &pm, const LowerToLLVMPipelineOptions &o) {
        PipelineOptions options;
        options.targetCPU = o.targetCPU;
        options.vectorBits = o.vectorBits;
        options.activations = o.activations;
        buildLowerToLLVMPipeline(pm, options);
      });
  PassPipelineRegistration<>(
      "kiln-compile-pipeline", "Import form -> the LLVM dialect",
      [](OpPassManager &pm) { buildPipeline(pm, Stage::Import, Stage::LLVM); });
}
