//===- Passes.td - Kiln CPU codegen passes -----------------*- tablegen -*-===//
//
// The passes from linalg on tensors to code for the CPU, in alphabetical
// order. Their order in the pipeline (kiln-lower-to-llvm): kiln-target,
// kiln-fuse-residual-add, kiln-kernel-strategy, kiln-fold-norms,
// kiln-group-siblings, kiln-fuse-epilogues, kiln-contraction-kernels,
// kiln-parallelize-rows, kiln-approximate-exp, kiln-bufferize,
// (canonicalize) kiln-results-to-out-params, (buffer deallocation)
// kiln-early-dealloc, kiln-forall-to-openmp.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_CODEGEN_PASSES
#define KILN_CODEGEN_PASSES

include "mlir/Pass/PassBase.td"

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
  let summary = "Emit the kernel each contraction's kiln.kernel strategy names";
  let description = [{
    Rewrites every `linalg.generic` of the `linear` form
    `y[..., n] = init[..., n] + sum_k x[..., k] * W[n, k]` that carries a
    `kiln.kernel` strategy (written by `kiln-kernel-strategy`) into a kernel
    on tensors, reading its configuration only from that attribute: the
    role, the output columns per parallel task (`block_cols`), the vector
    length in f32 lanes (`vector_lanes`), the rows of the dot-product tile
    (`dot_rows`), and whether and from how many rows of `x` the packed
    outer-product path is taken (`packed`, `pack_min_rows`, `outer_rows`).
    Contractions without the attribute are left alone.

    ```mlir
    // Before (strategy recorded by kiln-kernel-strategy):
    %y = linalg.generic {..., kiln.kernel = {block_cols = 16 : i64,
        dot_rows = 4 : i64, outer_rows = 12 : i64, pack_min_rows = 16 : i64,
        packed = false, role = "decode", vector_lanes = 16 : i64}}
        ins(%x, %w : tensor<1x1x768xf32>, tensor<768x768xf32>) ...
    // After: one parallel task per 16 columns of W, dot products of
    // 16-lane vectors, written once into a fresh output.
    %r = scf.forall (%b) in (48) shared_outs(%o = %empty) -> (tensor<1x768xf32>) {
      %ws = tensor.extract_slice %w[%n0, 0] [16, 768] [1, 1]
      ... scf.for ... vector.fma ... vector.reduction <add> ...
    }
    ```

    The fusions decided before it, each recorded as an attribute it only
    reads (a marked op it cannot emit as marked is an error):

    * `kiln.group = N` (kiln-group-siblings): the products of one group are
      one kernel: its tasks cover the column blocks of all of them, each
      picking its member's weights (`scf.index_switch` over views, no
      copy), and the results are column slices of one `[M, sum N]` output;
    * `kiln.fold_into_products` (kiln-fold-norms) on a norm
      `h * f(per-row values) * g[k]`: the kernels reading it read `h`,
      multiply by `g` along k (x's vectors in the dot tiles, the weights as
      they are packed) and scale each row's sums by `f`, computed once per
      row; the normalised `x` is never written;
    * `kiln.epilogue = G` (kiln-fuse-epilogues): on an elementwise generic
      over two products (G = 1), one kernel whose tasks compute the same
      columns of both into task-local tiles and apply it; on a generic over
      one product (RoPE), the group's kernel goes before the first use of
      any member's result, its blocks are whole groups of G columns, and
      each task computes its block into a task-local tile and writes it
      through the generic (members without one, v, are copied).

    The kernels themselves:

    * `scf.forall` over blocks of `block_cols` output columns (rows of `W`);
      `kiln-forall-to-openmp` distributes them over the thread pool;
    * with `packed`, products of at least `pack_min_rows` rows (the row
      count may be dynamic: both paths are then emitted with bounds chosen
      at run time) pack the block's weights transposed into a `[K, block]`
      buffer (8 x 8 register transposes, upstream x86vector's AVX network
      of shuffles, blends and lane permutes; one pass) and run
      outer-product tiles on it: `outer_rows` rows by two vectors of
      columns, broadcasting one element of `x` per row and k step, no
      horizontal sums; then the rows left over with dot products;
    * otherwise, and for columns left over, dot-product tiles on `W` as
      stored: `dot_rows` rows of `x` by 4 rows of `W`, one row by one
      column with two accumulators for the rows left over and for
      matrix-vector products (one stream through `W`);
    * `k` in steps of `vector_lanes`, reading both operands contiguously; a
      static tail of whole vectors, then a short one widened with zeros;
    * a weight kept as stored (a `#transformer.encoding` weight, read
      through a `kiln.dequantize` generic) is read as its bytes and
      dequantized in registers, lane for lane equal to the scalar
      definition: the packing and the prompt tiles step by one 32-value
      group (one scale), matrix-vector products by one whole block (256
      values for the k-quants), so that where each vector lies in its block
      is a constant and a block's sub-block scales are unpacked once, by
      vector operations;
    * with `activations = "i8"`, a matrix-vector product on a weight with
      integer groups (q4_0, q4_1, q5_0, q5_1, q8_0, q4_k, q5_k, q6_k)
      quantizes `x` once, before the parallel loop:
      8-bit integers with one scale per 4 values, each scale times the sum
      of its 4 integers, and those summed per 32 values. Each row of `W`
      then takes two 32-value groups per step of an integer dot product
      into 16 lanes of i32 (a `vector.contract` of `W`'s unsigned bytes
      `arith.extui`'d and `x`'s `arith.extsi`'d, marked
      `kiln.lhs_below_128` for the 4- and 6-bit types, for
      `kiln-lower-int8-dot`), scaled by the groups' `d` times the lanes'
      scales into one of two f32 accumulators; steps cover whole blocks and
      at least 128 values. The weights' offsets (`value = d q - m`) are
      subtracted apart: for q4_0, q6_k and q8_0, whose `m` is 8, 32 or 128
      times `d` (q8_0's signed integers are offset by 128, their sign bits
      flipped), as a sum of `d` times the lanes' scaled sums multiplied
      once at the end; for q4_k once per block, its 8 sub-blocks' `dmin m`
      times `x`'s 8 group sums;
    * with `activations = "i8"` on a prompt product (the integer GEMM),
      `x` (times a folded norm's gain) is quantized once per product as
      16-bit integers, one scale per 32 values (`v = x / u`, u = max|x| /
      32512), written as two signed bytes (q1 = (v + 128) >> 8, q2 = v -
      256 q1, their quads interleaved), with `x`'s sum per 16 values. Each
      task packs its block's integers (kiln::integerGroup, 8 rows of `W` at
      a time, their 4-byte quads transposed) into a `[K / 4, block]` i32
      panel and their scales into a `[K / sg, block]` f32 panel (sg = 16
      for q6_k, else 32; q4_k's offsets `m` into a third). Tiles of
      `outer_rows` rows by two vectors of columns keep an i32 accumulator
      for each of q1 and q2 and an f32 one: per 4 values, the panel's two
      vectors times each row's broadcast quads (i8 contractions, as above);
      per group of sg values, `256 A1 + A2` (exact in i32), converted,
      times `u`, minus the weights' zero point times `x`'s sum, times the
      columns' `d` (q4_k: minus `m` times `x`'s sum). Rows and columns left
      over take the f32 dot-product tiles;
    * every kernel writes a fresh output, each element once: zero-initialised
      products without a fill, a product's init (a residual stream, a bias)
      read where its sums are written rather than overwritten in place.

    Every output element is computed by the same instruction sequence
    whatever the number of threads, so results do not depend on `-t`.
  }];
  let dependentDialects = [
    "::mlir::scf::SCFDialect", "::mlir::vector::VectorDialect",
    "::mlir::tensor::TensorDialect", "::mlir::arith::ArithDialect",
    "::mlir::affine::AffineDialect", "::mlir::math::MathDialect",
    "::mlir::LLVM::LLVMDialect"
  ];
}

