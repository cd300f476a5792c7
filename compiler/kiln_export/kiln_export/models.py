"""Exporters for Hugging Face-layout GPT-2 and Llama checkpoints."""
import math

import numpy as np

from . import quantize as _quantize
from .writer import ModelWriter, to_numpy

# Non-parameter buffers some checkpoints carry; they hold no model weights.
_BUFFER_SUFFIXES = (".attn.bias", ".attn.masked_bias", ".rotary_emb.inv_freq")


def _int(config, key, family, default=None, minimum=1):
    if key not in config or config[key] is None:
        if default is None:
            raise ValueError("%s config is missing %r" % (family, key))
        return default
    v = config[key]
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise ValueError("%s config: %s must be an integer >= %d, got %r"
                         % (family, key, minimum, v))
    return int(v)


def _float(config, key, family, default):
    v = config.get(key)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)) \
            or not math.isfinite(v) or v < 0:
        raise ValueError("%s config: %s must be a non-negative number, got %r" % (family, key, v))
    return float(v)


def _token_id(config, key, family):
    """A special token id; HF allows a list (several EOS ids): the first is used."""
    v = config.get(key)
    if isinstance(v, (list, tuple)):
        v = v[0] if v else None
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer))):
        raise ValueError("%s config: %s must be an integer, got %r" % (family, key, v))
    return v


def _require(config, keys, family):
    if not isinstance(config, dict):
        raise ValueError("%s config must be a dict (the keys of config.json), got %s"
                         % (family, type(config).__name__))
    missing = [k for k in keys if config.get(k) is None]
    if missing:
        raise ValueError("%s config is missing %s" % (family, ", ".join(repr(k) for k in missing)))


class _Params:
    """Looks up state_dict entries by name with clear errors, and remembers
    which were used so that leftovers can be reported."""

    def __init__(self, state_dict, family):
        if not hasattr(state_dict, "keys"):
            raise ValueError("%s state_dict must be a mapping of names to tensors, got %s"
                             % (family, type(state_dict).__name__))
        self.sd = state_dict
        self.family = family
        self.used = set()

    def has(self, name):
        return name in self.sd

    def get(self, name, shape):
        if name not in self.sd:
            raise ValueError("%s state_dict has no %r" % (self.family, name))
        self.used.add(name)
        a = to_numpy(self.sd[name], "%s tensor %r" % (self.family, name))
        if tuple(a.shape) != tuple(shape):
            raise ValueError("%s tensor %r has shape %s, expected %s (from the config)"
                             % (self.family, name, tuple(a.shape), tuple(shape)))
        return a

    def ignore(self, name):
        self.used.add(name)

    def check_all_used(self):
        left = sorted(k for k in self.sd if k not in self.used and not k.endswith(_BUFFER_SUFFIXES))
        if left:
            shown = ", ".join(repr(k) for k in left[:5]) + (" ..." if len(left) > 5 else "")
            raise ValueError("%s state_dict has %d tensor(s) the config does not account for "
                             "(wrong num layers or names?): %s" % (self.family, len(left), shown))


# The dtype= of export_gpt2 / export_llama.
DTYPES = ("f32", "f16", "bf16") + _quantize.RECIPES


def _export_dtype(dtype):
    """dtype= normalized (lower case); ValueError naming the accepted ones."""
    d = dtype.lower() if isinstance(dtype, str) else None
    if d not in DTYPES:
        raise ValueError("dtype %r is not supported (supported: %s)" % (dtype, ", ".join(DTYPES)))
    return d


def _to_bf16(a):
    """float32 -> bfloat16 bits (uint16), rounded to nearest even."""
    u = a.view(np.uint32)
    return ((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1)))
            >> np.uint32(16)).astype(np.uint16)


