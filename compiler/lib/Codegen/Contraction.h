//===- Contraction.h - Matching Kiln's contractions in linalg ---*- C++ -*-===//
//
// The `linear` form the codegen passes look for after
// convert-transformer-to-linalg, and small predicates they share.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_CODEGEN_CONTRACTION_H
#define KILN_CODEGEN_CONTRACTION_H

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "llvm/ADT/DenseMap.h"

#include <optional>

namespace kiln {

/// A `linear`-form contraction: out[m..., n] = init[m..., n] +
/// sum_k x[m..., k] * w[n, k].
/// Operands are read from the op when needed: rewriting one contraction
/// replaces values that others use (a residual stream as init).
struct Linear {
  mlir::linalg::GenericOp op;
  int64_t n, k;
  mlir::Value x() const { return op->getOperand(0); }
  mlir::Value w() const { return op->getOperand(1); }
  mlir::Value init() const { return op->getOperand(2); }
};

/// The op as a Linear (f32, static W [N, K]), or nothing.
std::optional<Linear> matchLinear(mlir::linalg::GenericOp op);

/// Whether `v` is a `linalg.fill` of +0.0.
bool isZeroFill(mlir::Value v);

/// An elementwise generic on tensors of two inputs of its result's shape.
bool isElementwiseBinary(mlir::linalg::GenericOp op);

/// A product's `x` computed as `h * (a function of per-row values) * g[k]`
/// by an elementwise generic (RMSNorm: `h * rsqrt(mean(h^2) + eps) * g`):
/// the kernel reads `h` instead, multiplies by `g` along k (the dot tiles'
/// loads of x, the packed weights) and by the row's scale in the tile's
/// epilogue, so the normalised activation is never written. The per-row
/// values (the norm's sum of squares) are computed before, as they were.
struct ScaledInput {
  mlir::linalg::GenericOp op;
  /// Operand numbers of the input in x's shape, of the [K] input (none:
  /// -1), and of the inputs indexed by the rows alone (x's leading dims, in
  /// order). Operands, not values: rewriting other products replaces them.
  int h = -1, g = -1;
  llvm::SmallVector<unsigned> rowInputs;
  /// Factors of the yielded product that depend on row inputs only.
  llvm::SmallVector<mlir::Value> rowFactors;
};

/// `x` as a ScaledInput when its producer has that form.
std::optional<ScaledInput> matchScaledInput(mlir::Value x);

/// The smallest G dividing `n` such that, at every column c of a row, the
/// elementwise generic `r` reads its input `p` ([..., rows, n]) at other
/// columns (`tensor.extract`), and only at columns of c's aligned group of
/// G in the same row; nothing when it reads no other column or the reads
/// cannot be evaluated.
std::optional<int64_t> readColumnGroup(mlir::linalg::GenericOp r, mlir::Value p,
                                       int64_t n);

/// Why elementwise generic `op` cannot be the epilogue that one kernel
/// over products `a` and `b` applies (the gated activation), or nothing
/// when it can: its inputs are their two results, each used by it alone,
/// its body reads neither its init nor its indices, and both products read
/// the same x into the same shape in its block.
std::optional<llvm::StringRef> pairEpilogueMismatch(mlir::linalg::GenericOp op,
                                                    const Linear &a,
                                                    const Linear &b);

/// Why generic `r` cannot be applied by the kernel of the product that
/// computes its one input to each block it computes (RoPE), or nothing
/// when it can: elementwise over that input alone (identity maps), used by
/// nothing else, of one row index (leading dims of 1), with no regions in
/// its body. Which columns it reads is readColumnGroup's.
std::optional<llvm::StringRef>
columnEpilogueMismatch(mlir::linalg::GenericOp r);

/// Whether `v` is defined before `at` (or in a region around it).
bool availableAt(mlir::Value v, mlir::Operation *at);

/// Whether everything elementwise generic `r` reads besides its input (its
/// init, the tables and constants its body captures) is available at `at`.
bool operandsAvailableAt(mlir::linalg::GenericOp r, mlir::Operation *at);

/// The first op of `block` (or the op around it in `block`) that uses a
/// result of one of `ops`; null when none does.
mlir::Operation *firstUseIn(mlir::Block *block,
                            llvm::ArrayRef<mlir::Operation *> ops);

/// Splits contractions (anything with an `op` member) into the kernels
/// kiln-group-siblings decided: those with the same group number
/// (kGroupAttr) in the same block form one kernel, in program order; every
/// other one is a kernel alone. Groups come in the order of their first
/// member in `cs`.
template <typename C>
llvm::SmallVector<llvm::SmallVector<C>> splitIntoGroups(llvm::ArrayRef<C> cs,
                                                        llvm::StringRef attr) {
  llvm::SmallVector<llvm::SmallVector<C>> groups;
  llvm::DenseMap<std::pair<mlir::Block *, int64_t>, size_t> index;
  for (const C &c : cs) {
    auto id = c.op->template getAttrOfType<mlir::IntegerAttr>(attr);
    if (!id) {
      groups.push_back({c});
      continue;
    }
    auto [it, inserted] = index.try_emplace(
        std::make_pair(c.op->getBlock(), id.getInt()), groups.size());
    if (inserted)
      groups.emplace_back();
    groups[it->second].push_back(c);
  }
  for (auto &g : groups)
    llvm::sort(
        g, [](const C &a, const C &b) { return a.op->isBeforeInBlock(b.op); });
  return groups;
}

/// Values of x per scale in a prompt's integer GEMM: a Q8_0 block, as
/// llama.cpp quantizes activations. (A scale per 4 values, as in decode,
/// would cost a conversion and a scaled FMA per integer dot product, no
/// fewer instructions than f32 FMAs; per 32, eight dot products accumulate
/// in i32 first.)
inline constexpr int64_t kPromptActivationGroup = 32;

/// A contraction's kernel configuration: what kiln-kernel-strategy chooses
/// and records on the op (kKernelAttr), and all kiln-contraction-kernels
/// reads to emit the kernel.
struct KernelConfig {
  /// Decode: matrix-vector products over a fixed batch of rows; Prompt: a
  /// prompt's rows (a dynamic count).
  enum class Role { Decode, Prompt };
  Role role = Role::Prompt;
  /// f32 lanes of a vector register.
  int64_t vectorLanes = 4;
  /// Output columns (rows of W) per parallel task.
  int64_t blockCols = 4;
  /// Rows of x per dot-product register tile (by 4 rows of W).
  int64_t dotRows = 2;
  /// Whether W's blocks may be packed for outer-product tiles, from how
  /// many rows of x, and the rows of an outer-product tile (by two vectors
  /// of columns).
  bool packed = false;
  int64_t packMinRows = 16;
  int64_t outerRows = 6;
  /// Whether the kernel quantizes x to 8-bit integers and takes integer dot
  /// products with W's stored integers (`activations = "i8"`), instead of
  /// reading x as f32 and W dequantized exactly (the default): in decode,
  /// the matrix-vector products, with one scale per 4 values of x; in
  /// prompts, the packed outer-product tiles (an integer GEMM on W's
  /// integers packed as bytes), with one scale per kPromptActivationGroup
  /// values.
  bool int8Activations = false;

  bool isDecode() const { return role == Role::Decode; }
  mlir::DictionaryAttr toAttr(mlir::MLIRContext *context) const;
  /// Reads the dictionary toAttr writes; nothing when `attr` is not one.
  static std::optional<KernelConfig> fromAttr(mlir::Attribute attr);
};

/// A contraction and the configuration kiln-kernel-strategy recorded on it.
struct ConfiguredLinear : Linear {
  KernelConfig config;
};

/// The contractions under `root` that carry a kernel configuration
/// (kKernelAttr), in program order; failure (reported on the op) when one
/// is malformed.
mlir::FailureOr<llvm::SmallVector<ConfiguredLinear>>
configuredLinears(mlir::Operation *root);

} // namespace kiln

#endif // KILN_CODEGEN_CONTRACTION_H
