//===- Passes.td - Kiln conversion passes ------------------*- tablegen -*-===//
#ifndef KILN_CONVERSION_PASSES
#define KILN_CONVERSION_PASSES

include "mlir/Pass/PassBase.td"

def ConvertTransformerToLinalg
    : Pass<"convert-transformer-to-linalg", "mlir::ModuleOp"> {
  let summary = "Lower the transformer dialect to linalg, tensor, arith and math";
  let description = [{
    Every transformer op becomes `linalg.generic` ops (and tensor reshapes,
    slices) on tensors: matrix products with the weight's `[out, in]`
    layout, two-pass norms, RoPE reading one cos/sin table per op, and the
    KV cache as a dense
    `[layers, 2, batch, capacity, kv_width]` tensor updated with
    `tensor.insert_slice`. `transformer.weight` ops read the runtime's weight
    buffer: functions that use weights get two leading arguments, the model
    file as `memref<?xi8>` and the byte offsets of each weight as
    `memref<?xindex>`, and each weight becomes a `memref.view` of it.
    Attention is the exception: one fused kernel per op (`scf.forall` over
    batch, head and query rows; keys in blocks of 16 with an online softmax,
    vectors of head_dim lanes; a GQA group per iteration when there are at
    least 4 kv heads), which never builds the score matrix.
  }];
  let dependentDialects = [
    "::mlir::linalg::LinalgDialect", "::mlir::tensor::TensorDialect",
    "::mlir::arith::ArithDialect", "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect", "::mlir::scf::SCFDialect",
    "::mlir::bufferization::BufferizationDialect", "::mlir::func::FuncDialect",
    "::mlir::vector::VectorDialect"
  ];
}