class _Weights:
    """Adds the exporter's weights to `w` as dtype= says. f32: every weight
    F32 (ModelWriter.weight). f16 / bf16: matrices (rank >= 2) as F16 / BF16
    (round to nearest even), 1-D tensors as F32, as kiln-convert --dtype
    stored keeps a half-precision checkpoint. q8_0 / q4_0 / q4_k_m: each
    matrix as quantize.quantized_type gives it for its GGUF name (`role`),
    its row length, the model's `layers` and `tied` (the head reads the token
    embedding), quantized by quantize.quantize: the types and bytes of
    kiln-convert --quantize; None keeps it F32."""

    def __init__(self, w, dtype, layers, tied):
        self.w, self.dtype, self.layers, self.tied = w, dtype, layers, tied

    def __call__(self, name, array, role):
        if self.dtype == "f32":
            return self.w.weight(name, array)
        a = to_numpy(array, "weight %r" % name)
        if a.ndim < 2:
            return self.w.weight(name, a)
        if not np.all(np.isfinite(a)):
            raise ValueError("weight %r contains NaN or infinite values" % name)
        if self.dtype in ("f16", "bf16"):
            kind = self.dtype.upper()
            bits = _quantize.float_to_half(a) if kind == "F16" else _to_bf16(a)
            if np.any((bits & 0x7FFF) == (0x7C00 if kind == "F16" else 0x7F80)):
                big = float(np.abs(a).max())
                raise ValueError("weight %r holds %g, which %s cannot represent (it rounds to "
                                 "infinity); export it with dtype=\"f32\"%s"
                                 % (name, big, kind, "" if kind == "BF16" else " or \"bf16\""))
            return self.w.raw_weight(name, bits.astype("<u2").tobytes(), kind, a.shape)
        kind = _quantize.quantized_type(self.dtype, role, a.shape[-1], self.layers, self.tied)
        if kind is None:
            return self.w.weight(name, a)
        return self.w.raw_weight(name, _quantize.quantize(kind, a), kind, a.shape)


def _lm_head(w, p, emb, tied, vocab, d, store):
    """The LM head weight's name: the embedding's when tied (one weight entry
    feeding both nodes), else lm_head.weight."""
    if tied:
        if p.has("lm_head.weight"):
            p.ignore("lm_head.weight")
        return emb
    head = p.get("lm_head.weight", (vocab, d))
    if np.array_equal(head, w.weights[emb]):
        return emb
    return store("lm_head.weight", head, "output.weight")