def KilnLowerInt8Dot : Pass<"kiln-lower-int8-dot", "mlir::ModuleOp"> {
  let summary = "8-bit integer dot products as vpdpbusd or vpmaddubsw";
  let description = [{
    Rewrites the integer dot products that `kiln-contraction-kernels`
    emits for int8 activations: a `vector.contract` into `vector<Nxi32>`,
    N = 8 or 16, of `arith.extui` of a `vector<Nx4xi8>` (W's unsigned
    bytes) and `arith.extsi` of a `vector<Nx4xi8>` (x's signed bytes); lane
    i adds the 4 products of row i. With AVX-512 VNNI in the module's
    `kiln.target` it becomes `vpdpbusd` (unsigned lhs bytes times signed
    rhs bytes, added to the acc lanes): `llvm.x86.avx512.vpdpbusd.512` for
    16 lanes on a 512-bit target, else `.256` per 8 lanes. Without VNNI,
    a contraction marked `kiln.lhs_below_128` (every lhs byte below 128:
    the 4- and 6-bit weights) becomes AVX2's `vpmaddubsw` (pairs into i16:
    at most 2 * 127 * 128, no saturation) then `vpmaddwd` by ones, added to
    the acc, per 8 lanes; an unmarked one (q8_0's bytes reach 255, whose
    pairs could saturate) is left to the upstream lowering, as is any
    other contraction. The halves of a 16-lane product are concatenated
    (`vector.shuffle`). Runs after bufferization (the intrinsic calls carry
    no memory-effect information).

    ```mlir
    // Before:
    %ql = arith.extui %q : vector<8x4xi8> to vector<8x4xi32>
    %xl = arith.extsi %x : vector<8x4xi8> to vector<8x4xi32>
    %d = vector.contract {indexing_maps = [(i, k) -> (i, k), (i, k) -> (i, k),
        (i, k) -> (i)], iterator_types = ["parallel", "reduction"],
        kind = #vector.kind<add>} %ql, %xl, %acc {kiln.lhs_below_128}
        : vector<8x4xi32>, vector<8x4xi32> into vector<8xi32>
    // After (AVX-512 VNNI):
    %q32 = vector.shape_cast %q : vector<8x4xi8> to vector<32xi8>
    %x32 = vector.shape_cast %x : vector<8x4xi8> to vector<32xi8>
    %d = llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.256"(%acc, %q32, %x32)
        : (vector<8xi32>, vector<32xi8>, vector<32xi8>) -> vector<8xi32>
    ```
  }];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect",
                           "::mlir::vector::VectorDialect",
                           "::mlir::arith::ArithDialect"];
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