def KilnEntryABI : Pass<"kiln-entry-abi", "mlir::ModuleOp"> {
  let summary = "Give entry points the runtime's C ABI";
  let description = [{
    Rewrites every function marked `transformer.entry` into
    destination-passing style over memrefs, as `kiln_runtime.h` declares:
    tensor arguments become memrefs read through `bufferization.to_tensor`,
    results become trailing output memrefs written with
    `bufferization.materialize_in_destination` (a result tied to an argument,
    the KV cache, is written back into that argument's buffer), and the
    function gets `llvm.emit_c_interface`. Also emits the `kiln_model`
    record (ABI version, weight count, cache shape, vocabulary, model path).
  }];
  let dependentDialects = [
    "::mlir::memref::MemRefDialect",
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::LLVM::LLVMDialect", "::mlir::func::FuncDialect"
  ];
}

def KilnBufferize : Pass<"kiln-bufferize", "mlir::ModuleOp"> {
  let summary = "One-shot bufferization with Kiln's options";
  let description = [{
    Bufferizes the whole module in place where the analysis allows:
    `tensor.empty` ops shared by several users (after CSE) are first
    duplicated per user, so that each destination can be eliminated
    independently (results written straight into the KV cache or the output
    buffer) instead of forcing copies; then empty tensors are eliminated and
    One-Shot Bufferize runs over function boundaries with identity layouts.
    The copies that remain are `linalg.copy` ops, which lower to loops for
    any layout (no dependence on MLIR's C runner utilities).
  }];
  let dependentDialects = [
    "::mlir::memref::MemRefDialect", "::mlir::linalg::LinalgDialect",
    "::mlir::bufferization::BufferizationDialect"
  ];
}

def KilnContractionKernels
    : Pass<"kiln-contraction-kernels", "mlir::func::FuncOp"> {
  let summary = "Tiled, vectorized, multithreaded kernels for matrix products";
  let description = [{
    Rewrites every `linalg.generic` of the `linear` form
    `y[..., n] = init[..., n] + sum_k x[..., k] * W[n, k]` (f32, static `N`
    and `K`; the leading dimensions may be dynamic) into a kernel on tensors:

    * fusion first: an elementwise add of such a product (initialised with
      zeros, used only by the add) and another tensor `r` becomes the
      product initialised with `r` (the residual add; bitwise the same), and
      products that read the same `x` with the same `K` in one block (q/k/v,
      gate/up), none of whose results is used before the last of them, become
      one kernel: its tasks cover the column blocks of all of them, each
      picking its member's weights (`scf.index_switch` over views, no copy),
      and the results are column slices of one `[M, sum N]` output; for one
      row of `x` (decode), an elementwise generic over exactly two such
      siblings (the gated activation) becomes one kernel whose tasks compute
      the same columns of both into task-local tiles and apply it;
    * norms folded into the products that read them (prompts): when `x` is
      an elementwise generic `h * f(per-row values) * g[k]` (RMSNorm) used
      only by products, the kernels read `h`, multiply by `g` along k (x's
      vectors in the dot tiles, the weights as they are packed) and scale
      each row's sums by `f`, computed once per row; the normalised `x` is
      never written. In decode (one row) the norm stays a loop of a few
      hundred elements: scaling `x` again for every row of `W` measured
      slower;
    * RoPE as the epilogue of its projection in decode: a product of one
      row whose only consumer is a generic marked `kiln.column_group = G`
      (RoPE, reading its input only within heads of G columns) gets blocks
      of whole heads; each task computes its block into a task-local tile
      and writes it rotated (the generic's body, columns offset by the
      block's start), members without RoPE (v) copied. The kernel then goes
      before the first use of any member's result, after the cos/sin
      tables. Prompts keep RoPE as a parallel loop (the epilogue's local
      tiles measured 3-5% slower on a 128-token prefill);
    * `scf.forall` over blocks of at most `block-cols` output columns (rows
      of `W`), fewer when `block-cols` rows would exceed 256 KiB (the block
      stays in L2), 16 for matrix-vector products (one row of `x`: decode)
      so that every thread gets an even share; `kiln-lower-to-llvm`
      distributes the blocks over the runtime's thread pool;
    * products with 16 rows or more (prompts; the row count may be dynamic,
      both paths are then emitted with bounds chosen at run time) pack the
      block's weights transposed into a `[K, block]` buffer (8 x 8 register
      transposes of 24 shuffles, one pass) and run outer-product tiles on
      it: 6 rows by two vectors of columns (12 rows with 512-bit vectors),
      broadcasting one element of `x` per row and k step, no horizontal
      sums; then tiles of 2 rows and 1 for the rows left over;
    * otherwise, and for columns left over, dot-product tiles on `W` as
      stored: 4 rows of `x` by 4 rows of `W` with 512-bit vectors (AVX-512
      has 32 registers), 2 by 4 below, one row by one column with two
      accumulators for the rows left over and for matrix-vector products
      (one stream through `W`);
    * `k` in steps of the host's vector width (`vector-bits`), reading both
      operands contiguously; a static tail of whole vectors, then a short one
      widened with zeros, when `K` is not a multiple of it;
    * every kernel writes a fresh output, each element once: zero-initialised
      products without a fill, a product's init (a residual stream, a bias)
      read where its sums are written rather than overwritten in place.

    Every other `linalg.generic` with a dynamic parallel dimension (the
    prompt length: norm reductions, activations, RoPE, gathers in
    `@prefill` and `@forward`) is tiled into an `scf.forall` over blocks of 8
    along it, so no prompt-sized step runs on one thread; fixed shapes (one
    token in `@decode`) stay sequential.

    Every output element is computed by the same instruction sequence
    whatever the number of threads, so results do not depend on `-t`.
  }];
  let options = [
    Option<"vectorBits", "vector-bits", "int64_t", "0",
           "Vector register width of the target in bits (128, 256, 512; "
           "0: the host CPU's)">,
    Option<"blockCols", "block-cols", "int64_t", "64",
           "Output columns per parallel task">
  ];
  let dependentDialects = [
    "::mlir::scf::SCFDialect", "::mlir::vector::VectorDialect",
    "::mlir::tensor::TensorDialect", "::mlir::arith::ArithDialect",
    "::mlir::affine::AffineDialect"
  ];
}

def KilnForallToOpenMP : Pass<"kiln-forall-to-openmp", "mlir::ModuleOp"> {
  let summary = "Run scf.forall loops on the OpenMP runtime's thread pool";
  let description = [{
    After bufferization, every `scf.forall` becomes an `omp.parallel`
    region: thread `omp_get_thread_num()` of `omp_get_num_threads()` runs
    the contiguous share `[tid * chunk, min((tid + 1) * chunk, total))` of
    the flattened iteration space (`chunk = ceil(total / threads)`), each
    iteration in a `memref.alloca_scope`. Fixed-size stack buffers of the
    body (promoted temporaries, packed weight blocks) are allocated once per
    thread before its share and reused by each of its iterations. The pool's size is the runtime's
    choice (`-t`). Unlike `omp.wsloop`, whose runtime entry allocates on the
    heap in Debian's libomp, this calls nothing but the two queries.
  }];
  let dependentDialects = [
    "::mlir::omp::OpenMPDialect", "::mlir::scf::SCFDialect",
    "::mlir::memref::MemRefDialect", "::mlir::func::FuncDialect",
    "::mlir::arith::ArithDialect"
  ];
}

def KilnApproximateExp : Pass<"kiln-approximate-exp"> {
  let summary = "f32 exp as a vectorizable polynomial";
  let description = [{
    Rewrites f32 `math.exp` (scalar or vector) into MLIR's polynomial
    approximation (range reduction to [-ln 2 / 2, ln 2 / 2], a polynomial,
    then scaling by 2^k through the exponent bits): arithmetic the
    backend vectorizes, where libm's expf is a call per element. Attention's
    softmax and SiLU/SwiGLU run on it.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::math::MathDialect",
    "::mlir::vector::VectorDialect"
  ];
}

def KilnEarlyDealloc : Pass<"kiln-early-dealloc", "mlir::func::FuncOp"> {
  let summary = "Free each temporary right after its last use";
  let description = [{
    Runs after MLIR's buffer deallocation pipeline, which places every
    `memref.dealloc` at the end of the block that allocated the buffer (in
    a model's `@prefill`: every temporary of every layer alive until the
    function returns). Each dealloc of a `memref.alloc` in the same block
    moves to just after the last operation of the block that uses the
    buffer or a view of it (uses in nested regions count for the op that
    holds them), so peak memory is that of one layer, not of all.
  }];
  let dependentDialects = ["::mlir::memref::MemRefDialect"];
}

#endif // KILN_CONVERSION_PASSES
