//===- ForallToOpenMP.cpp - Parallel loops on the OpenMP thread pool ------===//
//
// Implements `kiln-forall-to-openmp`: every `scf.forall` (after
// bufferization, so without results) becomes an `omp.parallel` region in
// which each thread runs one contiguous share of the flattened iteration
// space, computed from omp_get_thread_num() and omp_get_num_threads().
//
// Upstream's convert-scf-to-openmp emits `omp.wsloop`, whose runtime entry
// (__kmpc_for_static_init_8u) allocates on the heap at every loop in
// Debian's libomp; a decode step runs ~10 of them per layer. Partitioning
// here calls nothing but those two queries, so a parallel loop allocates
// nothing, and the same iteration always runs the same code, whichever
// thread gets it (results do not depend on -t).
//
//===----------------------------------------------------------------------===//

#include "kiln/Codegen/Passes.h"

#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/OpenMP/OpenMPDialect.h"
#include "mlir/IR/IRMapping.h"

namespace kiln {
#define GEN_PASS_DEF_KILNFORALLTOOPENMP
#include "kiln/Codegen/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace {

func::FuncOp declareQuery(ModuleOp module, StringRef name) {
  if (auto f = module.lookupSymbol<func::FuncOp>(name))
    return f;
  OpBuilder b = OpBuilder::atBlockEnd(module.getBody());
  auto f = func::FuncOp::create(
      b, module.getLoc(), name,
      b.getFunctionType({}, {b.getI32Type()}));
  f.setPrivate();
  return f;
}

Value query(OpBuilder &b, Location loc, func::FuncOp f) {
  Value v = func::CallOp::create(b, loc, f, ValueRange{}).getResult(0);
  return arith::IndexCastOp::create(b, loc, b.getIndexType(), v);
}

LogicalResult lower(scf::ForallOp op, func::FuncOp threadNum,
                    func::FuncOp numThreads) {
  if (op.getNumResults() != 0)
    return op.emitError("kiln-forall-to-openmp runs after bufferization: "
                        "scf.forall must not have results");
  OpBuilder b(op);
  Location loc = op.getLoc();
  SmallVector<Value> lbs = getValueOrCreateConstantIndexOp(
      b, loc, op.getMixedLowerBound());
  SmallVector<Value> ubs = getValueOrCreateConstantIndexOp(
      b, loc, op.getMixedUpperBound());
  SmallVector<Value> steps =
      getValueOrCreateConstantIndexOp(b, loc, op.getMixedStep());

  auto par = omp::ParallelOp::create(b, loc, ArrayRef<NamedAttribute>{});
  Block *body = b.createBlock(&par.getRegion());
  b.setInsertionPointToStart(body);
  auto cst = [&](int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); };
  SmallVector<Value> counts;
  Value total = cst(1);
  for (auto [lb, ub, step] : llvm::zip(lbs, ubs, steps)) {
    Value n = arith::CeilDivSIOp::create(
        b, loc, arith::SubIOp::create(b, loc, ub, lb), step);
    n = arith::MaxSIOp::create(b, loc, n, cst(0));
    counts.push_back(n);
    total = arith::MulIOp::create(b, loc, total, n);
  }
  Value tid = query(b, loc, threadNum), nth = query(b, loc, numThreads);
  Value chunk = arith::CeilDivSIOp::create(b, loc, total, nth);
  Value lo = arith::MinSIOp::create(
      b, loc, arith::MulIOp::create(b, loc, tid, chunk), total);
  Value hi = arith::MinSIOp::create(
      b, loc, arith::AddIOp::create(b, loc, lo, chunk), total);
  // Fixed-size stack buffers of an iteration (promoted temporaries, packed
  // weight blocks) are allocated once per thread and reused by each of its
  // iterations, which run one after another.
  IRMapping map;
  for (Operation &inner : op.getBody()->without_terminator())
    if (auto alloca = dyn_cast<memref::AllocaOp>(inner))
      if (alloca->getNumOperands() == 0)
        b.clone(inner, map);
  auto loop = scf::ForOp::create(b, loc, lo, hi, cst(1));
  b.setInsertionPointToStart(loop.getBody());
  // Each iteration's stack allocations are released at its end.
  auto scope = memref::AllocaScopeOp::create(b, loc, TypeRange{});
  Block *scopeBody = b.createBlock(&scope.getBodyRegion());
  b.setInsertionPointToStart(scopeBody);
  Value rem = loop.getInductionVar();
  for (int64_t i = counts.size() - 1; i >= 0; --i) {
    Value idx = i ? arith::RemSIOp::create(b, loc, rem, counts[i]).getResult()
                  : rem;
    if (i)
      rem = arith::DivSIOp::create(b, loc, rem, counts[i]);
    Value iv = arith::AddIOp::create(
        b, loc, lbs[i], arith::MulIOp::create(b, loc, idx, steps[i]));
    map.map(op.getInductionVars()[i], iv);
  }
  for (Operation &inner : op.getBody()->without_terminator())
    if (inner.getNumResults() != 1 || !map.contains(inner.getResult(0)))
      b.clone(inner, map);
  memref::AllocaScopeReturnOp::create(b, loc, ValueRange{});
  b.setInsertionPointToEnd(body);
  omp::TerminatorOp::create(b, loc);
  op.erase();
  return success();
}

struct KilnForallToOpenMPPass
    : public kiln::impl::KilnForallToOpenMPBase<KilnForallToOpenMPPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<scf::ForallOp> loops;
    module.walk([&](scf::ForallOp op) { loops.push_back(op); });
    if (loops.empty())
      return;
    func::FuncOp threadNum = declareQuery(module, "omp_get_thread_num");
    func::FuncOp numThreads = declareQuery(module, "omp_get_num_threads");
    // Innermost first: a nested forall runs inside its thread's share.
    for (scf::ForallOp op : llvm::reverse(loops))
      if (failed(lower(op, threadNum, numThreads)))
        return signalPassFailure();
  }
};

} // namespace
