"""Low-level writer of .kiln model files (runtime/schema/kiln.fbs)."""
import os
import struct
import tempfile

import flatbuffers
import numpy as np

from . import dtypes, graph
from ._fb import (Architecture, DType, Metadata, Model, Node, Op, PreTokenizer, Token,
                  Tokenizer, TokenizerKind, Weight)
from ._fb import (AddOp, AttentionOp, EmbeddingOp, FeedForwardOp, LayerNormOp, LinearOp,
                  PaddingMaskOp, PositionEmbeddingOp, RmsNormOp, RopeOp,
                  SinusoidalPositionOp)

SCHEMA_VERSION = 2
WEIGHT_ALIGNMENT = 64   # every weight's offset in the data section
DATA_ALIGNMENT = 4096   # the data section's offset in the file (a page)
# The FlatBuffer (graph, tokenizer, weight table) has 32-bit offsets; the
# data section after it has no limit.
MAX_FLATBUFFER_SIZE = 2**31 - 2**20
# Model's data_offset: field 7, at this offset in the root table's vtable.
_DATA_OFFSET_VT = 4 + 2 * 7

_OP_MODULES = {
    "EmbeddingOp": EmbeddingOp, "PositionEmbeddingOp": PositionEmbeddingOp, "RopeOp": RopeOp,
    "LayerNormOp": LayerNormOp, "RmsNormOp": RmsNormOp, "LinearOp": LinearOp, "AddOp": AddOp,
    "AttentionOp": AttentionOp, "FeedForwardOp": FeedForwardOp,
    "SinusoidalPositionOp": SinusoidalPositionOp, "PaddingMaskOp": PaddingMaskOp,
}
ARCHITECTURES = [k for k in vars(Architecture.Architecture) if not k.startswith("_")]
TOKENIZER_KINDS = {k: v for k, v in vars(TokenizerKind.TokenizerKind).items()
                   if not k.startswith("_")}
PRE_TOKENIZERS = {k: v for k, v in vars(PreTokenizer.PreTokenizer).items()
                  if not k.startswith("_")}
# Short spellings accepted for tokenizer kinds.
_TOKENIZER_ALIASES = {"bytes": "Bytes", "gpt2": "GPT2BPE", "bpe": "GPT2BPE",
                      "sentencepiece": "SentencePieceBPE", "spm": "SentencePieceBPE"}


def _camel(key):
    """A schema field name as flatc's Python methods spell it: freq_factors ->
    FreqFactors."""
    return "".join(p.capitalize() for p in key.split("_"))


def to_numpy(t, what="tensor"):
    """A torch tensor or array-like as a C-contiguous float32 numpy array."""
    if hasattr(t, "detach"):  # torch tensor (any float dtype, any device)
        t = t.detach().cpu()
        if not t.is_floating_point():
            raise ValueError("%s has dtype %s; expected a floating-point tensor" % (what, t.dtype))
        t = t.float().numpy()
    a = np.asarray(t)
    if a.dtype.kind not in "fiu":
        raise ValueError("%s has dtype %s; expected a floating-point array" % (what, a.dtype))
    return np.asarray(a, dtype=np.float32, order="C")


