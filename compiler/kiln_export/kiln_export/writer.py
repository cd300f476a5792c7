"""Low-level writer of .kiln model files (runtime/schema/kiln.fbs)."""
import os
import tempfile

import numpy as np
import flatbuffers

from kiln.fb import (Activation, AddOp, Architecture, AttentionMode, AttentionOp, DType,
                     EmbeddingOp, FeedForwardOp, LayerNormOp, LinearOp, Metadata, Model,
                     Node, Op, PositionEmbeddingOp, RmsNormOp, RopeOp, RopeStyle, Token,
                     Tokenizer, TokenizerKind, Weight)

SCHEMA_VERSION = 1

_OPS = {
    "EmbeddingOp": EmbeddingOp, "PositionEmbeddingOp": PositionEmbeddingOp, "RopeOp": RopeOp,
    "LayerNormOp": LayerNormOp, "RmsNormOp": RmsNormOp, "LinearOp": LinearOp, "AddOp": AddOp,
    "AttentionOp": AttentionOp, "FeedForwardOp": FeedForwardOp,
}
_ENUMS = {
    "activation": Activation.Activation, "mode": AttentionMode.AttentionMode,
    "style": RopeStyle.RopeStyle,
}


def _to_numpy(t):
    if hasattr(t, "detach"):  # torch tensor
        t = t.detach().cpu().float().numpy()
    return np.ascontiguousarray(np.asarray(t, dtype=np.float32))


