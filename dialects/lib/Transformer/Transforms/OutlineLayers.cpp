//===- OutlineLayers.cpp - One function per distinct layer block ----------===//
//
// Implements `transformer-outline-layers`. A model's entry points repeat the
// same blocks once per layer (an attention block, a feed-forward block),
// differing only in their weights and their KV cache layer. This pass cuts
// each function's body where nothing but the residual stream (and the KV
// cache) is live, groups the pieces that are identical up to weights and
// cache layers, and moves each group into one private function that the
// entry point calls per layer, with that layer's weights and layer index.
// The IR, and the time to compile it, then grows with the number of distinct
// block shapes, not with depth.
//
//===----------------------------------------------------------------------===//

#include "kiln/Dialect/Transformer/IR/Transformer.h"
#include "kiln/Dialect/Transformer/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/Support/raw_ostream.h"

#include <vector>

namespace kiln::transformer {
#define GEN_PASS_DEF_TRANSFORMEROUTLINELAYERS
#include "kiln/Dialect/Transformer/Transforms/Passes.h.inc"
} // namespace kiln::transformer

using namespace mlir;
using namespace kiln::transformer;

namespace {

/// Ops that belong to no block: weights and constants (read anywhere), and
/// index arithmetic on the function's arguments (positions, lengths). A
/// block reads their values as arguments (constants are cloned).
bool isFree(Operation *op, const llvm::DenseSet<Operation *> &free) {
  if (isa<WeightOp>(op) || op->hasTrait<mlir::OpTrait::ConstantLike>())
    return true;
  if (op->getNumRegions() != 0 || !isPure(op) ||
      !llvm::all_of(op->getResultTypes(),
                    [](Type t) { return t.isIndex(); }))
    return false;
  return llvm::all_of(op->getOperands(), [&](Value v) {
    Operation *def = v.getDefiningOp();
    return !def || free.contains(def);
  });
}

/// A run of a function's non-free ops between two cuts, and what it reads
/// and defines for the rest of the function.
struct Segment {
  func::FuncOp func;
  SmallVector<Operation *> ops;
  /// Values read from outside (arguments, free ops other than constants,
  /// earlier segments), in order of first use.
  SmallVector<Value> inputs;
  /// Values used after the segment, in order of definition.
  SmallVector<Value> outputs;
  /// The constant layers of its cache ops, in order of first use.
  SmallVector<int64_t> layers;
  /// The structure, up to inputs and cache layers: equal keys, one function.
  std::string key;
};

/// The values `ops` read from outside, in order of first use, constants
/// excepted (they are cloned): a segment's inputs. Read again when a group
/// is outlined, since replacing earlier groups renames values.
SmallVector<Value> inputsOf(ArrayRef<Operation *> ops) {
  llvm::DenseSet<Operation *> inside(ops.begin(), ops.end());
  llvm::SetVector<Value> inputs;
  for (Operation *op : ops)
    for (Value v : op->getOperands()) {
      Operation *def = v.getDefiningOp();
      if (def && (inside.contains(def) ||
                  def->hasTrait<mlir::OpTrait::ConstantLike>()))
        continue;
      inputs.insert(v);
    }
  return inputs.takeVector();
}

/// Fills `s.inputs`, `s.outputs`, `s.layers` and `s.key`. Returns false when
/// the segment cannot be outlined (regions, dynamic cache layers).
bool describe(Segment &s) {
  llvm::DenseMap<Operation *, unsigned> position;
  for (auto [i, op] : llvm::enumerate(s.ops))
    position[op] = i;
  s.inputs = inputsOf(s.ops);
  llvm::DenseMap<Value, unsigned> inputIndex;
  for (auto [n, v] : llvm::enumerate(s.inputs))
    inputIndex[v] = n;
  std::string key;
  llvm::raw_string_ostream os(key);
  auto operand = [&](Value v) {
    Operation *def = v.getDefiningOp();
    if (def && position.count(def)) {
      os << "%" << position[def] << "." << cast<OpResult>(v).getResultNumber();
    } else if (def && def->hasTrait<mlir::OpTrait::ConstantLike>()) {
      Attribute value;
      matchPattern(v, m_Constant(&value));
      os << "c(" << value << ")";
    } else {
      os << "in" << inputIndex.lookup(v) << ":" << v.getType();
    }
    os << ",";
  };
  for (Operation *op : s.ops) {
    if (op->getNumRegions() != 0)
      return false;
    NamedAttrList attrs(op->getAttrDictionary());
    if (isa<KVCacheAppendOp, KVCacheReadOp>(op)) {
      auto layer = op->getAttrOfType<IntegerAttr>("layer");
      if (!layer)
        return false;
      auto *it = llvm::find(s.layers, layer.getInt());
      os << "layer" << (it - s.layers.begin()) << ";";
      if (it == s.layers.end())
        s.layers.push_back(layer.getInt());
      attrs.erase("layer");
    }
    os << op->getName() << "(";
    for (Value v : op->getOperands())
      operand(v);
    os << ")" << attrs.getDictionary(op->getContext()) << "->";
    for (Type t : op->getResultTypes())
      os << t << ",";
    os << ";";
  }
  // Users outside the segment all come after it (straight-line code).
  for (Operation *op : s.ops)
    for (Value r : op->getResults())
      if (llvm::any_of(r.getUsers(), [&](Operation *user) {
            return !position.count(user);
          }))
        s.outputs.push_back(r);
  for (Value r : s.outputs)
    os << "out%" << position[r.getDefiningOp()] << "."
       << cast<OpResult>(r).getResultNumber() << ",";
  s.key = std::move(key);
  return true;
}

/// Cuts `func`'s body into segments: after each residual add (the end of an
/// attention or feed-forward block), and wherever at most one tensor (the
/// residual stream) and one KV cache defined before are used after (after
/// the embedding). In @prefill, attention outputs stay live to the end (the
/// last position's path reads them), so the residual adds are the cuts.
std::vector<Segment> segment(func::FuncOp func) {
  Block &body = func.getBody().front();
  llvm::DenseSet<Operation *> free;
  SmallVector<Operation *> ops;
  for (Operation &op : body.without_terminator()) {
    if (isFree(&op, free))
      free.insert(&op);
    else
      ops.push_back(&op);
  }
  llvm::DenseMap<Operation *, unsigned> index;
  for (auto [i, op] : llvm::enumerate(ops))
    index[op] = i;
  unsigned n = ops.size();
  // live[p]: tensors and caches defined before position p and used at or
  // after it (the terminator is position n).
  SmallVector<int> tensors(n + 1, 0), caches(n + 1, 0), others(n + 1, 0);
  // The function's arguments count from the start: a cut is where only the
  // residual stream is live, whether it is an argument or computed.
  SmallVector<std::pair<Value, unsigned>> defs;
  for (Value arg : body.getArguments())
    if (isa<TensorType, KVCacheType>(arg.getType()))
      defs.push_back({arg, 0});
  for (auto [i, op] : llvm::enumerate(ops))
    for (Value r : op->getResults())
      defs.push_back({r, (unsigned)i + 1});
  for (auto [r, from] : defs) {
    unsigned lastUse = 0;
    for (Operation *user : r.getUsers()) {
      Operation *a = body.findAncestorOpInBlock(*user);
      lastUse = std::max(lastUse, a == body.getTerminator() ? n
                                  : index.count(a)         ? index[a]
                                                           : n);
    }
    SmallVector<int> &count = isa<KVCacheType>(r.getType()) ? caches
                              : isa<TensorType>(r.getType()) ? tensors
                                                              : others;
    for (unsigned p = std::max(from, 1u); p <= lastUse; ++p)
      ++count[p];
  }
  std::vector<Segment> segments;
  unsigned start = 0;
  for (unsigned p = 1; p <= n; ++p) {
    bool cut = p == n || isa<AddOp>(ops[p - 1]) ||
               (tensors[p] <= 1 && caches[p] <= 1 && others[p] == 0);
    if (!cut)
      continue;
    Segment s;
    s.func = func;
    s.ops.assign(ops.begin() + start, ops.begin() + p);
    if (describe(s))
      segments.push_back(std::move(s));
    start = p;
  }
  return segments;
}

/// A name for the function of a group: its first member's function and the
/// kind of block it is.
std::string baseName(Segment s) {
  bool attention =
      llvm::any_of(s.ops, [](Operation *op) { return isa<AttentionOp>(op); });
  return (s.func.getSymName() + (attention ? "_attention" : "_feed_forward"))
      .str();
}

/// The private function computing `s`: its inputs and one index per cache
/// layer as arguments, its outputs as results. (After bufferization,
/// kiln-results-to-out-params makes the callers allocate the results'
/// buffers.)
func::FuncOp outline(Segment s, ModuleOp module, SymbolTable &symbols) {
  OpBuilder b(module.getContext());
  // Read again: replacing other groups renamed values this one reads.
  SmallVector<Value> inputs = inputsOf(s.ops);
  SmallVector<Type> argTypes;
  for (Value v : inputs)
    argTypes.push_back(v.getType());
  argTypes.append(s.layers.size(), b.getIndexType());
  SmallVector<Type> resultTypes;
  for (Value v : s.outputs)
    resultTypes.push_back(v.getType());
  b.setInsertionPoint(s.func);
  auto fn = func::FuncOp::create(b, s.func.getLoc(), baseName(s),
                                 b.getFunctionType(argTypes, resultTypes));
  fn.setPrivate();
  symbols.insert(fn); // renames on a clash
  Block *entry = fn.addEntryBlock();
  b.setInsertionPointToStart(entry);
  IRMapping map;
  for (auto [v, arg] : llvm::zip(inputs, entry->getArguments()))
    map.map(v, arg);
  ValueRange layerArgs = entry->getArguments().drop_front(inputs.size());
  for (Operation *op : s.ops) {
    for (Value v : op->getOperands())
      if (Operation *def = v.getDefiningOp();
          def && def->hasTrait<mlir::OpTrait::ConstantLike>() && !map.contains(v))
        map.map(v, b.clone(*def)->getResult(0));
    Operation *clone = b.clone(*op, map);
    if (auto layer = clone->getAttrOfType<IntegerAttr>("layer")) {
      Value arg = layerArgs[llvm::find(s.layers, layer.getInt()) -
                            s.layers.begin()];
      clone->removeAttr("layer");
      if (auto append = dyn_cast<KVCacheAppendOp>(clone))
        append.getDynamicLayerMutable().assign(arg);
      else
        cast<KVCacheReadOp>(clone).getDynamicLayerMutable().assign(arg);
    }
  }
  SmallVector<Value> results;
  for (Value v : s.outputs)
    results.push_back(map.lookup(v));
  func::ReturnOp::create(b, s.func.getLoc(), results);
  return fn;
}

/// Replaces `s` by a call of `fn`.
void replaceByCall(Segment s, func::FuncOp fn) {
  Operation *last = s.ops.back();
  OpBuilder b(last);
  SmallVector<Value> args = inputsOf(s.ops);
  for (int64_t layer : s.layers)
    args.push_back(arith::ConstantIndexOp::create(b, last->getLoc(), layer));
  auto call = func::CallOp::create(b, last->getLoc(), fn, args);
  // The call goes after the segment's last op, which may define an output.
  call->moveAfter(last);
  for (auto [v, r] : llvm::zip(s.outputs, call.getResults()))
    v.replaceAllUsesWith(r);
  for (Operation *op : llvm::reverse(s.ops))
    op->erase();
}

struct TransformerOutlineLayersPass
    : public kiln::transformer::impl::TransformerOutlineLayersBase<
          TransformerOutlineLayersPass> {
  using Base::Base;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SymbolTable symbols(module);
    llvm::MapVector<StringRef, std::vector<Segment>> groups;
    SmallVector<func::FuncOp> funcs(module.getOps<func::FuncOp>());
    std::vector<std::vector<Segment>> all;
    for (func::FuncOp func : funcs)
      if (!func.isExternal())
        all.push_back(segment(func));
    // Layer blocks: pieces with an attention or a feed-forward op. (The
    // last position's norm and LM head repeat between @prefill and @decode
    // too, but are computed once per step: not worth a call.)
    auto isLayerBlock = [](const Segment &s) {
      return llvm::any_of(s.ops, [](Operation *op) {
        return isa<AttentionOp, FeedForwardOp>(op);
      });
    };
    // Blocks over a fixed number of rows (decode's): every tensor they read
    // or write has a static shape.
    auto isFixedRows = [](const Segment &s) {
      auto fixed = [](Value v) {
        auto t = dyn_cast<RankedTensorType>(v.getType());
        return !t || t.hasStaticShape();
      };
      return llvm::all_of(s.inputs, fixed) && llvm::all_of(s.outputs, fixed);
    };
    if (scope != "decode" && scope != "all") {
      module.emitError("transformer-outline-layers: scope must be decode or "
                       "all, not '")
          << scope << "'";
      return signalPassFailure();
    }
    for (std::vector<Segment> &segments : all)
      for (Segment &s : segments)
        if (isLayerBlock(s) && (scope == "all" || isFixedRows(s)))
          groups[s.key].push_back(s);
    for (auto &[key, members] : groups) {
      if (members.size() < 2)
        continue;
      func::FuncOp fn = outline(members.front(), module, symbols);
      for (const Segment &s : members)
        replaceByCall(s, fn);
    }
  }
};

} // namespace