def export_gpt2(path, state_dict, config, *, tokenizer=None, name="gpt2", dtype="f32"):
    """Writes a GPT2LMHeadModel checkpoint as a .kiln file.

    Conv1D weights ([in, out]) are transposed to nn.Linear's [out, in]
    layout; c_attn is split into q, k and v weights ([n_embd, n_embd] each,
    stored as transformer.h.N.attn.{q,k,v}.weight/bias). The LM head reads
    the token embedding (GPT-2 ties them) unless tie_word_embeddings is false.
    tokenizer: None (raw bytes) or the arguments of ModelWriter.set_tokenizer.
    dtype: how weights are stored (any case): "f32" (default); "f16" or
    "bf16" (matrices; 1-D tensors stay f32); "q8_0", "q4_0" or "q4_k_m"
    (llama-quantize's recipes, as kiln-convert --quantize: each matrix gets
    the type of its GGUF role, the split q, k and v parts that of the fused
    attn_qkv; the position table stays f32).
    """
    fam = "GPT-2"
    dtype = _export_dtype(dtype)
    _require(config, ["n_embd", "n_head", "n_layer", "n_positions", "vocab_size"], fam)
    d, heads = _int(config, "n_embd", fam), _int(config, "n_head", fam)
    layers = _int(config, "n_layer", fam, minimum=0)
    npos, vocab = _int(config, "n_positions", fam), _int(config, "vocab_size", fam)
    eps = _float(config, "layer_norm_epsilon", fam, 1e-5)
    if d % heads:
        raise ValueError("GPT-2 config: n_embd %d is not a multiple of n_head %d" % (d, heads))
    hd = d // heads
    inner = _int(config, "n_inner", fam, default=4 * d)
    act = config.get("activation_function", "gelu_new")
    activation = {"gelu_new": "GELUTanh", "gelu_pytorch_tanh": "GELUTanh", "gelu": "GELU",
                  "relu": "ReLU", "silu": "SiLU", "swish": "SiLU"}.get(act)
    if activation is None:
        raise ValueError("GPT-2 config: activation_function %r is not supported "
                         "(supported: gelu_new, gelu_pytorch_tanh, gelu, relu, silu)" % (act,))
    if config.get("add_cross_attention"):
        raise ValueError("GPT-2 config: add_cross_attention is not supported")
    scale_weights = config.get("scale_attn_weights", True)
    by_layer = config.get("scale_attn_by_inverse_layer_idx", False)
    p = _Params(state_dict, fam)
    w = ModelWriter(architecture="GPT2", name=name, context_length=npos, vocab_size=vocab,
                    bos_token_id=_token_id(config, "bos_token_id", fam),
                    eos_token_id=_token_id(config, "eos_token_id", fam))
    if tokenizer is not None:
        w.set_tokenizer(**tokenizer)
    tied = bool(config.get("tie_word_embeddings", True))
    store = _Weights(w, dtype, layers, tied)
    wte = store("transformer.wte.weight", p.get("transformer.wte.weight", (vocab, d)),
                "token_embd.weight")
    wpe = store("transformer.wpe.weight", p.get("transformer.wpe.weight", (npos, d)),
                "position_embd.weight")
    x = w.node("EmbeddingOp", "wte", ["tokens", wte], "wte")
    x = w.node("PositionEmbeddingOp", "wpe", [x, wpe], "h.0.in")
    for i in range(layers):
        pre, h = "transformer.h.%d." % i, "h.%d." % i

        def param(suffix, shape, role, transpose=False):
            a = p.get(pre + suffix, shape)
            return store(pre + suffix, a.T if transpose else a, "blk.%d.%s" % (i, role))

        ln1 = [param("ln_1.weight", (d,), "attn_norm.weight"),
               param("ln_1.bias", (d,), "attn_norm.bias")]
        n = w.node("LayerNormOp", h + "ln_1", [x] + ln1, h + "ln_1", epsilon=eps)
        c_attn = p.get(pre + "attn.c_attn.weight", (d, 3 * d)).T  # [3d (q|k|v), d]
        c_attn_b = p.get(pre + "attn.c_attn.bias", (3 * d,))
        qkv = []
        for j, part in enumerate("qkv"):
            wn = store(pre + "attn.%s.weight" % part, c_attn[j * d:(j + 1) * d],
                       "blk.%d.attn_qkv.weight" % i)
            bn = store(pre + "attn.%s.bias" % part, c_attn_b[j * d:(j + 1) * d],
                       "blk.%d.attn_qkv.bias" % i)
            qkv.append(w.node("LinearOp", h + "attn." + part, [n, wn, bn], h + "attn." + part))
        scale = (1.0 / math.sqrt(hd) if scale_weights else 1.0) / ((i + 1) if by_layer else 1)
        a = w.node("AttentionOp", h + "attn", qkv, h + "attn", mode="Causal", num_heads=heads,
                   num_kv_heads=heads, head_dim=hd,
                   scale=0.0 if scale_weights and not by_layer else scale)
        proj = [param("attn.c_proj.weight", (d, d), "attn_output.weight", transpose=True),
                param("attn.c_proj.bias", (d,), "attn_output.bias")]
        a = w.node("LinearOp", h + "attn.c_proj", [a] + proj, h + "attn.c_proj")
        x = w.node("AddOp", h + "residual_1", [x, a], h + "mid")
        ln2 = [param("ln_2.weight", (d,), "ffn_norm.weight"),
               param("ln_2.bias", (d,), "ffn_norm.bias")]
        n = w.node("LayerNormOp", h + "ln_2", [x] + ln2, h + "ln_2", epsilon=eps)
        ff = [param("mlp.c_fc.weight", (d, inner), "ffn_up.weight", transpose=True),
              param("mlp.c_fc.bias", (inner,), "ffn_up.bias"),
              param("mlp.c_proj.weight", (inner, d), "ffn_down.weight", transpose=True),
              param("mlp.c_proj.bias", (d,), "ffn_down.bias")]
        f = w.node("FeedForwardOp", h + "mlp", [n] + ff, h + "mlp", activation=activation)
        x = w.node("AddOp", h + "residual_2", [x, f], "h.%d.in" % (i + 1))
    lnf = [store("transformer.ln_f.weight", p.get("transformer.ln_f.weight", (d,)),
                 "output_norm.weight"),
           store("transformer.ln_f.bias", p.get("transformer.ln_f.bias", (d,)),
                 "output_norm.bias")]
    x = w.node("LayerNormOp", "ln_f", [x] + lnf, "ln_f", epsilon=eps)
    head = _lm_head(w, p, wte, tied, vocab, d, store)
    w.node("LinearOp", "lm_head", [x, head, ""], "logits")
    p.check_all_used()
    w.write(path)


ROPE_SCALING_TYPES = ("default", "linear", "llama3", "yarn")