class ModelWriter:
    """Collects weights and graph nodes, then writes a .kiln file.

    Values are named strings: the graph input (token ids) is "tokens", the
    output "logits"; every node input names a weight or an earlier output.
    Problems (unknown or duplicate names) raise ValueError as they happen.
    """

    def __init__(self, *, architecture="Custom", name="", context_length, vocab_size,
                 bos_token_id=-1, eos_token_id=-1, pad_token_id=-1, add_bos=False):
        if context_length <= 0 or vocab_size <= 0:
            raise ValueError("context_length and vocab_size must be positive, got %r and %r"
                             % (context_length, vocab_size))
        for what, v in (("bos_token_id", bos_token_id), ("eos_token_id", eos_token_id),
                        ("pad_token_id", pad_token_id)):
            if v is not None and not (-1 <= v < vocab_size):
                raise ValueError("%s %d is outside the vocabulary of %d" % (what, v, vocab_size))
        self.architecture = architecture
        self.name = name
        self.context_length = int(context_length)
        self.vocab_size = int(vocab_size)
        self.bos = -1 if bos_token_id is None else int(bos_token_id)
        self.eos = -1 if eos_token_id is None else int(eos_token_id)
        self.pad = -1 if pad_token_id is None else int(pad_token_id)
        self.add_bos = bool(add_bos)
        self.weights = {}  # name -> float32 array (insertion ordered)
        self.nodes = []
        self.values = {"tokens"}

    def weight(self, name, array):
        """Adds a weight (f32) and returns its name."""
        if name in self.weights or name in self.values:
            raise ValueError("weight %r is defined twice" % name)
        a = _to_numpy(array)
        if a.ndim == 0 or a.size == 0:
            raise ValueError("weight %r has shape %r; expected a non-empty tensor" % (name, a.shape))
        if not np.all(np.isfinite(a)):
            raise ValueError("weight %r contains NaN or infinite values" % name)
        self.weights[name] = a
        return name

    def shape(self, name):
        return self.weights[name].shape

    def node(self, op, name, inputs, output, **attrs):
        """Adds a node `op` (an Op union member name, e.g. "LinearOp")."""
        if op not in _OPS:
            raise ValueError("unknown op %r (known: %s)" % (op, ", ".join(sorted(_OPS))))
        for i in inputs:
            if i and i not in self.values and i not in self.weights:
                raise ValueError("node %r reads %r, which is neither a weight nor an earlier output"
                                 % (name, i))
        if output in self.values or output in self.weights:
            raise ValueError("node %r defines %r, which is already defined" % (name, output))
        self.values.add(output)
        self.nodes.append((op, name, list(inputs), output, attrs))
        return output

    def write(self, path, *, output="logits", tokenizer=None):
        """Writes the file atomically (a temporary file renamed into place).

        tokenizer: None for raw bytes, or a dict {"kind": "bytes" | "gpt2" |
        "sentencepiece", "tokens": [bytes], "scores": [float], "merges": [str]}.
        """
        if output not in self.values:
            raise ValueError("graph output %r is not produced by any node" % output)
        data = self._build(output, tokenizer)
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".kiln-", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def _build(self, output, tokenizer):
        total = sum(a.nbytes for a in self.weights.values())
        b = flatbuffers.Builder(total + 65536)

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
        for name, a in self.weights.items():
            raw = a.astype("<f4", copy=False).tobytes()
            wname = b.CreateString(name)
            Weight.StartShapeVector(b, a.ndim)
            for d in reversed(a.shape):
                b.PrependInt64(int(d))
            shape = b.EndVector()
            # Python's generated code ignores force_align: align by hand.
            b.StartVector(1, len(raw), 64)
            b.head = b.head - len(raw)
            b.Bytes[b.head:b.head + len(raw)] = raw
            data = b.EndVector()
            Weight.Start(b)
            Weight.AddName(b, wname)
            Weight.AddDtype(b, DType.DType.F32)
            Weight.AddShape(b, shape)
            Weight.AddData(b, data)
            weights.append(Weight.End(b))

        nodes = []
        for op, name, inputs, out, attrs in self.nodes:
            mod = _OPS[op]
            nname = b.CreateString(name)
            ins = strvec(inputs, Node.StartInputsVector)
            outs = strvec([out], Node.StartOutputsVector)
            mod.Start(b)
            for k, v in attrs.items():
                if k in _ENUMS:
                    v = getattr(_ENUMS[k], v)
                adder = getattr(mod, "Add" + "".join(p.capitalize() for p in k.split("_")), None)
                if adder is None:
                    raise ValueError("op %s has no attribute %r" % (op, k))
                adder(b, v)
            opoff = mod.End(b)
            Node.Start(b)
            Node.AddName(b, nname)
            Node.AddOpType(b, getattr(Op.Op, op))
            Node.AddOp(b, opoff)
            Node.AddInputs(b, ins)
            Node.AddOutputs(b, outs)
            nodes.append(Node.End(b))

        tok = None
        if tokenizer is not None and tokenizer.get("kind", "bytes") != "bytes" or \
                (tokenizer and tokenizer.get("tokens")):
            kind = {"bytes": TokenizerKind.TokenizerKind.Bytes,
                    "gpt2": TokenizerKind.TokenizerKind.GPT2BPE,
                    "sentencepiece": TokenizerKind.TokenizerKind.SentencePieceBPE}[
                        tokenizer.get("kind", "bytes")]
            toks = []
            for piece in tokenizer.get("tokens", []):
                piece = piece.encode() if isinstance(piece, str) else bytes(piece)
                bv = b.CreateByteVector(piece)
                Token.Start(b)
                Token.AddBytes(b, bv)
                toks.append(Token.End(b))
            tv = tabvec(toks, Tokenizer.StartTokensVector)
            sv = None
            if tokenizer.get("scores"):
                Tokenizer.StartScoresVector(b, len(tokenizer["scores"]))
                for s in reversed(tokenizer["scores"]):
                    b.PrependFloat32(float(s))
                sv = b.EndVector()
            mv = strvec(tokenizer["merges"], Tokenizer.StartMergesVector) \
                if tokenizer.get("merges") else None
            Tokenizer.Start(b)
            Tokenizer.AddKind(b, kind)
            Tokenizer.AddTokens(b, tv)
            if sv is not None:
                Tokenizer.AddScores(b, sv)
            if mv is not None:
                Tokenizer.AddMerges(b, mv)
            tok = Tokenizer.End(b)

        wv = tabvec(weights, Model.StartWeightsVector)
        nv = tabvec(nodes, Model.StartNodesVector)
        iv = strvec(["tokens"], Model.StartInputsVector)
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
        meta = Metadata.End(b)
        Model.Start(b)
        Model.AddVersion(b, SCHEMA_VERSION)
        Model.AddMetadata(b, meta)
        if tok is not None:
            Model.AddTokenizer(b, tok)
        Model.AddInputs(b, iv)
        Model.AddOutputs(b, ov)
        Model.AddNodes(b, nv)
        Model.AddWeights(b, wv)
        root = Model.End(b)
        b.Finish(root, file_identifier=b"KILN")
        return bytes(b.Output())
