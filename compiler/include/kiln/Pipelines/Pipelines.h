//===- Pipelines.h - Kiln's compilation pipelines ---------------*- C++ -*-===//
//
// The stages of the compiler, each a pass pipeline that kiln-opt can run on
// its own (registered under the names below), so any stage's IR printed by
// `kiln-compile --emit=mlir --stage=NAME` can be continued with kiln-opt:
//
//   import    the whole-sequence form produced by the importer
//   kv-cache  kiln-kv-cache:         + prefill/decode over a KV cache
//   linalg    kiln-lower-to-linalg:  identical layer blocks outlined into
//                                    functions, linalg on tensors, entry
//                                    points with the runtime's memref ABI
//   llvm      kiln-lower-to-llvm:    target description, fusions, kernel
//                                    strategy, matrix-product kernels
//                                    (tiled, vectorized, parallel),
//                                    bufferized, loops, OpenMP, the LLVM
//                                    dialect
//
//===----------------------------------------------------------------------===//
#ifndef KILN_PIPELINES_PIPELINES_H
#define KILN_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassManager.h"
#include "llvm/ADT/StringRef.h"

#include <optional>
#include <string>

namespace kiln {

enum class Stage { Import = 0, KVCache = 1, Linalg = 2, LLVM = 3 };

/// Parses a stage name ("import", "kv-cache", "linalg", "llvm").
std::optional<Stage> parseStage(llvm::StringRef name);
llvm::StringRef stageName(Stage stage);

/// Choices kiln-compile exposes as flags.
struct PipelineOptions {
  /// Encoder-decoder models: compute cross-attention keys/values once per
  /// input in @encode (transformer-kv-cache's hoist-cross).
  bool hoistCross = true;
  /// Element type of the self-attention KV cache: "f32", "f16" or "bf16"
  /// (transformer-kv-cache's element-type).
  std::string kvCacheType = "f32";
  /// Layer blocks compiled once and called per layer
  /// (transformer-outline-layers): "none", "decode" (blocks over a fixed
  /// number of rows only) or "all" (prompts' too: as fast as inline, and
  /// compile time independent of depth).
  std::string outlineLayers = "all";
  /// The CPU to generate code for (an LLVM CPU name; "host": this
  /// machine's) and the vector width the kernels are tiled for (0: the
  /// CPU's widest): kiln-target's options.
  std::string targetCPU = "host";
  int64_t vectorBits = 0;
  /// Products on weights with integer groups: "f32" (x as computed, W
  /// dequantized exactly) or "int8" (x quantized, integer dot products):
  /// kiln-kernel-strategy's `activations`.
  std::string activations = "f32";
};

/// import -> kv-cache.
void buildKVCachePipeline(mlir::OpPassManager &pm,
                          const PipelineOptions &options = {});
/// kv-cache -> linalg.
void buildLowerToLinalgPipeline(mlir::OpPassManager &pm,
                                const PipelineOptions &options = {});
/// linalg -> llvm.
void buildLowerToLLVMPipeline(mlir::OpPassManager &pm,
                              const PipelineOptions &options = {});
/// Appends the pipelines that take a module from stage `from` to `to`.
void buildPipeline(mlir::OpPassManager &pm, Stage from, Stage to,
                   const PipelineOptions &options = {});

/// Registers kiln-kv-cache, kiln-lower-to-linalg, kiln-lower-to-llvm and
/// kiln-compile-pipeline (import -> llvm).
void registerPipelines();

} // namespace kiln

#endif // KILN_PIPELINES_PIPELINES_H
