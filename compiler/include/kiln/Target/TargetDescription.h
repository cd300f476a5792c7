//===- TargetDescription.h - The CPU Kiln generates code for ----*- C++ -*-===//
//
// One description of the target CPU, read by every decision that depends on
// it: the kernel strategy (vector width, cache sizes, instruction-set
// features) and object emission (LLVM's CPU name and features, the vector
// width LLVM may use). `kiln-compile --target-cpu` and `--vector-bits`
// override the host's; `kiln-target` records the description on the module
// as the `kiln.target` attribute, where the passes and the emitter read it.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_TARGET_TARGETDESCRIPTION_H
#define KILN_TARGET_TARGETDESCRIPTION_H

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>

namespace kiln {

/// Module attribute holding the target description (a dictionary, see
/// TargetDescription::toAttr).
inline constexpr llvm::StringLiteral kTargetAttr = "kiln.target";

struct TargetDescription {
  /// LLVM target triple and CPU name (e.g. "znver4", "haswell").
  std::string triple;
  std::string cpu;
  /// Whether `cpu` is this machine's: object emission then enables exactly
  /// the features the host reports (a VM may hide some its CPU model has).
  bool isHost = false;
  /// Width of the vector registers the kernels are tiled for, in bits
  /// (128, 256 or 512): the widest the CPU has unless overridden.
  int64_t vectorBits = 128;
  /// Data cache sizes in bytes (0: unknown).
  int64_t l1dBytes = 0, l2Bytes = 0, l3Bytes = 0;
  /// Instruction-set features the kernels may choose by (`avx`: the
  /// 256-bit float shuffles and blends of the packing's 8 x 8 transpose).
  bool avx = false, fma = false, f16c = false, avx512vnni = false,
       avx512bf16 = false;

  /// f32 lanes of one vector register.
  int64_t vectorLanes() const { return vectorBits / 32; }

  /// The dictionary stored under kTargetAttr.
  mlir::DictionaryAttr toAttr(mlir::MLIRContext *context) const;
  /// Reads a dictionary written by toAttr; an error names what is missing.
  static llvm::Expected<TargetDescription> fromAttr(mlir::DictionaryAttr attr);
};

/// Describes `cpu` ("" or "host": this machine; else an LLVM CPU name such
/// as "znver4", "skylake-avx512" or "haswell"), with the kernels' vector
/// width overridden by `vectorBits` when it is not 0. Fails on an unknown
/// CPU name or a vector width the CPU does not have.
llvm::Expected<TargetDescription> describeTarget(llvm::StringRef cpu = "",
                                                 int64_t vectorBits = 0);

/// The description recorded on `module` (kTargetAttr), else the host's.
llvm::Expected<TargetDescription> targetOf(mlir::ModuleOp module);

} // namespace kiln

#endif // KILN_TARGET_TARGETDESCRIPTION_H
