"""Reads .kiln files back through the generated FlatBuffers reader, with the
checks a reader owes the format: identifier, version, the data section's
place, weight dtypes, sizes, 64-byte alignment and overlaps, names that
resolve, and every node's shapes (graph.py)."""
import mmap

import numpy as np

from . import dtypes, graph
from ._fb import Architecture, DType, Model, Op, PreTokenizer, TokenizerKind
from ._fb import (AttentionOp, EmbeddingOp, FeedForwardOp, LayerNormOp, PaddingMaskOp,
                  RmsNormOp, RopeOp, SinusoidalPositionOp)
from .writer import DATA_ALIGNMENT, SCHEMA_VERSION, WEIGHT_ALIGNMENT

UPGRADE_ADVICE = ("rewrite it as version 2 with `python3 -m kiln_export.upgrade OLD.kiln "
                  "NEW.kiln` (PYTHONPATH=<kiln>/compiler/kiln_export), or convert the original "
                  "GGUF file or Hugging Face directory again with kiln-convert")

_NAMES = lambda enum: {v: k for k, v in vars(enum).items() if not k.startswith("_")}  # noqa: E731
OP_NAMES = _NAMES(Op.Op)
ARCH_NAMES = _NAMES(Architecture.Architecture)
DTYPE_NAMES = _NAMES(DType.DType)
TOKENIZER_NAMES = _NAMES(TokenizerKind.TokenizerKind)
PRE_TOKENIZER_NAMES = _NAMES(PreTokenizer.PreTokenizer)

# Attribute readers of the ops that have attributes: op -> (module, {attr: getter}).
_ATTR_READERS = {
    "EmbeddingOp": (EmbeddingOp.EmbeddingOp, {"scale": "Scale"}),
    "SinusoidalPositionOp": (SinusoidalPositionOp.SinusoidalPositionOp, {"base": "Base"}),
    "PaddingMaskOp": (PaddingMaskOp.PaddingMaskOp, {"pad_id": "PadId"}),
    "RopeOp": (RopeOp.RopeOp, {"head_dim": "HeadDim", "theta": "Theta", "style": "Style",
                               "freq_factors": "FreqFactors",
                               "attention_factor": "AttentionFactor"}),
    "LayerNormOp": (LayerNormOp.LayerNormOp, {"epsilon": "Epsilon"}),
    "RmsNormOp": (RmsNormOp.RmsNormOp, {"epsilon": "Epsilon", "group_size": "GroupSize"}),
    "AttentionOp": (AttentionOp.AttentionOp, {"mode": "Mode", "num_heads": "NumHeads",
                                              "num_kv_heads": "NumKvHeads",
                                              "head_dim": "HeadDim", "scale": "Scale",
                                              "window": "Window"}),
    "FeedForwardOp": (FeedForwardOp.FeedForwardOp, {"activation": "Activation"}),
}


class KilnNode:
    __slots__ = ("name", "op", "attrs", "inputs", "outputs")

    def __init__(self, name, op, attrs, inputs, outputs):
        self.name, self.op, self.attrs, self.inputs, self.outputs = name, op, attrs, inputs, outputs

    def __repr__(self):
        return "KilnNode(%r, %s, %r, %r -> %r)" % (self.name, self.op, self.attrs, self.inputs,
                                                   self.outputs)


class KilnModel:
    """A model file as plain Python: version, metadata (dict), tokenizer
    (dict), inputs, outputs (lists of names), nodes (KilnNode, attributes with
    enums as member names), weights ({name: float32 array}, file order; F16,
    BF16 and quantized weights widened exactly), weight_dtypes ({name: dtype
    name}), weight_bytes ({name: the bytes as stored}), weight_offsets
    ({name: absolute byte offset of its bytes in the file}), data_offset and
    data_size (the data section) and size (the file's)."""

    def __init__(self, **fields):
        self.__dict__.update(fields)


def _str(s):
    return s.decode("utf-8") if isinstance(s, bytes) else (s or "")


def _weight_layout(w, name):
    """(dtype name, shape, offset, size) of a Weight table, checked."""
    code = w.Dtype()
    dtype = DTYPE_NAMES.get(code, "unknown dtype %d" % code)
    shape = [int(w.Shape(j)) for j in range(w.ShapeLength())]
    need = dtypes.storage_bytes(dtype, shape, "weight %r" % name)
    return dtype, shape, int(w.Offset()), int(w.Size()), need


