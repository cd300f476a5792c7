"""A plain NumPy interpreter of .kiln files: the ops' semantics as the schema
(runtime/schema/kiln.fbs) and the transformer dialect document them, in
float64, one node after another in the whole-sequence (training) form.

It reads files back through the generated FlatBuffers reader, so it checks
that an exporter wrote what it meant independently of the compiler, and it
gives tests a third opinion next to PyTorch and the compiled code.

Semantics (x is [batch, seq, features]; positions are 0 .. seq-1):
  EmbeddingOp          scale * table[ids]
  PositionEmbeddingOp  x + table[pos]                (row s gets table[s])
  SinusoidalPositionOp x + PE[pos], PE[p, 2i] = sin(p / base^(2i/dim)),
                       PE[p, 2i+1] = cos(p / base^(2i/dim))
  PaddingMaskOp        ids == pad_id (true: the key is ignored)
  RopeOp               per head of head_dim, pair i in [0, head_dim/2) is
                       rotated by angle pos * theta^(-2i/head_dim) /
                       freq_factors[i] (1 when absent) and scaled by
                       attention_factor: m = attention_factor,
                       (a, b) -> m (a cos - b sin, b cos + a sin), where
                       RotateHalf pairs a = x[i], b = x[i + head_dim/2] and
                       Interleaved pairs a = x[2i], b = x[2i + 1]
  LayerNormOp          (x - mean) / sqrt(var + eps) * gamma + beta, biased var
  RmsNormOp            x / sqrt(mean(x^2) + eps) * gamma, over all features
                       or (group_size G > 0) each group of G on its own
  LinearOp             x W^T (+ b)
  AddOp                a + b
  AttentionOp          query head h reads kv head h // (num_heads/num_kv_heads);
                       softmax(scale * q k^T) v with scale 0 meaning
                       1/sqrt(head_dim); Causal: query s sees keys t <= s
                       (and t > s - window with a window);
                       Bidirectional and Cross: every key; an optional
                       key mask (4th input) hides the keys where it is true
  FeedForwardOp        ungated act(x W_up^T + b_up) W_down^T + b_down;
                       gated (act(x W_gate^T) * (x W_up^T)) W_down^T with
                       SwiGLU = SiLU, GEGLU = exact GELU, GEGLUTanh = tanh GELU;
                       GELU(x) = x/2 (1 + erf(x/sqrt 2)),
                       GELUTanh(x) = x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))),
                       SiLU(x) = x sigmoid(x), ReLU(x) = max(x, 0)
"""
import math

import numpy as np

from . import graph
from .reader import KilnModel, load_model

_erf = np.frompyfunc(math.erf, 1, 1)


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(x.dtype))


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def silu(x):
    return x / (1.0 + np.exp(-x))


ACTIVATIONS = {"ReLU": lambda x: np.maximum(x, 0.0), "GELU": gelu, "GELUTanh": gelu_tanh,
               "SiLU": silu, "SwiGLU": silu, "GEGLU": gelu, "GEGLUTanh": gelu_tanh}


