"""The ops of the model file graph (runtime/schema/kiln.fbs): their
attributes, defaults and shape rules, shared by the writer (which checks each
node as it is added) and the reader (which checks a file before evaluating it).

A value is described by a kind:
  ("ids",)               token ids [batch, seq] (a graph input)
  ("mask",)              a key padding mask [batch, seq] (PaddingMaskOp)
  ("act", features)      an activation [batch, seq, features]
  ("weight", shape)      a weight of that shape
Shape errors raise ValueError naming the node, the op, the input and what was
expected.
"""
import math

from ._fb import Activation, AttentionMode, RopeStyle

# Enum attributes: name -> {member name: value}.
ENUMS = {
    "activation": {k: v for k, v in vars(Activation.Activation).items() if not k.startswith("_")},
    "mode": {k: v for k, v in vars(AttentionMode.AttentionMode).items() if not k.startswith("_")},
    "style": {k: v for k, v in vars(RopeStyle.RopeStyle).items() if not k.startswith("_")},
}
ENUM_NAMES = {attr: {v: k for k, v in members.items()} for attr, members in ENUMS.items()}

GATED = ("SwiGLU", "GEGLU", "GEGLUTanh")

# op -> {attribute: (type, schema default or REQUIRED)}. The defaults are the
# schema's; a writer leaves an attribute out only when it has that value.
REQUIRED = object()
OPS = {
    "EmbeddingOp": {"scale": (float, 1.0)},
    "PositionEmbeddingOp": {},
    "RopeOp": {"head_dim": (int, REQUIRED), "theta": (float, 10000.0),
               "style": ("enum", "RotateHalf"), "freq_factors": ("floats", None),
               "attention_factor": (float, 1.0)},
    "LayerNormOp": {"epsilon": (float, 1e-5)},
    "RmsNormOp": {"epsilon": (float, 1e-6), "group_size": (int, 0)},
    "LinearOp": {},
    "AddOp": {},
    "AttentionOp": {"mode": ("enum", "Causal"), "num_heads": (int, REQUIRED),
                    "num_kv_heads": (int, REQUIRED), "head_dim": (int, REQUIRED),
                    "scale": (float, 0.0), "window": (int, 0)},
    "FeedForwardOp": {"activation": ("enum", REQUIRED)},
    "SinusoidalPositionOp": {"base": (float, 10000.0)},
    "PaddingMaskOp": {"pad_id": (int, REQUIRED)},
}


def normalize_attrs(op, name, attrs):
    """Checks attribute names, types and enum members; fills in defaults.
    Returns a new dict (enums as member names)."""
    if op not in OPS:
        raise ValueError("node %r: unknown op %r (known: %s)" % (name, op, ", ".join(sorted(OPS))))
    spec = OPS[op]
    unknown = sorted(set(attrs) - set(spec))
    if unknown:
        raise ValueError("node %r (%s) has no attribute %s (attributes: %s)"
                         % (name, op, ", ".join(repr(u) for u in unknown),
                            ", ".join(sorted(spec)) or "none"))
    out = {}
    for key, (kind, default) in spec.items():
        if key not in attrs or attrs[key] is None:
            if default is REQUIRED:
                raise ValueError("node %r (%s) needs the attribute %r" % (name, op, key))
            out[key] = default
            continue
        v = attrs[key]
        if kind == "enum":
            if isinstance(v, int) and not isinstance(v, bool) and v in ENUM_NAMES[key]:
                v = ENUM_NAMES[key][v]
            if v not in ENUMS[key]:
                raise ValueError("node %r (%s): %s %r is not one of %s"
                                 % (name, op, key, v, ", ".join(ENUMS[key])))
        elif kind == "floats":
            try:
                v = [float(e) for e in v]
            except (TypeError, ValueError):
                raise ValueError("node %r (%s): %s must be a list of numbers, got %r"
                                 % (name, op, key, v))
            if not all(math.isfinite(e) for e in v):
                raise ValueError("node %r (%s): %s must be finite, got %r" % (name, op, key, v))
        elif kind is int:
            if isinstance(v, bool) or not float(v).is_integer():
                raise ValueError("node %r (%s): %s must be an integer, got %r" % (name, op, key, v))
            v = int(v)
            if not -2**31 <= v < 2**31:
                raise ValueError("node %r (%s): %s %d does not fit in 32 bits" % (name, op, key, v))
        else:
            v = float(v)
            if not math.isfinite(v):
                raise ValueError("node %r (%s): %s must be finite, got %r" % (name, op, key, v))
        out[key] = v
    return out