def llama_rope(config, fam, head_dim):
    """The RoPE of a Hugging Face config as RopeOp attributes: {"theta",
    "freq_factors" (None, or head_dim/2 divisors of the pairs' frequencies),
    "attention_factor"}. Scaling comes from `rope_scaling` (or transformers
    5's `rope_parameters`): "default", "linear" (every frequency / factor),
    "llama3" (Llama 3.1's smooth split at low_freq_factor / high_freq_factor
    of original_max_position_embeddings) or "yarn" (interpolation blended
    with extrapolation over the correction range of beta_fast / beta_slow
    rotations; cos and sin scaled by attention_factor, default 0.1 ln(factor)
    + 1). YaRN's factor is the config's `factor`, as llama.cpp's converter
    writes it."""
    theta = _float(config, "rope_theta", fam, None)
    params = config.get("rope_parameters")  # transformers 5 keeps it all here
    scaling = config.get("rope_scaling")
    if isinstance(params, dict) and theta is None:
        theta = _float(params, "rope_theta", fam, None)
    if scaling is None and isinstance(params, dict):
        scaling = params
    theta = 10000.0 if theta is None else theta
    if theta <= 0:
        raise ValueError("%s config: rope_theta must be positive, got %r" % (fam, theta))
    out = {"theta": theta, "freq_factors": None, "attention_factor": 1.0}
    if scaling is None:
        return out
    if not isinstance(scaling, dict):
        raise ValueError("%s config: rope_scaling must be an object, got %r" % (fam, scaling))
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind not in ROPE_SCALING_TYPES:
        raise ValueError("%s config: RoPE scaling %r is not supported (supported: %s)"
                         % (fam, kind, ", ".join(ROPE_SCALING_TYPES)))
    if kind == "default":
        return out
    factor = _float(scaling, "factor", fam, None)
    if factor is None or factor <= 0:
        raise ValueError("%s config: RoPE scaling %r needs a positive factor, got %r"
                         % (fam, kind, scaling.get("factor")))
    half = head_dim // 2
    inv_freq = [theta ** (-2.0 * i / head_dim) for i in range(half)]
    if kind == "linear":
        factors = [factor] * half
    elif kind == "llama3":
        low = _float(scaling, "low_freq_factor", fam, None)
        high = _float(scaling, "high_freq_factor", fam, None)
        old = _float(scaling, "original_max_position_embeddings", fam, None)
        if not low or not high or not old or high <= low:
            raise ValueError("%s config: llama3 RoPE scaling needs original_max_position_"
                             "embeddings and 0 < low_freq_factor < high_freq_factor, got %r"
                             % (fam, scaling))
        factors = []
        for f in inv_freq:
            wavelen = 2 * math.pi / f
            if wavelen < old / high:
                factors.append(1.0)
            elif wavelen > old / low:
                factors.append(factor)
            else:
                smooth = (old / wavelen - low) / (high - low)
                factors.append(1.0 / ((1 - smooth) / factor + smooth))
    else:  # yarn
        old = _float(scaling, "original_max_position_embeddings", fam, None) \
            or _float(config, "max_position_embeddings", fam, None)
        fast = _float(scaling, "beta_fast", fam, None) or 32.0
        slow = _float(scaling, "beta_slow", fam, None) or 1.0

        def correction_dim(rotations):
            return head_dim * math.log(old / (rotations * 2 * math.pi)) / (2 * math.log(theta))
        lo, hi = correction_dim(fast), correction_dim(slow)
        if scaling.get("truncate", True):
            lo, hi = math.floor(lo), math.ceil(hi)
        lo, hi = max(lo, 0), min(hi, head_dim - 1)
        if lo == hi:
            hi += 0.001
        factors = []
        for i in range(half):
            extrapolate = 1 - min(1.0, max(0.0, (i - lo) / (hi - lo)))
            factors.append(1.0 / ((1 - extrapolate) / factor + extrapolate))
        attention = scaling.get("attention_factor")
        if attention is None:
            def mscale(m):
                return 1.0 if factor <= 1 else 0.1 * m * math.log(factor) + 1.0
            m, m_all = scaling.get("mscale"), scaling.get("mscale_all_dim")
            attention = mscale(m) / mscale(m_all) if m and m_all else mscale(1.0)
        out["attention_factor"] = _float({"attention_factor": attention}, "attention_factor",
                                         fam, None)
    out["freq_factors"] = None if all(f == 1.0 for f in factors) else factors
    return out