def KilnFoldNorms : Pass<"kiln-fold-norms", "mlir::func::FuncOp"> {
  let summary = "Decide which norms the prompt kernels compute on the fly";
  let description = [{
    Marks `kiln.fold_into_products` an elementwise generic of the form
    `h * f(per-row values) * g[k]` (RMSNorm: `h * rsqrt(mean(h^2) + eps) *
    g`) when every user is a configured product (`kiln.kernel`) and one of
    them a prompt's. `kiln-contraction-kernels` then reads `h`, multiplies
    by `g` along k and scales each row's sums by `f`: the normalised
    activation is never written. Decode keeps the norm: it is a loop of a
    few hundred elements, and scaling `x` again for every row of `W`
    measured slower.

    ```mlir
    // Before:
    %x = linalg.generic ... ins(%h, %rs, %g : tensor<1x?x64xf32>,
        tensor<1x?xf32>, tensor<64xf32>) { h * rs * g }
    %q = linalg.generic {..., kiln.kernel = {role = "prompt", ...}}
        ins(%x, %wq ...)
    // After: the same, with the norm marked.
    %x = linalg.generic {..., kiln.fold_into_products} ...
    ```
  }];
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
    thread before its share and reused by each of its iterations. The
    pool's size is the runtime's choice (`-t`). Unlike `omp.wsloop`, whose runtime entry allocates on the
    heap in Debian's libomp, this calls nothing but the two queries.
  }];
  let dependentDialects = [
    "::mlir::omp::OpenMPDialect", "::mlir::scf::SCFDialect",
    "::mlir::memref::MemRefDialect", "::mlir::func::FuncDialect",
    "::mlir::arith::ArithDialect"
  ];
}