def rope(x, head_dim, theta, style, positions, freq_factors=None, attention_factor=1.0):
    b, s, f = x.shape
    h = x.reshape(b, s, f // head_dim, head_dim)
    half = head_dim // 2
    inv_freq = theta ** (-2.0 * np.arange(half, dtype=np.float64) / head_dim)
    if freq_factors is not None:
        inv_freq = inv_freq / np.asarray(freq_factors, np.float64)
    ang = positions.astype(np.float64)[:, None] * inv_freq[None, :]  # [s, half]
    cos = attention_factor * np.cos(ang)[None, :, None, :]
    sin = attention_factor * np.sin(ang)[None, :, None, :]
    if style == "RotateHalf":
        a, c = h[..., :half], h[..., half:]
    else:
        a, c = h[..., 0::2], h[..., 1::2]
    ra, rc = a * cos - c * sin, c * cos + a * sin
    out = np.empty_like(h)
    if style == "RotateHalf":
        out[..., :half], out[..., half:] = ra, rc
    else:
        out[..., 0::2], out[..., 1::2] = ra, rc
    return out.reshape(b, s, f)


def attention(q, k, v, num_heads, num_kv_heads, head_dim, scale, mode, key_mask=None,
              window=0):
    b, s, _ = q.shape
    t = k.shape[1]
    if mode == "Causal" and t != s:
        raise ValueError("causal attention in the whole-sequence form needs as many keys as "
                         "queries, got %d and %d" % (t, s))
    if scale == 0.0:
        scale = 1.0 / math.sqrt(head_dim)
    group = num_heads // num_kv_heads
    qh = q.reshape(b, s, num_heads, head_dim).transpose(0, 2, 1, 3)
    kh = np.repeat(k.reshape(b, t, num_kv_heads, head_dim).transpose(0, 2, 1, 3), group, axis=1)
    vh = np.repeat(v.reshape(b, t, num_kv_heads, head_dim).transpose(0, 2, 1, 3), group, axis=1)
    scores = scale * (qh @ kh.transpose(0, 1, 3, 2))  # [b, heads, s, t]
    if mode == "Causal":
        visible = np.tril(np.ones((s, t), dtype=bool))
        if window:
            visible &= ~np.tril(np.ones((s, t), dtype=bool), -window)
        scores = np.where(visible, scores, -np.inf)
    if key_mask is not None:
        scores = np.where(key_mask[:, None, None, :], -np.inf, scores)
    scores = scores - scores.max(-1, keepdims=True)
    p = np.exp(scores)
    p /= p.sum(-1, keepdims=True)
    return (p @ vh).transpose(0, 2, 1, 3).reshape(b, s, num_heads * head_dim)


def _linear(x, w, b=None):
    y = x @ w.T
    return y if b is None else y + b


def _ids(token_ids, vocab, limit, what, limit_what):
    ids = np.asarray(token_ids)
    if ids.ndim == 1:
        ids = ids[None, :]
    if ids.ndim != 2 or ids.shape[1] == 0:
        raise ValueError("%s must be [seq] or [batch, seq] with seq >= 1, got shape %s"
                         % (what, ids.shape,))
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError("%s must be integers, got %s" % (what, ids.dtype))
    if ids.min() < 0 or ids.max() >= vocab:
        raise ValueError("%s %d is outside the vocabulary of %d"
                         % (what[:-1], ids.min() if ids.min() < 0 else ids.max(), vocab))
    if ids.shape[1] > limit:
        raise ValueError("%d %s exceed the %s %d" % (ids.shape[1], what.replace(" ids", "s"),
                                                     limit_what, limit))
    return ids


def evaluate(model, token_ids, *, source=None, return_all=False):
    """Runs a loaded KilnModel (see load_model) on token ids ([seq] or
    [batch, seq]); returns the logits ([seq, vocab] or [batch, seq, vocab],
    float64), or with return_all the dict of every value. Encoder-decoder
    models (two graph inputs) also take the `source` ids; `token_ids` is
    then the target (teacher forcing)."""
    md = model.metadata
    squeeze = np.asarray(token_ids).ndim == 1
    ids = _ids(token_ids, md["vocab_size"], md["context_length"], "token ids",
               "context length")
    env = {model.inputs[-1]: ids}
    if len(model.inputs) == 2:
        if source is None:
            raise ValueError("an encoder-decoder model needs the source ids")
        env[model.inputs[0]] = _ids(source, md.get("source_vocab_size") or md["vocab_size"],
                                    md.get("source_length") or md["context_length"],
                                    "source ids", "source length")
    elif source is not None:
        raise ValueError("a decoder-only model takes no source")

    cache = {}

    def w(name):
        if name == "":
            return None
        if name not in cache:
            cache[name] = model.weights[name].astype(np.float64)
        return cache[name]

    def positions(x):
        return np.arange(x.shape[1])

    def val(name):
        return env[name] if name in env else w(name)

    for n in model.nodes:
        a, op, i = n.attrs, n.op, n.inputs
        if op == "EmbeddingOp":
            y = w(i[1])[env[i[0]]] * a["scale"]
        elif op == "PositionEmbeddingOp":
            y = env[i[0]] + w(i[1])[positions(env[i[0]])][None]
        elif op == "SinusoidalPositionOp":
            x = env[i[0]]
            pair = np.arange(x.shape[2]) // 2 * 2
            ang = positions(x)[:, None] / np.power(float(a["base"]), pair / x.shape[2])[None]
            pe = np.where(np.arange(x.shape[2]) % 2 == 0, np.sin(ang), np.cos(ang))
            y = x + pe[None]
        elif op == "PaddingMaskOp":
            y = env[i[0]] == a["pad_id"]
        elif op == "RopeOp":
            x = env[i[0]]
            y = rope(x, a["head_dim"], a["theta"], a["style"], positions(x),
                     a["freq_factors"], a["attention_factor"])
        elif op == "LayerNormOp":
            x = env[i[0]]
            mean = x.mean(-1, keepdims=True)
            var = ((x - mean) ** 2).mean(-1, keepdims=True)
            y = (x - mean) / np.sqrt(var + a["epsilon"]) * w(i[1]) + w(i[2])
        elif op == "RmsNormOp":
            x = env[i[0]]
            g = a["group_size"] or x.shape[-1]
            h = x.reshape(*x.shape[:-1], x.shape[-1] // g, g)
            y = (h / np.sqrt((h * h).mean(-1, keepdims=True) + a["epsilon"]) * w(i[1])
                 ).reshape(x.shape)
        elif op == "LinearOp":
            y = _linear(env[i[0]], w(i[1]), w(i[2]) if len(i) > 2 else None)
        elif op == "AddOp":
            y = env[i[0]] + env[i[1]]
        elif op == "AttentionOp":
            y = attention(env[i[0]], env[i[1]], env[i[2]], a["num_heads"], a["num_kv_heads"],
                          a["head_dim"], a["scale"], a["mode"],
                          env[i[3]] if len(i) > 3 and i[3] else None, a["window"])
        elif op == "FeedForwardOp":
            x, act = env[i[0]], ACTIVATIONS[a["activation"]]
            if a["activation"] in graph.GATED:
                y = _linear(act(_linear(x, w(i[1]))) * _linear(x, w(i[2])), w(i[3]))
            else:
                y = _linear(act(_linear(x, w(i[1]), w(i[2]))), w(i[3]), w(i[4]))
        else:
            raise ValueError("node %r: unknown op %s" % (n.name, op))
        env[n.outputs[0]] = y
    logits = val(model.outputs[0])
    if return_all:
        return env
    return logits[0] if squeeze else logits


def reference_eval(path, token_ids, source=None):
    """Reads a .kiln file (path, bytes or a KilnModel) and returns its logits
    for token_ids: [seq, vocab] for a list of ids, [batch, seq, vocab] for a
    2-D array. float64. Encoder-decoder models take the source ids too."""
    model = path if isinstance(path, KilnModel) else load_model(path)
    return evaluate(model, token_ids, source=source)