def export_llama(path, state_dict, config, *, tokenizer=None, name="llama", dtype="f32"):
    """Writes a LlamaForCausalLM checkpoint as a .kiln file (also
    Qwen3ForCausalLM: config model_type "qwen3" or that architecture adds
    the per-head q_norm / k_norm before RoPE; MistralForCausalLM: its
    sliding_window becomes the attention's window).

    Uses Hugging Face's rotate-half RoPE layout of q_proj/k_proj, GQA/MQA
    through num_key_value_heads, RoPE scaling (rope_scaling: linear, llama3,
    yarn; see llama_rope), SwiGLU, and the embedding as LM head when
    tie_word_embeddings (lm_head.weight, if present, is then ignored).
    tokenizer: None (raw bytes) or the arguments of ModelWriter.set_tokenizer.
    dtype: how weights are stored (any case): "f32" (default); "f16" or
    "bf16" (matrices; 1-D tensors stay f32); "q8_0", "q4_0" or "q4_k_m"
    (llama-quantize's recipes, as kiln-convert --quantize: each matrix gets
    the type of its GGUF role; a tied embedding the output matrix's).
    """
    fam = "Llama"
    dtype = _export_dtype(dtype)
    _require(config, ["hidden_size", "intermediate_size", "num_hidden_layers",
                      "num_attention_heads", "vocab_size", "max_position_embeddings"], fam)
    d, inter = _int(config, "hidden_size", fam), _int(config, "intermediate_size", fam)
    layers = _int(config, "num_hidden_layers", fam, minimum=0)
    heads = _int(config, "num_attention_heads", fam)
    kv = _int(config, "num_key_value_heads", fam, default=heads)
    vocab, ctx = _int(config, "vocab_size", fam), _int(config, "max_position_embeddings", fam)
    eps = _float(config, "rms_norm_eps", fam, 1e-6)
    if "head_dim" in config and config["head_dim"] is not None:
        head_dim = _int(config, "head_dim", fam)
    elif d % heads:
        raise ValueError("Llama config: hidden_size %d is not a multiple of num_attention_heads %d"
                         % (d, heads))
    else:
        head_dim = d // heads
    if head_dim % 2:
        raise ValueError("Llama config: head_dim %d must be even for RoPE" % head_dim)
    rope = llama_rope(config, fam, head_dim)
    if heads % kv:
        raise ValueError("Llama config: num_attention_heads %d is not a multiple of "
                         "num_key_value_heads %d" % (heads, kv))
    if config.get("hidden_act", "silu") != "silu":
        raise ValueError("Llama config: hidden_act %r is not supported (supported: silu)"
                         % (config["hidden_act"],))
    if config.get("attention_bias") or config.get("mlp_bias"):
        raise ValueError("Llama config: attention_bias/mlp_bias are not supported")
    p = _Params(state_dict, fam)
    # Qwen3 (Qwen3ForCausalLM): per-head RMS norms of q and k.
    qk_norm = (config.get("model_type") == "qwen3"
               or "Qwen3ForCausalLM" in (config.get("architectures") or []))
    # Mistral (MistralForCausalLM): every layer attends over a sliding window.
    window = 0
    if (config.get("model_type") == "mistral"
            or "MistralForCausalLM" in (config.get("architectures") or [])):
        window = _int(config, "sliding_window", fam, default=0, minimum=0)
        if window >= ctx:
            window = 0  # the window holds the whole context
    bos = _token_id(config, "bos_token_id", fam)
    w = ModelWriter(architecture="Llama", name=name, context_length=ctx, vocab_size=vocab,
                    bos_token_id=bos, eos_token_id=_token_id(config, "eos_token_id", fam),
                    pad_token_id=_token_id(config, "pad_token_id", fam),
                    add_bos=bos is not None)
    if tokenizer is not None:
        w.set_tokenizer(**tokenizer)
    tied = bool(config.get("tie_word_embeddings", False))
    store = _Weights(w, dtype, layers, tied)
    emb = store("model.embed_tokens.weight", p.get("model.embed_tokens.weight", (vocab, d)),
                "token_embd.weight")
    x = w.node("EmbeddingOp", "embed_tokens", ["tokens", emb], "layers.0.in")
    for i in range(layers):
        pre, h = "model.layers.%d." % i, "layers.%d." % i

        def param(suffix, shape, role):
            return store(pre + suffix, p.get(pre + suffix, shape), "blk.%d.%s" % (i, role))

        g = param("input_layernorm.weight", (d,), "attn_norm.weight")
        n = w.node("RmsNormOp", h + "input_layernorm", [x, g], h + "input_layernorm",
                   epsilon=eps)
        proj = {}
        for part, rows in (("q", heads * head_dim), ("k", kv * head_dim), ("v", kv * head_dim)):
            wn = param("self_attn.%s_proj.weight" % part, (rows, d), "attn_%s.weight" % part)
            proj[part] = w.node("LinearOp", h + "self_attn.%s_proj" % part, [n, wn, ""],
                                h + "self_attn.%s_proj" % part)
        for part in "qk":
            if qk_norm:  # Qwen3: each head normalized before RoPE
                gn = param("self_attn.%s_norm.weight" % part, (head_dim,),
                           "attn_%s_norm.weight" % part)
                proj[part] = w.node("RmsNormOp", h + "self_attn.%s_norm" % part,
                                    [proj[part], gn], h + "self_attn.%s_norm" % part,
                                    epsilon=eps, group_size=head_dim)
            proj[part] = w.node("RopeOp", h + "self_attn.rope_" + part, [proj[part]],
                                h + "self_attn.rope_" + part, head_dim=head_dim,
                                style="RotateHalf", **rope)
        a = w.node("AttentionOp", h + "self_attn", [proj["q"], proj["k"], proj["v"]],
                   h + "self_attn", mode="Causal", num_heads=heads, num_kv_heads=kv,
                   head_dim=head_dim, scale=0.0, window=window)
        o = param("self_attn.o_proj.weight", (d, heads * head_dim), "attn_output.weight")
        a = w.node("LinearOp", h + "self_attn.o_proj", [a, o, ""], h + "self_attn.o_proj")
        x = w.node("AddOp", h + "residual_1", [x, a], h + "mid")
        g2 = param("post_attention_layernorm.weight", (d,), "ffn_norm.weight")
        n = w.node("RmsNormOp", h + "post_attention_layernorm", [x, g2],
                   h + "post_attention_layernorm", epsilon=eps)
        ff = [param("mlp.gate_proj.weight", (inter, d), "ffn_gate.weight"),
              param("mlp.up_proj.weight", (inter, d), "ffn_up.weight"),
              param("mlp.down_proj.weight", (d, inter), "ffn_down.weight")]
        f = w.node("FeedForwardOp", h + "mlp", [n] + ff, h + "mlp", activation="SwiGLU")
        x = w.node("AddOp", h + "residual_2", [x, f], "layers.%d.in" % (i + 1))
    g = store("model.norm.weight", p.get("model.norm.weight", (d,)), "output_norm.weight")
    x = w.node("RmsNormOp", "norm", [x, g], "norm", epsilon=eps)
    head = _lm_head(w, p, emb, tied, vocab, d, store)
    w.node("LinearOp", "lm_head", [x, head, ""], "logits")
    p.check_all_used()
    w.write(path)