def _describe(kind):
    if kind[0] == "ids":
        return "the token ids"
    if kind[0] == "mask":
        return "a padding mask"
    if kind[0] == "act":
        return "an activation with %d features" % kind[1]
    return "a weight of shape %s" % (tuple(kind[1]),)


def infer(op, name, attrs, inputs, kind_of):
    """Checks a node and returns the kind of its output.

    op: an Op union member name; attrs: normalized attributes; inputs: the
    node's input names ("" for an absent optional input); kind_of(value name)
    returns the value's kind or None when nothing of that name exists.
    """
    where = "node %r (%s)" % (name, op)

    def arity(*counts):
        if len(inputs) not in counts:
            raise ValueError("%s has %d inputs; expected %s"
                             % (where, len(inputs), " or ".join(str(c) for c in counts)))

    def kind(i, optional=False):
        n = inputs[i]
        if n == "":
            if optional:
                return None
            raise ValueError("%s: input #%d must not be empty" % (where, i))
        k = kind_of(n)
        if k is None:
            raise ValueError("%s reads %r, which is neither a weight nor an earlier output"
                             % (where, n))
        return k

    def act(i):
        k = kind(i)
        if k[0] != "act":
            raise ValueError("%s: input #%d %r must be an activation [batch, seq, features], "
                             "but it is %s" % (where, i, inputs[i], _describe(k)))
        return k[1]

    def weight(i, shape, what, optional=False):
        """shape: a tuple of ints or None (any) per dimension."""
        k = kind(i, optional)
        if k is None:
            return None
        if k[0] != "weight":
            raise ValueError("%s: input #%d %r (%s) must be a weight, but it is %s"
                             % (where, i, inputs[i], what, _describe(k)))
        got = tuple(k[1])
        if len(got) != len(shape) or any(e is not None and e != g for e, g in zip(shape, got)):
            want = "[%s]" % ", ".join("?" if e is None else str(e) for e in shape)
            raise ValueError("%s: %s %r has shape %s; expected %s"
                             % (where, what, inputs[i], list(got), want))
        return got

    for n in inputs:  # names first: an unknown name is the likeliest mistake
        if n and kind_of(n) is None:
            raise ValueError("%s reads %r, which is neither a weight nor an earlier output"
                             % (where, n))

    def positive(key):
        if attrs[key] <= 0:
            raise ValueError("%s: %s must be positive, got %r" % (where, key, attrs[key]))

    if op == "EmbeddingOp":
        arity(2)
        k = kind(0)
        if k[0] != "ids":
            raise ValueError("%s: input #0 %r must be the token ids, but it is %s"
                             % (where, inputs[0], _describe(k)))
        if not attrs["scale"] > 0:
            raise ValueError("%s: scale must be positive, got %r" % (where, attrs["scale"]))
        return ("act", weight(1, (None, None), "embedding table")[1])
    if op == "SinusoidalPositionOp":
        arity(1)
        f = act(0)
        if f % 2:
            raise ValueError("%s: %d features; the sinusoidal encoding needs an even number"
                             % (where, f))
        if not attrs["base"] > 1:
            raise ValueError("%s: base must be greater than 1, got %r" % (where, attrs["base"]))
        return ("act", f)
    if op == "PaddingMaskOp":
        arity(1)
        k = kind(0)
        if k[0] != "ids":
            raise ValueError("%s: input #0 %r must be token ids, but it is %s"
                             % (where, inputs[0], _describe(k)))
        if attrs["pad_id"] < 0:
            raise ValueError("%s: pad_id must not be negative, got %r" % (where, attrs["pad_id"]))
        return ("mask",)
    if op == "PositionEmbeddingOp":
        arity(2)
        f = act(0)
        weight(1, (None, f), "position table")
        return ("act", f)
    if op == "RopeOp":
        arity(1)
        f = act(0)
        positive("head_dim")
        hd = attrs["head_dim"]
        if hd % 2:
            raise ValueError("%s: head_dim %d must be even (RoPE rotates pairs)" % (where, hd))
        if f % hd:
            raise ValueError("%s: %d features are not a whole number of heads of head_dim %d"
                             % (where, f, hd))
        if attrs["theta"] <= 0:
            raise ValueError("%s: theta must be positive, got %r" % (where, attrs["theta"]))
        ff = attrs["freq_factors"]
        if ff is not None:
            if len(ff) != hd // 2:
                raise ValueError("%s: freq_factors has %d values; expected head_dim / 2 = %d"
                                 % (where, len(ff), hd // 2))
            if any(not e > 0 for e in ff):
                raise ValueError("%s: freq_factors must be positive, got %r" % (where, ff))
        if attrs["attention_factor"] <= 0:
            raise ValueError("%s: attention_factor must be positive, got %r"
                             % (where, attrs["attention_factor"]))
        return ("act", f)
    if op == "LayerNormOp":
        arity(3)
        f = act(0)
        weight(1, (f,), "gamma")
        weight(2, (f,), "beta")
        if attrs["epsilon"] < 0:
            raise ValueError("%s: epsilon must not be negative" % where)
        return ("act", f)
    if op == "RmsNormOp":
        arity(2)
        f = act(0)
        g = attrs["group_size"]
        if g < 0 or (g and f % g):
            raise ValueError("%s: group_size %d does not divide the %d features"
                             % (where, g, f))
        weight(1, (g or f,), "gamma")
        if attrs["epsilon"] < 0:
            raise ValueError("%s: epsilon must not be negative" % where)
        return ("act", f)
    if op == "LinearOp":
        arity(2, 3)
        f = act(0)
        out = weight(1, (None, f), "weight [out, in]")[0]
        if len(inputs) == 3:
            weight(2, (out,), "bias", optional=True)
        return ("act", out)
    if op == "AddOp":
        arity(2)
        a, b = act(0), act(1)
        if a != b:
            raise ValueError("%s adds %r (%d features) and %r (%d features); the shapes must "
                             "be equal" % (where, inputs[0], a, inputs[1], b))
        return ("act", a)
    if op == "AttentionOp":
        arity(3, 4)
        if len(inputs) == 4:
            k = kind(3, optional=True)
            if k is not None and k[0] != "mask":
                raise ValueError("%s: input #3 %r (key_mask) must be a PaddingMaskOp output, "
                                 "but it is %s" % (where, inputs[3], _describe(k)))
        for key in ("num_heads", "num_kv_heads", "head_dim"):
            positive(key)
        h, kvh, hd = attrs["num_heads"], attrs["num_kv_heads"], attrs["head_dim"]
        if attrs["window"] < 0 or (attrs["window"] and attrs["mode"] != "Causal"):
            raise ValueError("%s: window %d must be positive and only in Causal mode"
                             % (where, attrs["window"]))
        if h % kvh:
            raise ValueError("%s: num_heads %d is not a multiple of num_kv_heads %d"
                             % (where, h, kvh))
        for i, width, what in ((0, h * hd, "num_heads * head_dim"),
                               (1, kvh * hd, "num_kv_heads * head_dim"),
                               (2, kvh * hd, "num_kv_heads * head_dim")):
            f = act(i)
            if f != width:
                raise ValueError("%s: %s %r has %d features; expected %s = %d"
                                 % (where, "qkv"[i], inputs[i], f, what, width))
        return ("act", h * hd)
    if op == "FeedForwardOp":
        if attrs["activation"] in GATED:
            arity(4)
            f = act(0)
            inner = weight(1, (None, f), "w_gate [inner, in]")[0]
            weight(2, (inner, f), "w_up [inner, in]")
            out = weight(3, (None, inner), "w_down [out, inner]")[0]
        else:
            arity(5)
            f = act(0)
            inner = weight(1, (None, f), "w_up [inner, in]")[0]
            weight(2, (inner,), "b_up", optional=True)
            out = weight(3, (None, inner), "w_down [out, inner]")[0]
            weight(4, (out,), "b_down", optional=True)
        return ("act", out)
    raise ValueError("%s: unknown op" % where)