def parse_tables(m, where):
    """What a Model table holds besides its weights: metadata, tokenizer,
    inputs, outputs and nodes, as load_model reports them (any version)."""
    meta = m.Metadata()
    if meta is None:
        raise ValueError("%s has no metadata" % where)
    metadata = {
        "architecture": ARCH_NAMES.get(meta.Architecture(), str(meta.Architecture())),
        "name": _str(meta.Name()),
        "context_length": meta.ContextLength(),
        "vocab_size": meta.VocabSize(),
        "bos_token_id": meta.BosTokenId(),
        "eos_token_id": meta.EosTokenId(),
        "pad_token_id": meta.PadTokenId(),
        "add_bos": bool(meta.AddBos()),
        "source_length": meta.SourceLength(),
        "source_vocab_size": meta.SourceVocabSize(),
    }
    tokenizer = None
    t = m.Tokenizer()
    if t is not None:
        tokenizer = {
            "kind": TOKENIZER_NAMES.get(t.Kind(), str(t.Kind())),
            "tokens": [bytes(t.Tokens(i).BytesAsNumpy()) if t.Tokens(i).BytesLength() else b""
                       for i in range(t.TokensLength())],
            "scores": [t.Scores(i) for i in range(t.ScoresLength())],
            "merges": [_str(t.Merges(i)) for i in range(t.MergesLength())],
            "token_types": [t.TokenTypes(i) for i in range(t.TokenTypesLength())],
            "add_space_prefix": bool(t.AddSpacePrefix()),
            "pre_tokenizer": PRE_TOKENIZER_NAMES.get(t.PreTokenizer(), str(t.PreTokenizer())),
            "ignore_merges": bool(t.IgnoreMerges()),
            "chat_template": _str(t.ChatTemplate()) if t.ChatTemplate() is not None else None,
        }
    nodes = []
    for i in range(m.NodesLength()):
        n = m.Nodes(i)
        name = _str(n.Name())
        op = OP_NAMES.get(n.OpType())
        if op is None or op == "NONE":
            raise ValueError("node %r has an unknown op (type %d); the file may come from a "
                             "newer Kiln" % (name, n.OpType()))
        attrs = {}
        if op in _ATTR_READERS:
            cls, getters = _ATTR_READERS[op]
            table = n.Op()
            o = cls()
            o.Init(table.Bytes, table.Pos)
            attrs = {}
            for k, g in getters.items():
                if graph.OPS[op][k][0] == "floats":  # a vector: absent or its values
                    attrs[k] = (None if getattr(o, g + "IsNone")() else
                                [getattr(o, g)(j) for j in range(getattr(o, g + "Length")())])
                else:
                    attrs[k] = getattr(o, g)()
        attrs = graph.normalize_attrs(op, name, attrs)
        nodes.append(KilnNode(name, op, attrs,
                              [_str(n.Inputs(j)) for j in range(n.InputsLength())],
                              [_str(n.Outputs(j)) for j in range(n.OutputsLength())]))
    return dict(metadata=metadata, tokenizer=tokenizer,
                inputs=[_str(m.Inputs(i)) for i in range(m.InputsLength())],
                outputs=[_str(m.Outputs(i)) for i in range(m.OutputsLength())],
                nodes=nodes)