class ModelWriter:
    """Collects weights and graph nodes, then writes a .kiln file.

    Values are named strings: the graph input (token ids) is `input_name`
    ("tokens"); the output, named at write(), is "logits". An
    encoder-decoder model also names its source ids (`source_name`, the
    first graph input) and gives `source_length` (most source positions)
    and, when it differs from vocab_size, `source_vocab_size`. Every node input
    names a weight, the graph input or an earlier node's output. Each call
    checks what it is given (unknown or duplicate names, shapes, attributes)
    and raises ValueError with a message that names the culprit.

        w = ModelWriter(architecture="Llama", context_length=128, vocab_size=256)
        emb = w.weight("embed", table)                        # [vocab, dim]
        x = w.node("EmbeddingOp", "embed", ["tokens", emb], "x")
        w.node("LinearOp", "lm_head", [x, emb, ""], "logits")
        w.write("model.kiln")
    """

    def __init__(self, *, architecture="Custom", name="", context_length, vocab_size,
                 bos_token_id=-1, eos_token_id=-1, pad_token_id=-1, add_bos=False,
                 input_name="tokens", source_name=None, source_length=0,
                 source_vocab_size=0):
        if architecture not in ARCHITECTURES:
            raise ValueError("architecture %r is not one of %s"
                             % (architecture, ", ".join(ARCHITECTURES)))
        for what, v in (("context_length", context_length), ("vocab_size", vocab_size)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 < v < 2**31:
                raise ValueError("%s must be a positive 32-bit integer, got %r" % (what, v))
        self.architecture = architecture
        self.name = name or ""
        self.context_length = int(context_length)
        self.vocab_size = int(vocab_size)
        ids = {}
        for what, v in (("bos_token_id", bos_token_id), ("eos_token_id", eos_token_id),
                        ("pad_token_id", pad_token_id)):
            v = -1 if v is None else v
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise ValueError("%s must be an integer, got %r" % (what, v))
            if not -1 <= v < self.vocab_size:
                raise ValueError("%s %d is outside the vocabulary of %d"
                                 % (what, v, self.vocab_size))
            ids[what] = int(v)
        self.bos, self.eos, self.pad = ids["bos_token_id"], ids["eos_token_id"], ids["pad_token_id"]
        self.add_bos = bool(add_bos)
        if self.add_bos and self.bos < 0:
            raise ValueError("add_bos needs a bos_token_id")
        if not input_name:
            raise ValueError("the graph input needs a name")
        self.input_name = input_name
        self.source_name = source_name or None
        for what, v in (("source_length", source_length),
                        ("source_vocab_size", source_vocab_size)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < 2**31:
                raise ValueError("%s must be a non-negative 32-bit integer, got %r" % (what, v))
        if self.source_name is not None:
            if self.source_name == input_name:
                raise ValueError("the source and target inputs need different names")
            if source_length <= 0:
                raise ValueError("an encoder-decoder model needs a positive source_length")
            if self.bos < 0:
                raise ValueError("an encoder-decoder model needs a bos_token_id (decoding "
                                 "starts from it)")
        self.source_length = int(source_length)
        self.source_vocab_size = int(source_vocab_size)
        # name -> (dtype name, shape, float32 array or raw bytes), in file order
        self.weights = {}
        self.nodes = []    # (op, name, inputs, output, normalized attrs)
        self.kinds = {input_name: ("ids",)}  # value name -> kind (see graph.py)
        if self.source_name is not None:
            self.kinds[self.source_name] = ("ids",)
        self.node_names = set()
        self.tokenizer = None
        self.set_tokenizer("Bytes")

    # -- building ----------------------------------------------------------

    def weight(self, name, array):
        """Adds a weight (stored as f32) and returns its name."""
        self._check_new_weight(name)
        a = to_numpy(array, "weight %r" % name)
        if a.ndim == 0 or a.size == 0:
            raise ValueError("weight %r has shape %r; expected a non-empty tensor"
                             % (name, a.shape))
        if a.ndim > 4:
            raise ValueError("weight %r has rank %d; the format allows 1 to 4" % (name, a.ndim))
        if not np.all(np.isfinite(a)):
            raise ValueError("weight %r contains NaN or infinite values" % name)
        self.weights[name] = ("F32", tuple(a.shape), a)
        self.kinds[name] = ("weight", a.shape)
        return name

    def raw_weight(self, name, data, dtype, shape):
        """Adds a weight stored as `dtype` ("F32", "F16", "BF16", "Q8_0",
        "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K" or "Q6_K"), given as
        its bytes exactly as the file holds them (little-endian; quantized
        blocks as GGUF lays them out) and its logical element shape. Returns
        its name."""
        self._check_new_weight(name)
        shape = tuple(int(d) for d in shape)
        data = bytes(data)
        need = dtypes.storage_bytes(dtype, shape, "weight %r" % name)
        if len(data) != need:
            raise ValueError("weight %r holds %d bytes but %s %s needs %d"
                             % (name, len(data), dtype, list(shape), need))
        self.weights[name] = (dtype, shape, data)
        self.kinds[name] = ("weight", shape)
        return name

    def _check_new_weight(self, name):
        if not isinstance(name, str) or not name:
            raise ValueError("a weight needs a non-empty name, got %r" % (name,))
        if name in self.kinds:
            raise ValueError("weight %r is defined twice" % name
                             if self.kinds[name][0] == "weight"
                             else "weight %r has the name of an activation" % name)

    def shape(self, name):
        """Shape of a weight, or (features,) of an activation."""
        k = self.kinds.get(name)
        if k is None:
            raise ValueError("no value named %r" % name)
        return tuple(k[1]) if k[0] == "weight" else (k[1],) if k[0] == "act" else ()

    def node(self, op, name, inputs, output, **attrs):
        """Adds a node `op` (an Op union member name, e.g. "LinearOp") reading
        `inputs` (names; "" for an absent optional input) and defining
        `output` (a name, or a list holding one name). Enum attributes are
        given by member name (activation="SwiGLU"). Returns the output name."""
        if isinstance(output, (list, tuple)):
            if len(output) != 1:
                raise ValueError("node %r defines %d outputs; every op has exactly one"
                                 % (name, len(output)))
            output = output[0]
        if not isinstance(name, str) or not name:
            raise ValueError("a node needs a non-empty name, got %r" % (name,))
        if name in self.node_names:
            raise ValueError("node name %r is used twice" % name)
        inputs = list(inputs)
        for i in inputs:
            if not isinstance(i, str):
                raise ValueError("node %r: inputs are value names (str), got %r" % (name, i))
        attrs = graph.normalize_attrs(op, name, attrs)
        kind = graph.infer(op, name, attrs, inputs, self.kinds.get)
        if not isinstance(output, str) or not output:
            raise ValueError("node %r needs a non-empty output name" % name)
        if output in self.kinds:
            raise ValueError("node %r defines %r, which is already defined" % (name, output))
        vocab = self.vocab_size
        if inputs and inputs[0] == self.source_name and self.source_vocab_size:
            vocab = self.source_vocab_size
        if op == "EmbeddingOp" and self.kinds[inputs[1]][1][0] < vocab:
            raise ValueError("node %r (EmbeddingOp): the table %r has %d rows, fewer than the "
                             "vocabulary of %d" % (name, inputs[1], self.kinds[inputs[1]][1][0],
                                                   vocab))
        if op == "PositionEmbeddingOp" and self.kinds[inputs[1]][1][0] < self.context_length:
            raise ValueError("node %r (PositionEmbeddingOp): the table %r has %d rows, fewer "
                             "than the context length %d" % (name, inputs[1],
                                                             self.kinds[inputs[1]][1][0],
                                                             self.context_length))
        self.kinds[output] = kind
        self.node_names.add(name)
        self.nodes.append((op, name, inputs, output, attrs))
        return output

    def set_tokenizer(self, kind="Bytes", tokens=None, scores=None, merges=None,
                      token_types=None, add_space_prefix=True, pre_tokenizer="GPT2",
                      ignore_merges=False, chat_template=None):
        """kind: "Bytes" (default: id i < 256 is byte i), "GPT2BPE" or
        "SentencePieceBPE" (also "bytes", "gpt2", "sentencepiece"); tokens:
        the piece of every id (bytes or str); scores, merges (str "a b"),
        token_types, add_space_prefix, pre_tokenizer ("GPT2", "Llama3",
        "Qwen2"), ignore_merges and chat_template (a Jinja template, str) as
        the schema describes them."""
        if pre_tokenizer not in PRE_TOKENIZERS:
            raise ValueError("pre_tokenizer %r is not one of %s"
                             % (pre_tokenizer, ", ".join(PRE_TOKENIZERS)))
        if chat_template is not None and not isinstance(chat_template, str):
            raise ValueError("chat_template must be a string, got %r" % (chat_template,))
        kind = _TOKENIZER_ALIASES.get(kind, kind)
        if kind not in TOKENIZER_KINDS:
            raise ValueError("tokenizer kind %r is not one of %s"
                             % (kind, ", ".join(TOKENIZER_KINDS)))
        tokens = [t.encode("utf-8") if isinstance(t, str) else bytes(t) for t in tokens or []]
        if len(tokens) > self.vocab_size:
            raise ValueError("the tokenizer has %d tokens, more than the vocabulary of %d"
                             % (len(tokens), self.vocab_size))
        if kind != "Bytes" and len(tokens) != self.vocab_size:
            raise ValueError("a %s tokenizer needs one piece per vocabulary entry: %d pieces "
                             "for a vocabulary of %d" % (kind, len(tokens), self.vocab_size))
        scores = [float(s) for s in scores or []]
        token_types = [int(t) for t in token_types or []]
        for what, v in (("scores", scores), ("token_types", token_types)):
            if v and len(v) != len(tokens):
                raise ValueError("the tokenizer has %d %s for %d tokens"
                                 % (len(v), what, len(tokens)))
        merges = [str(m) for m in merges or []]
        self.tokenizer = dict(kind=kind, tokens=tokens, scores=scores, merges=merges,
                              token_types=token_types, add_space_prefix=bool(add_space_prefix),
                              pre_tokenizer=pre_tokenizer, ignore_merges=bool(ignore_merges),
                              chat_template=chat_template)

    # -- output ------------------------------------------------------------

    def to_bytes(self, *, output="logits"):
        """The finished file's bytes."""
        header, layout = self._finish(output)
        out = bytearray(header)
        for _, _, chunk, offset in layout:
            out.extend(bytes(len(header) + offset - len(out)))
            out.extend(chunk)
        return bytes(out)

    def write(self, path, *, output="logits", tokenizer=None):
        """Writes the file atomically (a temporary file renamed into place),
        the FlatBuffer first, then each weight's bytes.

        tokenizer: None keeps what set_tokenizer gave (Bytes by default), or a
        dict of set_tokenizer's arguments.
        """
        if tokenizer is not None:
            self.set_tokenizer(**tokenizer)
        header, layout = self._finish(output)
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp",
                                   dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(header)
                at = len(header)
                for _, _, chunk, offset in layout:
                    f.write(bytes(len(header) + offset - at))
                    f.write(chunk)
                    at = len(header) + offset + len(chunk)
                f.flush()
                os.fsync(f.fileno())
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def _finish(self, output):
        k = self.kinds.get(output)
        if k is None or k[0] != "act" or output in (self.input_name, self.source_name):
            raise ValueError("graph output %r is not produced by any node" % output)
        if k[1] != self.vocab_size:
            raise ValueError("graph output %r has %d features; the logits need vocab_size = %d"
                             % (output, k[1], self.vocab_size))
        return self._build(output)

    def _build(self, output):
        """(header, layout): the FlatBuffer padded to the data section, and
        per weight (name, dtype, bytes, offset in the data section)."""
        layout, at = [], 0
        for name, (dtype, shape, value) in self.weights.items():
            raw = value if isinstance(value, bytes) else value.astype("<f4", copy=False).tobytes()
            at = (at + WEIGHT_ALIGNMENT - 1) // WEIGHT_ALIGNMENT * WEIGHT_ALIGNMENT
            layout.append((name, dtype, raw, at))
            at += len(raw)
        data_size = at
        b = flatbuffers.Builder(65536)

        def strvec(strs, start):
            offs = [b.CreateString(s) for s in strs]
            start(b, len(offs))
            for o in reversed(offs):
                b.PrependUOffsetTRelative(o)
            return b.EndVector()

        def tabvec(offs, start):
            start(b, len(offs))
            for o in reversed(offs):
                b.PrependUOffsetTRelative(o)
            return b.EndVector()

        weights = []
        for name, dtype, raw, offset in layout:
            shape = self.weights[name][1]
            wname = b.CreateString(name)
            Weight.StartShapeVector(b, len(shape))
            for d in reversed(shape):
                b.PrependInt64(int(d))
            shape_vec = b.EndVector()
            Weight.Start(b)
            Weight.AddName(b, wname)
            Weight.AddDtype(b, getattr(DType.DType, dtype))
            Weight.AddShape(b, shape_vec)
            Weight.AddOffset(b, offset)
            Weight.AddSize(b, len(raw))
            weights.append(Weight.End(b))

        nodes = []
        for op, name, inputs, out, attrs in self.nodes:
            mod = _OP_MODULES[op]
            nname = b.CreateString(name)
            ins = strvec(inputs, Node.StartInputsVector)
            outs = strvec([out], Node.StartOutputsVector)
            vectors = {}
            for key, value in attrs.items():
                if graph.OPS[op][key][0] == "floats" and value is not None:
                    getattr(mod, "Start" + _camel(key) + "Vector")(b, len(value))
                    for e in reversed(value):
                        b.PrependFloat32(e)
                    vectors[key] = b.EndVector()
            mod.Start(b)
            for key, value in attrs.items():
                if graph.OPS[op][key][0] == "floats":
                    if key in vectors:
                        getattr(mod, "Add" + _camel(key))(b, vectors[key])
                    continue
                if key in graph.ENUMS:
                    value = graph.ENUMS[key][value]
                getattr(mod, "Add" + _camel(key))(b, value)
            opoff = mod.End(b)
            Node.Start(b)
            Node.AddName(b, nname)
            Node.AddOpType(b, getattr(Op.Op, op))
            Node.AddOp(b, opoff)
            Node.AddInputs(b, ins)
            Node.AddOutputs(b, outs)
            nodes.append(Node.End(b))

        tok = self.tokenizer
        toks = []
        for piece in tok["tokens"]:
            bv = b.CreateByteVector(piece)
            Token.Start(b)
            Token.AddBytes(b, bv)
            toks.append(Token.End(b))
        tv = tabvec(toks, Tokenizer.StartTokensVector) if toks else None
        sv = ttv = None
        if tok["scores"]:
            Tokenizer.StartScoresVector(b, len(tok["scores"]))
            for s in reversed(tok["scores"]):
                b.PrependFloat32(s)
            sv = b.EndVector()
        if tok["token_types"]:
            Tokenizer.StartTokenTypesVector(b, len(tok["token_types"]))
            for t in reversed(tok["token_types"]):
                b.PrependInt32(t)
            ttv = b.EndVector()
        mv = strvec(tok["merges"], Tokenizer.StartMergesVector) if tok["merges"] else None
        ctv = (b.CreateString(tok["chat_template"]) if tok.get("chat_template") is not None
               else None)
        Tokenizer.Start(b)
        Tokenizer.AddKind(b, TOKENIZER_KINDS[tok["kind"]])
        Tokenizer.AddAddSpacePrefix(b, tok["add_space_prefix"])
        Tokenizer.AddPreTokenizer(b, PRE_TOKENIZERS[tok.get("pre_tokenizer", "GPT2")])
        Tokenizer.AddIgnoreMerges(b, tok.get("ignore_merges", False))
        if ctv is not None:
            Tokenizer.AddChatTemplate(b, ctv)
        for field, adder in ((tv, Tokenizer.AddTokens), (sv, Tokenizer.AddScores),
                             (mv, Tokenizer.AddMerges), (ttv, Tokenizer.AddTokenTypes)):
            if field is not None:
                adder(b, field)
        tokoff = Tokenizer.End(b)

        wv = tabvec(weights, Model.StartWeightsVector)
        nv = tabvec(nodes, Model.StartNodesVector)
        iv = strvec(([self.source_name] if self.source_name else []) + [self.input_name],
                    Model.StartInputsVector)
        ov = strvec([output], Model.StartOutputsVector)
        mname = b.CreateString(self.name)
        Metadata.Start(b)
        Metadata.AddArchitecture(b, getattr(Architecture.Architecture, self.architecture))
        Metadata.AddName(b, mname)
        Metadata.AddContextLength(b, self.context_length)
        Metadata.AddVocabSize(b, self.vocab_size)
        Metadata.AddBosTokenId(b, self.bos)
        Metadata.AddEosTokenId(b, self.eos)
        Metadata.AddPadTokenId(b, self.pad)
        Metadata.AddAddBos(b, self.add_bos)
        if self.source_length:
            Metadata.AddSourceLength(b, self.source_length)
        if self.source_vocab_size:
            Metadata.AddSourceVocabSize(b, self.source_vocab_size)
        meta = Metadata.End(b)
        Model.Start(b)
        Model.AddVersion(b, SCHEMA_VERSION)
        Model.AddMetadata(b, meta)
        Model.AddTokenizer(b, tokoff)
        Model.AddInputs(b, iv)
        Model.AddOutputs(b, ov)
        Model.AddNodes(b, nv)
        Model.AddWeights(b, wv)
        # A placeholder (non-zero, so that the field is stored), patched
        # once the FlatBuffer's size is known.
        Model.AddDataOffset(b, DATA_ALIGNMENT)
        Model.AddDataSize(b, data_size)
        root = Model.End(b)
        b.Finish(root, file_identifier=b"KILN")
        header = bytearray(b.Output())
        if len(header) > MAX_FLATBUFFER_SIZE:
            raise ValueError("the graph, tokenizer and weight table need %d bytes; a FlatBuffer "
                             "holds at most 2 GiB" % len(header))
        data_offset = (len(header) + DATA_ALIGNMENT - 1) // DATA_ALIGNMENT * DATA_ALIGNMENT
        patch_u64_field(header, _DATA_OFFSET_VT, data_offset)
        header.extend(bytes(data_offset - len(header)))
        return bytes(header), layout


def patch_u64_field(buf, vt_offset, value):
    """Overwrites the 8-byte scalar field at vtable offset `vt_offset` of the
    root table of the FlatBuffer `buf` (a bytearray); the field must be
    present."""
    root = struct.unpack_from("<I", buf, 0)[0]
    vtable = root - struct.unpack_from("<i", buf, root)[0]
    vt_size = struct.unpack_from("<H", buf, vtable)[0]
    if vt_offset >= vt_size:
        raise AssertionError("internal error: the root table has no field at %d" % vt_offset)
    field = struct.unpack_from("<H", buf, vtable + vt_offset)[0]
    if field == 0:
        raise AssertionError("internal error: the root table's field %d is absent" % vt_offset)
    struct.pack_into("<Q", buf, root + field, value)
