"""Reference GPT-2 and Llama modules in PyTorch, written from the
architectures' definitions (GPT-2: Radford et al. 2019 with the GPT-2
code's layout; Llama: Touvron et al. 2023), independent of Kiln. Parameter
names and layouts are Hugging Face's (GPT2LMHeadModel, LlamaForCausalLM),
so `state_dict()` exports without renaming. Config keys are Hugging Face's
(GPT-2 also n_inner and tie_word_embeddings; Llama also num_key_value_heads,
rope_theta, rope_scaling (linear, llama3, yarn) or rope_parameters, head_dim,
tie_word_embeddings, qkv_bias for Qwen2-style q/k/v biases, and
model_type "qwen3" or architectures ["Qwen3ForCausalLM"] for Qwen3's
per-head q/k norms, "mistral" / ["MistralForCausalLM"] for Mistral's
sliding_window), with their defaults. Forward takes token ids [..., seq]
and returns logits [..., seq, vocab] over the whole sequence with the causal
mask (the training form; examples/ trains with these modules).
"""
import math

import torch
from torch import nn


def causal_attention(q, k, v, heads, kv_heads, kv_dtype=None, window=None):
    """q: [..., S, H*D], k/v: [..., S, KVH*D] -> [..., S, H*D]; query head h
    reads kv head h // (H / KVH). With `kv_dtype` (e.g. torch.float16), the
    keys and values are read rounded to it, as an inference engine's KV
    cache of that type holds them. With a sliding `window` W, query i sees
    keys i - W < j <= i (Mistral)."""
    if kv_dtype is not None:
        k, v = k.to(kv_dtype).to(q.dtype), v.to(kv_dtype).to(q.dtype)
    *lead, s, width = q.shape
    d = width // heads
    q = q.view(*lead, s, heads, d).transpose(-3, -2)
    k = k.view(*lead, s, kv_heads, d).transpose(-3, -2).repeat_interleave(heads // kv_heads, dim=-3)
    v = v.view(*lead, s, kv_heads, d).transpose(-3, -2).repeat_interleave(heads // kv_heads, dim=-3)
    scores = q @ k.transpose(-1, -2) / math.sqrt(d)
    mask = torch.triu(torch.ones(s, s, dtype=torch.bool), diagonal=1)
    if window:
        mask |= torch.tril(torch.ones(s, s, dtype=torch.bool), diagonal=-window)
    scores = scores.masked_fill(mask, float("-inf"))
    return (scores.softmax(-1) @ v).transpose(-3, -2).reshape(*lead, s, heads * d)


class Conv1D(nn.Module):
    """GPT-2's linear layer: weight stored [in, out]."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.empty(n_out))

    def forward(self, x):
        return x @ self.weight + self.bias


class GPT2Block(nn.Module):
    def __init__(self, d, heads, eps, inner=None):
        super().__init__()
        self.heads = heads
        inner = inner or 4 * d
        self.ln_1 = nn.LayerNorm(d, eps=eps)
        self.attn = nn.Module()
        self.attn.c_attn = Conv1D(d, 3 * d)
        self.attn.c_proj = Conv1D(d, d)
        self.ln_2 = nn.LayerNorm(d, eps=eps)
        self.mlp = nn.Module()
        self.mlp.c_fc = Conv1D(d, inner)
        self.mlp.c_proj = Conv1D(inner, d)

    def forward(self, x):
        q, k, v = self.attn.c_attn(self.ln_1(x)).chunk(3, dim=-1)
        x = x + self.attn.c_proj(causal_attention(q, k, v, self.heads, self.heads,
                                                  getattr(self, "kv_dtype", None)))
        h = self.mlp.c_fc(self.ln_2(x))
        # GPT-2's "gelu_new": the tanh approximation.
        h = 0.5 * h * (1 + torch.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h ** 3)))
        return x + self.mlp.c_proj(h)


class GPT2(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg["n_embd"]
        self.transformer = nn.Module()
        self.transformer.wte = nn.Embedding(cfg["vocab_size"], d)
        self.transformer.wpe = nn.Embedding(cfg["n_positions"], d)
        self.transformer.h = nn.ModuleList(
            GPT2Block(d, cfg["n_head"], cfg.get("layer_norm_epsilon", 1e-5), cfg.get("n_inner"))
            for _ in range(cfg["n_layer"]))
        self.transformer.ln_f = nn.LayerNorm(d, eps=cfg.get("layer_norm_epsilon", 1e-5))
        self.lm_head = nn.Linear(d, cfg["vocab_size"], bias=False)
        if cfg.get("tie_word_embeddings", True):  # GPT-2 ties them
            self.lm_head.weight = self.transformer.wte.weight

    def forward(self, ids):
        t = self.transformer
        x = t.wte(ids) + t.wpe(torch.arange(ids.shape[-1]))
        for block in t.h:
            x = block(x)
        return self.lm_head(t.ln_f(x))


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * gain; the gain is w, or 1 + w with
    `unit_offset` (Gemma, whose w start at 0)."""

    def __init__(self, d, eps, unit_offset=False):
        super().__init__()
        self.eps = eps
        self.unit_offset = unit_offset
        self.weight = nn.Parameter(torch.zeros(d) if unit_offset else torch.ones(d))

    def forward(self, x):
        gain = 1 + self.weight if self.unit_offset else self.weight
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * gain


def rope_frequencies(d, theta, scaling=None, max_positions=None):
    """(inv_freq [d/2] float64, attention scaling) of RoPE with Hugging
    Face's rope_scaling (transformers' modeling_rope_utils definitions):
    "linear" divides every frequency by the factor; "llama3" (Llama 3.1)
    keeps wavelengths under original/high_freq_factor, divides those over
    original/low_freq_factor by the factor and blends in between; "yarn"
    (Peng et al. 2023) mixes interpolated and extrapolated frequencies with
    a linear ramp over the correction range and scales cos/sin by
    0.1 ln(factor) + 1 unless attention_factor is given."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    kind = (scaling or {}).get("rope_type", (scaling or {}).get("type", "default"))
    if kind == "default":
        return inv_freq, 1.0
    factor = scaling["factor"]
    if kind == "linear":
        return inv_freq / factor, 1.0
    if kind == "llama3":
        old = scaling["original_max_position_embeddings"]
        low_wavelen = old / scaling["low_freq_factor"]
        high_wavelen = old / scaling["high_freq_factor"]
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
        smooth = (old / wavelen - scaling["low_freq_factor"]) / (
            scaling["high_freq_factor"] - scaling["low_freq_factor"])
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
        return torch.where(medium, smoothed, scaled), 1.0
    assert kind == "yarn", kind
    old = scaling.get("original_max_position_embeddings") or max_positions
    beta_fast, beta_slow = scaling.get("beta_fast") or 32, scaling.get("beta_slow") or 1

    def correction_dim(rotations):
        return d * math.log(old / (rotations * 2 * math.pi)) / (2 * math.log(theta))
    low = max(math.floor(correction_dim(beta_fast)), 0)
    high = min(math.ceil(correction_dim(beta_slow)), d - 1)
    if low == high:
        high += 0.001
    ramp = ((torch.arange(d // 2, dtype=torch.float64) - low) / (high - low)).clamp(0, 1)
    extrapolation = 1 - ramp
    inv_freq = inv_freq / factor * (1 - extrapolation) + inv_freq * extrapolation
    attention = scaling.get("attention_factor")
    if attention is None:
        attention = 0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0
    return inv_freq, attention


def rotate_half_rope(x, heads, theta, scaling=None, max_positions=None):
    """RoPE in the rotate-half layout: feature i pairs with i + d/2."""
    *lead, s, width = x.shape
    d = width // heads
    inv_freq, attention = rope_frequencies(d, theta, scaling, max_positions)
    angles = torch.arange(s, dtype=torch.float64)[:, None] * inv_freq[None, :]
    cos = (attention * torch.cat([angles.cos()] * 2, -1)).to(x.dtype)[:, None, :]
    sin = (attention * torch.cat([angles.sin()] * 2, -1)).to(x.dtype)[:, None, :]
    x = x.view(*lead, s, heads, d)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    rotated = torch.cat([-x2, x1], -1)
    return (x * cos + rotated * sin).reshape(*lead, s, heads * d)


def gated_mlp(d, inter):
    """A gated feed-forward's projections (Hugging Face's mlp names)."""
    mlp = nn.Module()
    mlp.gate_proj = nn.Linear(d, inter, bias=False)
    mlp.up_proj = nn.Linear(d, inter, bias=False)
    mlp.down_proj = nn.Linear(inter, d, bias=False)
    return mlp


def is_mistral(cfg):
    return cfg.get("model_type") == "mistral" or "MistralForCausalLM" in cfg.get(
        "architectures", [])


def is_qwen3(cfg):
    return cfg.get("model_type") == "qwen3" or "Qwen3ForCausalLM" in cfg.get("architectures", [])


def per_head(norm, x, heads):
    """norm applied to each head of x [..., S, heads * D] on its own."""
    *lead, s, width = x.shape
    return norm(x.view(*lead, s, heads, width // heads)).reshape(*lead, s, width)


class LlamaLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, inter = cfg["hidden_size"], cfg["intermediate_size"]
        self.heads = cfg["num_attention_heads"]
        self.kv_heads = cfg.get("num_key_value_heads") or self.heads
        # transformers 5 keeps rope_theta and the scaling in rope_parameters.
        params = cfg.get("rope_parameters") or {}
        self.theta = cfg.get("rope_theta") or params.get("rope_theta") or 10000.0
        self.rope_scaling = cfg.get("rope_scaling") or params or None
        self.max_positions = cfg.get("max_position_embeddings")
        # Mistral: every layer attends over a sliding window.
        self.window = cfg.get("sliding_window") if is_mistral(cfg) else None
        hd = cfg.get("head_dim") or d // self.heads
        # Qwen2: q/k/v projections with biases (o_proj without).
        qkv_bias = bool(cfg.get("qkv_bias"))
        self.input_layernorm = RMSNorm(d, cfg.get("rms_norm_eps", 1e-6))
        self.self_attn = nn.Module()
        self.self_attn.q_proj = nn.Linear(d, self.heads * hd, bias=qkv_bias)
        self.self_attn.k_proj = nn.Linear(d, self.kv_heads * hd, bias=qkv_bias)
        self.self_attn.v_proj = nn.Linear(d, self.kv_heads * hd, bias=qkv_bias)
        self.self_attn.o_proj = nn.Linear(self.heads * hd, d, bias=False)
        # Qwen3: an RMS norm over each head of q and of k (head_dim gains),
        # after the projections and before RoPE.
        self.qk_norm = is_qwen3(cfg)
        if self.qk_norm:
            self.self_attn.q_norm = RMSNorm(hd, cfg.get("rms_norm_eps", 1e-6))
            self.self_attn.k_norm = RMSNorm(hd, cfg.get("rms_norm_eps", 1e-6))
        self.post_attention_layernorm = RMSNorm(d, cfg.get("rms_norm_eps", 1e-6))
        self.mlp = gated_mlp(d, inter)

    def forward(self, x):
        a = self.self_attn
        h = self.input_layernorm(x)
        rope = (self.theta, self.rope_scaling, self.max_positions)
        q, k = a.q_proj(h), a.k_proj(h)
        if self.qk_norm:
            q = per_head(a.q_norm, q, self.heads)
            k = per_head(a.k_norm, k, self.kv_heads)
        q = rotate_half_rope(q, self.heads, *rope)
        k = rotate_half_rope(k, self.kv_heads, *rope)
        x = x + a.o_proj(causal_attention(q, k, a.v_proj(h), self.heads, self.kv_heads,
                                          getattr(self, "kv_dtype", None), self.window))
        h = self.post_attention_layernorm(x)
        m = self.mlp
        return x + m.down_proj(nn.functional.silu(m.gate_proj(h)) * m.up_proj(h))


class Llama(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.model = nn.Module()
        self.model.embed_tokens = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.model.layers = nn.ModuleList(LlamaLayer(cfg) for _ in range(cfg["num_hidden_layers"]))
        self.model.norm = RMSNorm(cfg["hidden_size"], cfg.get("rms_norm_eps", 1e-6))
        self.lm_head = nn.Linear(cfg["hidden_size"], cfg["vocab_size"], bias=False)
        if cfg.get("tie_word_embeddings"):
            self.lm_head.weight = self.model.embed_tokens.weight

    def forward(self, ids):
        x = self.model.embed_tokens(ids)
        for layer in self.model.layers:
            x = layer(x)
        return self.lm_head(self.model.norm(x))


def GemmaRMSNorm(d, eps):
    """Gemma's RMS norm: gains are stored as w and scale by 1 + w."""
    return RMSNorm(d, eps, unit_offset=True)


def gemma3_sliding(cfg, i):
    """Whether Gemma 3's layer i is local (sliding window): layer_types, or
    all but every sliding_window_pattern-th layer."""
    types = cfg.get("layer_types")
    if types:
        return types[i] == "sliding_attention"
    return bool((i + 1) % cfg.get("sliding_window_pattern", 6))


class Gemma3Layer(nn.Module):
    """Gemma 3's decoder layer (Gemma Team 2025; transformers'
    Gemma3DecoderLayer): RMS norms before and after attention and the
    feed-forward, per-head q/k norms before RoPE, q scaled by
    query_pre_attn_scalar^-1/2, local layers over a sliding window with
    RoPE base rope_local_base_freq (unscaled), global layers with
    rope_theta and rope_scaling, GeGLU with the tanh GELU."""

    def __init__(self, cfg, i):
        super().__init__()
        d, inter = cfg["hidden_size"], cfg["intermediate_size"]
        eps = cfg.get("rms_norm_eps", 1e-6)
        self.heads = cfg["num_attention_heads"]
        self.kv_heads = cfg.get("num_key_value_heads") or self.heads
        self.hd = hd = cfg.get("head_dim") or 256
        self.scale = cfg.get("query_pre_attn_scalar", 256) ** -0.5
        self.sliding = gemma3_sliding(cfg, i)
        self.window = cfg.get("sliding_window", 4096) if self.sliding else None
        if self.sliding:
            self.rope = (cfg.get("rope_local_base_freq", 10000.0), None, None)
        else:
            self.rope = (cfg.get("rope_theta", 1000000.0), cfg.get("rope_scaling"),
                         cfg.get("max_position_embeddings"))
        self.input_layernorm = GemmaRMSNorm(d, eps)
        self.self_attn = nn.Module()
        self.self_attn.q_proj = nn.Linear(d, self.heads * hd, bias=False)
        self.self_attn.k_proj = nn.Linear(d, self.kv_heads * hd, bias=False)
        self.self_attn.v_proj = nn.Linear(d, self.kv_heads * hd, bias=False)
        self.self_attn.o_proj = nn.Linear(self.heads * hd, d, bias=False)
        self.self_attn.q_norm = GemmaRMSNorm(hd, eps)
        self.self_attn.k_norm = GemmaRMSNorm(hd, eps)
        self.post_attention_layernorm = GemmaRMSNorm(d, eps)
        self.pre_feedforward_layernorm = GemmaRMSNorm(d, eps)
        self.post_feedforward_layernorm = GemmaRMSNorm(d, eps)
        self.mlp = gated_mlp(d, inter)

    def forward(self, x):
        a = self.self_attn
        h = self.input_layernorm(x)
        q = rotate_half_rope(per_head(a.q_norm, a.q_proj(h), self.heads), self.heads, *self.rope)
        k = rotate_half_rope(per_head(a.k_norm, a.k_proj(h), self.kv_heads), self.kv_heads,
                             *self.rope)
        # causal_attention divides by sqrt(head_dim): q carries the rest.
        q = q * (self.scale * math.sqrt(self.hd))
        o = a.o_proj(causal_attention(q, k, a.v_proj(h), self.heads, self.kv_heads,
                                      getattr(self, "kv_dtype", None), self.window))
        x = x + self.post_attention_layernorm(o)
        h = self.pre_feedforward_layernorm(x)
        m = self.mlp
        f = m.down_proj(nn.functional.gelu(m.gate_proj(h), approximate="tanh") * m.up_proj(h))
        return x + self.post_feedforward_layernorm(f)


class Gemma3(nn.Module):
    """Gemma3ForCausalLM: embeddings scaled by sqrt(hidden_size), the
    layers, a final Gemma RMS norm, the head tied to the embeddings unless
    tie_word_embeddings is false."""

    def __init__(self, cfg):
        super().__init__()
        self.model = nn.Module()
        self.model.embed_tokens = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.model.layers = nn.ModuleList(Gemma3Layer(cfg, i)
                                          for i in range(cfg["num_hidden_layers"]))
        self.model.norm = GemmaRMSNorm(cfg["hidden_size"], cfg.get("rms_norm_eps", 1e-6))
        self.lm_head = nn.Linear(cfg["hidden_size"], cfg["vocab_size"], bias=False)
        if cfg.get("tie_word_embeddings", True):
            self.lm_head.weight = self.model.embed_tokens.weight
        self.embed_scale = math.sqrt(cfg["hidden_size"])

    def forward(self, ids):
        x = self.model.embed_tokens(ids) * self.embed_scale
        for layer in self.model.layers:
            x = layer(x)
        return self.lm_head(self.model.norm(x))


def model_class(family):
    """The module of a family name the tests use: "gpt2", "gemma3", else
    Llama (Llama, Mistral, Qwen2/3 through their configs)."""
    return {"gpt2": GPT2, "gemma3": Gemma3}.get(family, Llama)


def set_kv_dtype(model, dtype):
    """Every layer of `model` (GPT2 or Llama) reads its keys and values
    rounded to `dtype` (None: as computed)."""
    for m in model.modules():
        if isinstance(m, (GPT2Block, LlamaLayer, Gemma3Layer)):
            m.kv_dtype = dtype
    return model


def randomize(model, seed):
    """Random weights with spread: matrices ~ N(0, 1/fan_in), embeddings
    N(0, 1), norm gains 1 + N(0, 0.1), biases N(0, 0.1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            elif p.dim() == 1:
                p.copy_(1 + torch.randn(p.shape, generator=g) * 0.1)
            elif "wte" in name or "wpe" in name or "embed" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            else:
                fan_in = p.shape[0] if isinstance(getattr_path(model, name), Conv1D) else p.shape[1]
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))
    return model


def getattr_path(model, name):
    obj = model
    for part in name.split(".")[:-1]:
        obj = getattr(obj, part) if not part.isdigit() else obj[int(part)]
    return obj