def KilnFuseEpilogues : Pass<"kiln-fuse-epilogues", "mlir::func::FuncOp"> {
  let summary = "Decide which generics the decode kernels apply to their blocks";
  let description = [{
    Marks `kiln.epilogue = G` the generics over decode products' results
    that the products' kernel applies to each block of columns it
    computes, so that the products' results are never written:

    * an elementwise generic over the two results of a `kiln.group` of
      exactly two matrix-vector products, each used by it alone (the gated
      activation `act(x Wg^T) * (x Wu^T)`): G = 1;
    * a generic whose only input is a product's result and that reads it,
      besides its own element, at other columns of the same row
      (`tensor.extract`: RoPE's partner column), when the group's kernel
      can go before the first use of any member's result with everything
      the generic reads available there. G is found from the IR: the index
      arithmetic of each read is evaluated at every column, and G is the
      smallest divisor of the row's width whose aligned groups of columns
      contain every read (a head for RoPE's halves, 2 for interleaved
      pairs); reads that span the whole row of a product that is a kernel
      of its own leave it alone (the kernel would be one task).

    Prompts keep both as parallel loops of their own: two packed weight
    blocks per task measured 7% slower on a 128-token prefill than one
    kernel over both products followed by a parallel activation, and RoPE
    as an epilogue 3-5% slower (each task's extra local tile, then
    zero-filled, and the copy for v). Generics that read only their own
    element (an activation over one product) are left alone.

    ```mlir
    // Before: RoPE over q ([1, 1, 8], heads of 4 columns, halves rotated).
    %rq = linalg.generic ... ins(%q : tensor<1x1x8xf32>) {
      ... %p = select %first, %c + 2, %c - 2 ...
      %o = tensor.extract %q[%b, %s, %p] ... }
    // After:
    %rq = linalg.generic {..., kiln.epilogue = 4 : i64} ...
    ```
  }];
}

def KilnFuseResidualAdd
    : Pass<"kiln-fuse-residual-add", "mlir::func::FuncOp"> {
  let summary = "Make a residual add the init of the product it adds";
  let description = [{
    An elementwise `linalg.generic` adding the result of a `linear`-form
    contraction (initialised with zeros, used by the add alone) to a tensor
    `r` defined before the contraction becomes that contraction initialised
    with `r`: `y = r + x W^T` in one kernel, bitwise the same (0 + s = s;
    r + s is computed once either way).

    ```mlir
    // Before:
    %p = linalg.generic {<linear>} ins(%x, %w) outs(%zeros) -> tensor<1x?x64xf32>
    %y = linalg.generic {<elementwise>} ins(%r, %p) outs(%e) {
      ^bb0(%a: f32, %b: f32, %c: f32):
        %s = arith.addf %a, %b : f32
        linalg.yield %s : f32
    } -> tensor<1x?x64xf32>
    // After:
    %y = linalg.generic {<linear>} ins(%x, %w) outs(%r) -> tensor<1x?x64xf32>
    ```
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect"];
}

def KilnGroupSiblings : Pass<"kiln-group-siblings", "mlir::func::FuncOp"> {
  let summary = "Decide which sibling products one kernel computes";
  let description = [{
    Gives configured products (`kiln.kernel`) that read the same `x` with
    the same K and the same weight encoding in one block, none of whose
    results is used before the last of them (the kernel takes the last
    one's place), the same `kiln.group` number: q/k/v and gate/up become one
    parallel loop over the column blocks of all of them in
    `kiln-contraction-kernels`, one pass of the thread pool instead of
    three or two.

    ```mlir
    // Before:
    %q = linalg.generic {..., kiln.kernel = {...}} ins(%x, %wq ...)
    %k = linalg.generic {..., kiln.kernel = {...}} ins(%x, %wk ...)
    // After:
    %q = linalg.generic {..., kiln.group = 0 : i64, kiln.kernel = {...}} ...
    %k = linalg.generic {..., kiln.group = 0 : i64, kiln.kernel = {...}} ...
    ```
  }];
}

def KilnKernelStrategy
    : Pass<"kiln-kernel-strategy", "mlir::func::FuncOp"> {
  let summary = "Record each contraction's kernel configuration";
  let description = [{
    Chooses, for every `linear`-form `linalg.generic` (f32,
    `y = init + x W^T`, static `W`), the configuration of its kernel and
    records it as the `kiln.kernel` dictionary on the op, where
    `kiln-contraction-kernels` reads it (and where a test or a person can
    change it by hand). It reads the module's `kiln.target` (written by
    `kiln-target`) and the role of the enclosing entry point
    (`transformer.entry`):

    * `role`: "decode" for matrix-vector products (x is one row of a static
      shape: a decode step, or the last position's logits in `@prefill`) and
      for every product of a `decode` entry point (a fixed batch of rows);
      "prompt" for the other products of `prefill`, `forward` and `encode`;
      in a function that is not an entry point, "decode" when x has a static
      shape;
    * `vector_lanes`: f32 lanes of the target's vector registers;
    * `block_cols`: output columns per parallel task: at most `block-cols`,
      and at most as many rows of `W` as fit in a quarter of the target's L2
      (a task's weight block is streamed once per tile of x rows and must
      stay in L2; the quarter gave the 256 KiB blocks measured on 1 MiB-L2
      Zen 4); in decode at most 16, so that every thread gets an even share
      (a matrix-vector product streams `W` once whatever the block);
    * `dot_rows`: rows of `x` per dot-product tile: 4 with 512-bit vectors
      (16 accumulators of AVX-512's 32 registers), else 2 (8 accumulators of
      AVX2's 16 measured fastest);
    * `packed`, `pack_min_rows`, `outer_rows`: whether prompts may pack the
      block's weights for outer-product tiles (K a multiple of 8 and blocks
      of at least two vectors of columns), from how many rows (16: below,
      the packing pass over the block does not pay for itself), and the
      rows of an outer-product tile (12 x 2 vectors is 24 of AVX-512's 32
      registers, 6 x 2 is 12 of AVX2's 16);
    * `activations = "i8"` (only with the `activations=int8` option; absent
      means f32): for a decode product whose `W` is stored as q4_0, q4_1,
      q5_0, q5_1, q4_k, q5_k or q6_k, on a target with 256-bit vectors or
      wider, or as q8_0 on a
      target with AVX-512 VNNI (its bytes, offset to unsigned, reach 255,
      which AVX2's `vpmaddubsw` would saturate), `x` is quantized to 8-bit
      integers with one scale per 4 values (max|x| / 127 of the 4, round
      to nearest even) once per product, and its dot products with `W`'s
      integers are integer dot products (AVX-512 VNNI `vpdpbusd`, else
      AVX2 `vpmaddubsw`/`vpmaddwd`; see `kiln-contraction-kernels`).
      For a prompt product on those types with packed tiles, on a
      512-bit target with AVX-512 VNNI: the integer GEMM (x as 16-bit
      integers per 32 values, `vpdpbusd` on packed weight bytes), with
      `outer_rows` 4 and `block_cols` whole tiles of two vectors (a block
      of bytes sized for L2 as above, at least one tile). On AVX2 a prompt
      stays f32 (`vpmaddubsw` + `vpmaddwd` do no more products per
      instruction than an f32 FMA). Faster, and no longer exact: the
      default keeps `x` in f32 and `W` dequantized exactly.

    ```mlir
    // Before (in @decode, on a 512-bit target):
    %y = linalg.generic {<linear>} ins(%x, %w : tensor<1x1x768xf32>, tensor<2304x768xf32>) ...
    // After:
    %y = linalg.generic {<linear>, kiln.kernel = {block_cols = 16 : i64,
        dot_rows = 4 : i64, outer_rows = 12 : i64, pack_min_rows = 16 : i64,
        packed = false, role = "decode", vector_lanes = 16 : i64}} ...
    ```
  }];
  let options = [
    Option<"blockCols", "block-cols", "int64_t", "64",
           "Most output columns per parallel task">,
    Option<"activations", "activations", "std::string", "\"f32\"",
           "Products on q4_0/q4_1/q5_0/q5_1/q4_k/q5_k/q6_k (and, with "
           "VNNI, q8_0) "
           "weights: f32 (x as is, W "
           "dequantized exactly) or int8 (x quantized: in decode a scale "
           "per 4 values, in prompts (VNNI) 16 bits per 32 values; "
           "integer dot products)">
  ];
}

def KilnParallelizeRows
    : Pass<"kiln-parallelize-rows", "mlir::func::FuncOp"> {
  let summary = "Prompt-sized elementwise and reduction generics on every thread";
  let description = [{
    Every `linalg.generic` on tensors outside a parallel loop with a dynamic
    parallel dimension (the prompt length: norm reductions, LayerNorm, the
    feed-forward activation, residual adds that are not a product's init,
    embedding gathers, RoPE and its tables in `@prefill` and `@forward`) is
    tiled (upstream `scf::tileUsingSCF`) into an `scf.forall` over blocks of
    `rows-per-task` along its dynamic parallel dimensions, so that no part
    of a prompt-sized step runs on one thread while the others wait.
    Fixed-shape generics (one token in `@decode`) stay as they are: a few
    thousand elements do not pay for a fork. Runs after
    `kiln-contraction-kernels`, whose kernels are parallel loops already.

    ```mlir
    // Before:
    %y = linalg.generic {iterator_types = ["parallel", "parallel"]}
        ins(%a : tensor<?x64xf32>) outs(%e : tensor<?x64xf32>) {...}
    // After:
    %y = scf.forall (%i) = (0) to (%rows) step (8) shared_outs(%o = %e) {
      %t = linalg.generic ... ins(%a_slice : tensor<?x64xf32>) ...
      scf.forall.in_parallel { tensor.parallel_insert_slice %t into %o[%i, 0] ... }
    }
    ```
  }];
  let options = [
    Option<"rowsPerTask", "rows-per-task", "int64_t", "8",
           "Rows of the dynamic dimension per parallel task (not tuned: "
           "the first choice, which kept every thread busy on 16-token and "
           "longer prompts)">
  ];
  let dependentDialects = ["::mlir::scf::SCFDialect",
                           "::mlir::tensor::TensorDialect"];
}

def KilnResultsToOutParams
    : Pass<"kiln-results-to-out-params", "mlir::ModuleOp"> {
  let summary = "Buffers that private functions return, allocated by their "
                "callers";
  let description = [{
    After bufferization, a private function (an outlined layer block) that
    returns a buffer it allocates, directly or through views, gets that
    buffer as a trailing argument instead, allocated at each call site;
    the views are rebuilt there. Sizes may be dynamic (the prompt's rows):
    the ops that compute them from the function's arguments (memory-effect
    free, no regions) are cloned at the call site with the call's operands.
    Results that depend on anything else, and buffers returned twice, stay
    results. Only private functions whose every use is a `func.call`.

    Why: buffer deallocation cannot tell where a returned buffer comes from,
    so a caller with call results frees all its temporaries together where
    it ends, with run-time alias checks: every layer's temporaries of
    `@prefill` would stay alive, and every layer would touch fresh memory
    (page faults). A caller's own `memref.alloc` is freed after its last
    use instead (`kiln-early-dealloc`).

    ```mlir
    // Before:
    func.func private @block(%x: memref<1x?x64xf32>) -> memref<1x?x64xf32> {
      %c1 = arith.constant 1 : index
      %n = memref.dim %x, %c1 : memref<1x?x64xf32>
      %a = memref.alloc(%n) : memref<?x64xf32>
      ...
      %r = memref.expand_shape %a [[0, 1], [2]] output_shape [1, %n, 64]
          : memref<?x64xf32> into memref<1x?x64xf32>
      return %r : memref<1x?x64xf32>
    }
    %y = call @block(%x) : (memref<1x?x64xf32>) -> memref<1x?x64xf32>
    // After:
    func.func private @block(%x: memref<1x?x64xf32>, %a: memref<?x64xf32>) {
      ...
    }
    %n = memref.dim %x, %c1 : memref<1x?x64xf32>
    %a = memref.alloc(%n) : memref<?x64xf32>
    %y = memref.expand_shape %a [[0, 1], [2]] output_shape [1, %n, 64] ...
    call @block(%x, %a) : (memref<1x?x64xf32>, memref<?x64xf32>) -> ()
    ```
  }];
  let dependentDialects = ["::mlir::memref::MemRefDialect"];
}

def KilnTarget : Pass<"kiln-target", "mlir::ModuleOp"> {
  let summary = "Record the target CPU's description on the module";
  let description = [{
    Describes the CPU the code is for (this machine's unless `cpu` names
    another; its widest vector registers unless `vector-bits` narrows them)
    and records the description as the module's `kiln.target` dictionary:
    LLVM triple and CPU name, vector width, data cache sizes, and the
    instruction-set features the kernels may choose by (FMA, F16C, AVX-512
    VNNI and BF16). `kiln-kernel-strategy` and object emission read it, so
    both tile and emit for the same width (`kiln-compile --target-cpu`,
    `--vector-bits`).

    ```mlir
    // kiln-opt --kiln-target='cpu=haswell'
    module attributes {kiln.target = {avx512_bf16 = false,
        avx512_vnni = false, cpu = "haswell", f16c = true, fma = true,
        host = false, l1d_bytes = 32768 : i64, l2_bytes = 1048576 : i64,
        l3_bytes = 33554432 : i64, triple = "x86_64-pc-linux-gnu",
        vector_bits = 256 : i64}} { ... }
    ```
  }];
  let options = [
    Option<"cpu", "cpu", "std::string", "\"host\"",
           "LLVM CPU name (e.g. znver4, haswell); host: this machine's">,
    Option<"vectorBits", "vector-bits", "int64_t", "0",
           "Vector register width the kernels are tiled for, in bits "
           "(128, 256, 512; 0: the CPU's widest)">
  ];
}

#endif // KILN_CODEGEN_PASSES