def load_model(path_or_bytes, *, check=True):
    """Parses a .kiln file (a path or its bytes) into a KilnModel; with
    check, also checks the graph (names resolve, shapes fit) and raises
    ValueError naming the first problem."""
    if isinstance(path_or_bytes, (bytes, bytearray)):
        data, where = bytes(path_or_bytes), "model file"
    else:
        with open(path_or_bytes, "rb") as f:
            try:  # mapped: the data section is read as it is used
                data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except ValueError:  # an empty file
                data = b""
        where = str(path_or_bytes)
    if len(data) < 8 or not Model.Model.ModelBufferHasIdentifier(data, 0):
        raise ValueError("%s is not a Kiln model file (missing the 'KILN' identifier)" % where)
    m = Model.Model.GetRootAs(data, 0)
    if m.Version() < 2:
        raise ValueError("%s has schema version %d (weights inside the FlatBuffer), which this "
                         "reader no longer reads: %s" % (where, m.Version(), UPGRADE_ADVICE))
    if m.Version() > SCHEMA_VERSION:
        raise ValueError("%s has schema version %d; this reader knows up to %d"
                         % (where, m.Version(), SCHEMA_VERSION))
    data_offset, data_size = m.DataOffset(), m.DataSize()
    if data_offset == 0 or data_offset % DATA_ALIGNMENT:
        raise ValueError("%s: data_offset %d is not a positive multiple of %d"
                         % (where, data_offset, DATA_ALIGNMENT))
    if data_offset + data_size != len(data):
        raise ValueError("%s is %s than it claims: %d bytes, but its data section (%d bytes at "
                         "%d) ends at %d" % (where, "shorter" if data_offset + data_size > len(data)
                                             else "longer", len(data), data_size, data_offset,
                                             data_offset + data_size))
    section = np.frombuffer(data, np.uint8, count=data_size, offset=data_offset)
    tables = parse_tables(m, where)
    weights, offsets, kinds, raws, spans = {}, {}, {}, {}, []
    for i in range(m.WeightsLength()):
        w = m.Weights(i)
        name = _str(w.Name())
        if name in weights:
            raise ValueError("weight %r is defined twice" % name)
        dtype, shape, offset, size, need = _weight_layout(w, name)
        if offset % WEIGHT_ALIGNMENT:
            raise ValueError("weight %r has offset %d, not a multiple of %d"
                             % (name, offset, WEIGHT_ALIGNMENT))
        if offset + size > data_size:
            raise ValueError("weight %r (%d bytes at offset %d) ends past the data section of %d "
                             "bytes" % (name, size, offset, data_size))
        if size != need:
            raise ValueError("weight %r has size %d but its dtype %s and shape %s need %d bytes"
                             % (name, size, dtype, shape, need))
        spans.append((offset, offset + size, name))
        raw = section[offset:offset + size]
        weights[name] = dtypes.dequantize(dtype, raw, shape)
        offsets[name], kinds[name], raws[name] = data_offset + offset, dtype, raw
    spans.sort()
    for (_, end, a), (begin, _, b) in zip(spans, spans[1:]):
        if begin < end:
            raise ValueError("weights %r and %r overlap in the data section" % (a, b))
    model = KilnModel(
        version=m.Version(), **tables, weights=weights, weight_offsets=offsets, weight_dtypes=kinds,
        weight_bytes=raws, data_offset=data_offset, data_size=data_size, size=len(data))
    if check:
        check_model(model)
    return model


def check_model(model):
    """The semantic checks of a loaded model (see load_model)."""
    md = model.metadata
    if md["context_length"] <= 0 or md["vocab_size"] <= 0:
        raise ValueError("metadata: context_length (%d) and vocab_size (%d) must be positive"
                         % (md["context_length"], md["vocab_size"]))
    if len(model.inputs) not in (1, 2) or len(model.outputs) != 1:
        raise ValueError("the graph must have one input (token ids) or two (source and target "
                         "ids) and one output (logits), got %d and %d"
                         % (len(model.inputs), len(model.outputs)))
    if len(model.inputs) == 2 and md.get("source_length", 0) <= 0:
        raise ValueError("metadata: an encoder-decoder model needs a positive source_length")
    kinds = {name: ("weight", a.shape) for name, a in model.weights.items()}
    for name in model.inputs:
        kinds[name] = ("ids",)
    seen = set()
    for n in model.nodes:
        if n.name in seen:
            raise ValueError("node name %r is used twice" % n.name)
        seen.add(n.name)
        if len(n.outputs) != 1:
            raise ValueError("node %r has %d outputs; every op has exactly one"
                             % (n.name, len(n.outputs)))
        k = graph.infer(n.op, n.name, n.attrs, n.inputs, kinds.get)
        if not n.outputs[0] or n.outputs[0] in kinds:
            raise ValueError("node %r defines %r, which is empty or already defined"
                             % (n.name, n.outputs[0]))
        kinds[n.outputs[0]] = k
    out = kinds.get(model.outputs[0])
    if out is None or out[0] != "act":
        raise ValueError("graph output %r is not produced by any node" % model.outputs[0])
    if out[1] != md["vocab_size"]:
        raise ValueError("graph output %r has %d features; expected logits of vocab_size %d"
                         % (model.outputs[0], out[1], md["vocab_size"]))


def read_model(path):
    """Returns (metadata dict, {weight name: float32 numpy array}), e.g. to
    load a model file's weights into a PyTorch module for comparison."""
    m = load_model(path, check=False)
    info = dict(m.metadata, version=m.version)
    return info, {k: v.copy() for k, v in m.weights.items()}