def _activation_name(layer, where):
    """"ReLU" or "GELU" for an nn.TransformerEncoderLayer/DecoderLayer."""
    import torch.nn.functional as F
    from torch import nn
    act = getattr(layer, "activation", None)
    if act is F.relu or isinstance(act, nn.ReLU) or act == "relu":
        return "ReLU"
    if act is F.gelu or act == "gelu" or (isinstance(act, nn.GELU) and
                                          getattr(act, "approximate", "none") == "none"):
        return "GELU"
    raise ValueError("%s: activation %r is not supported (supported: relu, gelu)" % (where, act))


def export_transformer(path, transformer, src_embedding, tgt_embedding, generator, *, bos_id,
                       eos_id, pad_id=None, max_len=512, scale_embeddings=True, name="transformer",
                       tokenizer=None):
    """Writes an encoder-decoder model from a torch.nn.Transformer.

    The model is the one of "Attention Is All You Need": token embeddings
    (`src_embedding`, `tgt_embedding`: nn.Embedding; times sqrt(d_model) when
    `scale_embeddings`) plus the sinusoidal encoding
    PE[pos, 2i] = sin(pos / 10000^(2i/d_model)), PE[pos, 2i+1] = cos(...),
    the transformer's encoder and decoder (post-LN or `norm_first`, ReLU or
    GELU, the final encoder and decoder norms nn.Transformer always has), and
    `generator` (nn.Linear d_model -> target vocabulary) for the logits. When
    `pad_id` is given, source positions holding it are masked out of the
    encoder's self-attention and the decoder's cross-attention (PyTorch's
    src_key_padding_mask and memory_key_padding_mask). Decoding starts from
    `bos_id` and stops at `eos_id`; `max_len` bounds source and target
    lengths. `tokenizer`: as ModelWriter.set_tokenizer's arguments (default
    raw bytes).
    """
    from torch import nn
    fam = "export_transformer"
    if not isinstance(transformer, nn.Transformer):
        raise ValueError("%s: expected a torch.nn.Transformer, got %s"
                         % (fam, type(transformer).__name__))
    for what, m, cls in (("src_embedding", src_embedding, nn.Embedding),
                         ("tgt_embedding", tgt_embedding, nn.Embedding),
                         ("generator", generator, nn.Linear)):
        if not isinstance(m, cls):
            raise ValueError("%s: %s must be an nn.%s, got %s"
                             % (fam, what, cls.__name__, type(m).__name__))
    d = transformer.d_model
    enc_layers = list(transformer.encoder.layers)
    dec_layers = list(transformer.decoder.layers)
    if not enc_layers or not dec_layers:
        raise ValueError("%s: the transformer needs at least one encoder and one decoder layer"
                         % fam)
    if transformer.encoder.norm is None or transformer.decoder.norm is None:
        raise ValueError("%s: expected the final encoder and decoder norms nn.Transformer "
                         "creates" % fam)
    for what, m in (("src_embedding", src_embedding), ("tgt_embedding", tgt_embedding)):
        if m.embedding_dim != d:
            raise ValueError("%s: %s has dimension %d; d_model is %d"
                             % (fam, what, m.embedding_dim, d))
    if generator.in_features != d:
        raise ValueError("%s: generator takes %d features; d_model is %d"
                         % (fam, generator.in_features, d))
    vocab = generator.out_features
    src_vocab = src_embedding.num_embeddings
    if tgt_embedding.num_embeddings != vocab:
        raise ValueError("%s: tgt_embedding has %d rows but the generator writes %d logits; "
                         "the target vocabulary must agree" % (fam, tgt_embedding.num_embeddings,
                                                               vocab))
    if d % 2:
        raise ValueError("%s: d_model %d must be even for the sinusoidal encoding" % (fam, d))
    for what, v, hi in (("bos_id", bos_id, vocab), ("eos_id", eos_id, vocab)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < hi:
            raise ValueError("%s: %s must be a token id in [0, %d), got %r" % (fam, what, hi, v))
    if pad_id is not None and (isinstance(pad_id, bool) or not isinstance(pad_id, (int, np.integer))
                               or not 0 <= pad_id < src_vocab):
        raise ValueError("%s: pad_id must be None or a source token id in [0, %d), got %r"
                         % (fam, src_vocab, pad_id))
    if isinstance(max_len, bool) or not isinstance(max_len, (int, np.integer)) or max_len < 1:
        raise ValueError("%s: max_len must be a positive integer, got %r" % (fam, max_len))

    w = ModelWriter(architecture="EncoderDecoder", name=name, context_length=int(max_len),
                    vocab_size=vocab, bos_token_id=int(bos_id), eos_token_id=int(eos_id),
                    pad_token_id=-1 if pad_id is None or pad_id >= vocab else int(pad_id),
                    input_name="target", source_name="source", source_length=int(max_len),
                    source_vocab_size=src_vocab if src_vocab != vocab else 0)
    scale = math.sqrt(d) if scale_embeddings else 1.0

    def t(x):
        return x.detach().cpu()

    def norm(prefix, ln, x, out):
        g = w.weight(prefix + ".weight", t(ln.weight))
        b = w.weight(prefix + ".bias", t(ln.bias))
        return w.node("LayerNormOp", prefix, [x, g, b], out, epsilon=float(ln.eps))

    def attention(prefix, mha, x_q, x_kv, mode, mask):
        if not isinstance(mha, nn.MultiheadAttention) or mha.in_proj_weight is None:
            raise ValueError("%s: %s is not an nn.MultiheadAttention with packed in_proj "
                             "(kdim == vdim == d_model)" % (fam, prefix))
        if mha.in_proj_bias is None or mha.out_proj.bias is None:
            raise ValueError("%s: %s has no biases; nn.Transformer's attention has them"
                             % (fam, prefix))
        if mha.bias_k is not None or mha.add_zero_attn:
            raise ValueError("%s: %s uses add_bias_kv or add_zero_attn, which are not supported"
                             % (fam, prefix))
        h = mha.num_heads
        wq, wk, wv = t(mha.in_proj_weight).chunk(3, 0)
        bq, bk, bv = t(mha.in_proj_bias).chunk(3, 0)
        proj = {}
        for nm, ww, bb, src in (("q", wq, bq, x_q), ("k", wk, bk, x_kv), ("v", wv, bv, x_kv)):
            proj[nm] = w.node("LinearOp", "%s.%s" % (prefix, nm),
                              [src, w.weight("%s.%s.weight" % (prefix, nm), ww),
                               w.weight("%s.%s.bias" % (prefix, nm), bb)], prefix + "." + nm)
        a = w.node("AttentionOp", prefix, [proj["q"], proj["k"], proj["v"], mask or ""],
                   prefix + ".heads", mode=mode, num_heads=h, num_kv_heads=h, head_dim=d // h)
        return w.node("LinearOp", prefix + ".out",
                      [a, w.weight(prefix + ".out.weight", t(mha.out_proj.weight)),
                       w.weight(prefix + ".out.bias", t(mha.out_proj.bias))], prefix + ".out")

    def feed_forward(prefix, layer, x):
        act = _activation_name(layer, prefix)
        return w.node("FeedForwardOp", prefix,
                      [x, w.weight(prefix + ".up.weight", t(layer.linear1.weight)),
                       w.weight(prefix + ".up.bias", t(layer.linear1.bias)),
                       w.weight(prefix + ".down.weight", t(layer.linear2.weight)),
                       w.weight(prefix + ".down.bias", t(layer.linear2.bias))],
                      prefix, activation=act)

    def sublayer(prefix, layer_norm, x, fn):
        """norm_first: x + f(norm(x)); else norm(x + f(x))."""
        if norm_first:
            return w.node("AddOp", prefix + ".residual",
                          [x, fn(norm(prefix + ".norm", layer_norm, x, prefix + ".normed"))],
                          prefix + ".residual")
        r = w.node("AddOp", prefix + ".residual", [x, fn(x)], prefix + ".residual")
        return norm(prefix + ".norm", layer_norm, r, prefix + ".normed")

    def embed(prefix, emb, ids):
        table = w.weight(prefix + ".embedding", t(emb.weight))
        x = w.node("EmbeddingOp", prefix + ".embed", [ids, table], prefix + ".embedded",
                   scale=scale)
        return w.node("SinusoidalPositionOp", prefix + ".positions", [x], prefix + ".x0")

    mask = (w.node("PaddingMaskOp", "source.padding", ["source"], "source.padding",
                   pad_id=int(pad_id)) if pad_id is not None else None)
    x = embed("encoder", src_embedding, "source")
    for i, layer in enumerate(enc_layers):
        p = "encoder.%d" % i
        norm_first = bool(layer.norm_first)
        x = sublayer(p + ".self_attn", layer.norm1, x,
                     lambda n, p=p, layer=layer: attention(p + ".self_attn", layer.self_attn, n, n,
                                                           "Bidirectional", mask))
        x = sublayer(p + ".ffn", layer.norm2, x,
                     lambda n, p=p, layer=layer: feed_forward(p + ".ffn", layer, n))
    memory = norm("encoder.norm", transformer.encoder.norm, x, "memory")

    y = embed("decoder", tgt_embedding, "target")
    for i, layer in enumerate(dec_layers):
        p = "decoder.%d" % i
        norm_first = bool(layer.norm_first)
        y = sublayer(p + ".self_attn", layer.norm1, y,
                     lambda n, p=p, layer=layer: attention(p + ".self_attn", layer.self_attn, n, n,
                                                           "Causal", None))
        y = sublayer(p + ".cross_attn", layer.norm2, y,
                     lambda n, p=p, layer=layer: attention(p + ".cross_attn", layer.multihead_attn,
                                                           n, memory, "Cross", mask))
        y = sublayer(p + ".ffn", layer.norm3, y,
                     lambda n, p=p, layer=layer: feed_forward(p + ".ffn", layer, n))
    y = norm("decoder.norm", transformer.decoder.norm, y, "decoder.out")
    gw = w.weight("generator.weight", t(generator.weight))
    gb = w.weight("generator.bias", t(generator.bias)) if generator.bias is not None else ""
    w.node("LinearOp", "generator", [y, gw, gb], "logits")
    w.write(path, tokenizer=tokenizer)
    return path
