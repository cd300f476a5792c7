"""A GGUF (version 3) writer for test models, written from the format's
specification with numpy and struct (independent of llama.cpp's gguf-py).

File layout (all integers little-endian):
  header       "GGUF" | uint32 version=3 | uint64 tensor_count | uint64 kv_count
  metadata     kv_count x (string key | uint32 value_type | value)
               string = uint64 byte length + UTF-8 bytes (no terminator)
               array  = uint32 element_type | uint64 count | elements
  tensor infos tensor_count x (string name | uint32 n_dims |
               uint64 dims[n_dims], innermost (contiguous) first |
               uint32 ggml_type | uint64 offset into the data section)
  padding      zeros up to a multiple of the alignment (general.alignment,
               uint32, default 32)
  data         each tensor at its offset, offsets multiples of the alignment

Tensor types: F32 (0), F16 (1), Q8_0 (8: blocks of 32 along the innermost
dimension, each an fp16 scale d = max|x|/127 and 32 int8 q = round(x/d),
34 bytes) and BF16 (30).

Model writers for the reference modules of test/e2e/reference.py (Hugging
Face layouts): write_llama_gguf and write_gpt2_gguf, with the names, key
types and q/k layout llama.cpp's convert_hf_to_gguf.py uses.
"""
import io
import os
import struct
import sys

import numpy as np

from hf_checkpoint import bytes_to_unicode  # GPT-2's byte -> character map

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "compiler", "kiln_export"))
from kiln_export.models import llama_rope  # noqa: E402

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
DEFAULT_ALIGNMENT = 32

# Metadata value types.
UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)

_SCALAR_FMT = {
    UINT8: "<B", INT8: "<b", UINT16: "<H", INT16: "<h", UINT32: "<I", INT32: "<i",
    FLOAT32: "<f", BOOL: "<?", UINT64: "<Q", INT64: "<q", FLOAT64: "<d",
}
_NUMPY_OF = {
    UINT8: "<u1", INT8: "<i1", UINT16: "<u2", INT16: "<i2", UINT32: "<u4", INT32: "<i4",
    FLOAT32: "<f4", BOOL: "<u1", UINT64: "<u8", INT64: "<i8", FLOAT64: "<f8",
}

# Tensor types (ggml_type) and their block sizes / bytes per block.
GGML_TYPES = {"F32": 0, "F16": 1, "Q8_0": 8, "BF16": 30}
_BLOCK = {"F32": (1, 4), "F16": (1, 2), "Q8_0": (32, 34), "BF16": (1, 2)}
# llama_ftype for general.file_type.
FILE_TYPES = {"F32": 0, "F16": 1, "Q8_0": 7, "BF16": 32}

# llama.cpp's token attributes for tokenizer.ggml.token_type.
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED, TOKEN_BYTE = 1, 2, 3, 4, 5, 6


class Value:
    """A metadata value with an explicit GGUF type; for arrays, `type` is
    ARRAY and `elem` the element type."""

    def __init__(self, type, value, elem=None):
        self.type, self.value, self.elem = type, value, elem


def u32(v): return Value(UINT32, int(v))
def i32(v): return Value(INT32, int(v))
def u64(v): return Value(UINT64, int(v))
def f32(v): return Value(FLOAT32, float(v))
def f64(v): return Value(FLOAT64, float(v))
def boolean(v): return Value(BOOL, bool(v))
def string(v): return Value(STRING, str(v))
def array(elem, values): return Value(ARRAY, list(values), elem)


def _infer(value):
    """Python value -> Value. Ints become UINT32 if they fit (as gguf-py and
    llama.cpp expect for counts and token ids), else INT32/UINT64/INT64;
    floats FLOAT32; lists arrays of the first element's inferred type."""
    if isinstance(value, Value):
        return value
    if isinstance(value, (bool, np.bool_)):
        return Value(BOOL, bool(value))
    if isinstance(value, (int, np.integer)):
        v = int(value)
        if 0 <= v < 2 ** 32:
            return Value(UINT32, v)
        if -2 ** 31 <= v < 0:
            return Value(INT32, v)
        return Value(UINT64 if v >= 0 else INT64, v)
    if isinstance(value, (float, np.floating)):
        return Value(FLOAT32, float(value))
    if isinstance(value, str):
        return Value(STRING, value)
    if isinstance(value, (list, tuple, np.ndarray)):
        values = list(value)
        if not values:
            raise ValueError("cannot infer the element type of an empty array; use array(TYPE, [])")
        first = _infer(values[0])
        elem = first.type
        if elem in (UINT32, INT32) and all(isinstance(x, (int, np.integer)) for x in values):
            lo, hi = min(int(x) for x in values), max(int(x) for x in values)
            elem = UINT32 if lo >= 0 and hi < 2 ** 32 else INT32 if -2 ** 31 <= lo and hi < 2 ** 31 else INT64
        return Value(ARRAY, values, elem)
    raise TypeError("no GGUF type for %r" % (value,))


def _string_bytes(s):
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    return struct.pack("<Q", len(b)) + b


def _value_bytes(v):
    if v.type == STRING:
        return _string_bytes(v.value)
    if v.type == ARRAY:
        if v.elem == ARRAY:
            raise ValueError("nested arrays are not supported")
        head = struct.pack("<IQ", v.elem, len(v.value))
        if v.elem == STRING:
            return head + b"".join(_string_bytes(s) for s in v.value)
        return head + np.asarray(v.value).astype(_NUMPY_OF[v.elem]).tobytes()
    return struct.pack(_SCALAR_FMT[v.type], v.value)


# ---- tensor encodings ----------------------------------------------------------

def f32_to_bf16_bits(x):
    """float32 -> bfloat16 bit patterns (uint16), round to nearest even, NaNs
    kept quiet (as ggml's GGML_FP32_TO_BF16)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return np.where(nan, (u >> 16) | 64, rounded).astype(np.uint16)


def quantize_q8_0(x):
    """float32 [..., n] (n % 32 == 0) -> Q8_0 bytes: per block of 32, fp16 d =
    max|x|/127 then int8 q = round(x/d) computed with the float32 d, rounding
    half away from zero (ggml's quantize_row_q8_0_ref)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.shape[-1] % 32:
        raise ValueError("Q8_0 needs the innermost dimension divisible by 32, got %d" % x.shape[-1])
    blocks = x.reshape(-1, 32)
    d = (np.abs(blocks).max(axis=1) / np.float32(127)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
    v = blocks * inv[:, None]
    q = (np.sign(v) * np.floor(np.abs(v) + np.float32(0.5))).astype(np.int8)
    out = np.empty((blocks.shape[0], 34), dtype=np.uint8)
    out[:, :2] = d.astype("<f2").view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q.view(np.uint8)
    return out.tobytes()


def dequantize_q8_0(data, shape):
    """Inverse of quantize_q8_0 (for tests): bytes -> float32 of `shape`."""
    raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, 34)
    d = raw[:, :2].copy().view("<f2").astype(np.float32)
    q = raw[:, 2:].copy().view(np.int8).astype(np.float32)
    return (q * d).reshape(shape)


def encode_tensor(x, dtype):
    """numpy array (row-major, last axis innermost) -> raw bytes of ggml type `dtype`."""
    x = np.asarray(x)
    if dtype == "F32":
        return np.ascontiguousarray(x, dtype="<f4").tobytes()
    if dtype == "F16":
        return np.ascontiguousarray(x, dtype=np.float32).astype("<f2").tobytes()
    if dtype == "BF16":
        return f32_to_bf16_bits(x).astype("<u2").tobytes()
    if dtype == "Q8_0":
        return quantize_q8_0(x)
    raise ValueError("unsupported tensor type %r (have %s)" % (dtype, ", ".join(GGML_TYPES)))


class LazyTensor:
    """A tensor made only when the file is written: `make()` returns the
    array (numpy-style `shape`). GGUFWriter.write() streams such tensors
    one at a time, so a file larger than memory (a 7 B model) can be
    written; write_llama_gguf takes them in its state dict (written as
    given: no q/k permutation, which random weights do not need)."""

    def __init__(self, shape, make):
        self.shape = tuple(int(d) for d in shape)
        self.make = make


class GGUFWriter:
    """Collects metadata and tensors, then write() emits the file.

        w = GGUFWriter("m.gguf")
        w.add("general.architecture", "llama")          # type inferred
        w.add("llama.rope.freq_base", f32(10000.0))     # or explicit
        w.add_tensor("token_embd.weight", emb, "F16")   # numpy [rows, cols]
        w.write()

    Tensor shapes are given numpy-style (outermost first); the file stores
    ggml dims, innermost first, so a [rows, cols] matrix has dims [cols, rows].
    """

    def __init__(self, path, alignment=DEFAULT_ALIGNMENT):
        if alignment <= 0 or alignment % 8:
            raise ValueError("alignment must be a positive multiple of 8")
        self.path = path
        self.alignment = alignment
        self.kv = {}
        self.tensors = []  # (name, numpy shape, type name, bytes)
        if alignment != DEFAULT_ALIGNMENT:
            self.add("general.alignment", u32(alignment))

    def add(self, key, value):
        if key in self.kv:
            raise ValueError("duplicate metadata key %r" % key)
        self.kv[key] = _infer(value)

    def add_tensor(self, name, x, dtype="F32"):
        name_len = len(name.encode("utf-8"))
        if name_len >= 64:
            raise ValueError("tensor name %r is longer than ggml's 63 bytes" % name)
        if any(t[0] == name for t in self.tensors):
            raise ValueError("duplicate tensor %r" % name)
        lazy = isinstance(x, LazyTensor)
        if not lazy:
            x = np.asarray(x)
        ndim = len(x.shape)
        if ndim < 1 or ndim > 4:
            raise ValueError("tensor %r: ggml tensors have 1 to 4 dims, got shape %s" % (name, x.shape))
        block, _ = _BLOCK[dtype]
        if x.shape[-1] % block:
            raise ValueError("tensor %r: innermost dim %d not divisible by %s's block of %d"
                             % (name, x.shape[-1], dtype, block))
        shape = tuple(int(d) for d in x.shape)
        if lazy:
            elems = 1
            for d in shape:
                elems *= d
            size = elems // block * _BLOCK[dtype][1]
            self.tensors.append((name, shape, dtype, (x, size)))
        else:
            self.tensors.append((name, shape, dtype, encode_tensor(x, dtype)))

    def _pad(self, n):
        return (-n) % self.alignment

    @staticmethod
    def _size(data):
        return data[1] if isinstance(data, tuple) else len(data)

    def _header(self):
        out = bytearray()
        out += GGUF_MAGIC
        out += struct.pack("<IQQ", GGUF_VERSION, len(self.tensors), len(self.kv))
        for key, v in self.kv.items():
            out += _string_bytes(key)
            out += struct.pack("<I", v.type)
            out += _value_bytes(v)
        offset = 0
        for name, shape, dtype, data in self.tensors:
            out += _string_bytes(name)
            out += struct.pack("<I", len(shape))
            out += struct.pack("<%dQ" % len(shape), *reversed(shape))
            out += struct.pack("<IQ", GGML_TYPES[dtype], offset)
            size = self._size(data)
            offset += size + self._pad(size)
        out += b"\0" * self._pad(len(out))
        return out

    def _stream(self, f):
        """Writes the file to `f`, making lazy tensors one at a time."""
        f.write(self._header())
        for name, shape, dtype, data in self.tensors:
            if isinstance(data, tuple):
                lazy, size = data
                x = np.asarray(lazy.make())
                if x.shape != shape:
                    raise ValueError("tensor %r: made shape %s, declared %s" % (name, x.shape, shape))
                data = encode_tensor(x, dtype)
                assert len(data) == size
            f.write(data)
            f.write(b"\0" * self._pad(len(data)))

    def to_bytes(self):
        buf = io.BytesIO()
        self._stream(buf)
        return buf.getvalue()

    def write(self):
        with open(self.path, "wb") as f:
            self._stream(f)


# ---- model writers ------------------------------------------------------------

def _np(t):
    """torch tensor or array -> float32 numpy (a LazyTensor is kept)."""
    if isinstance(t, LazyTensor):
        return t
    if hasattr(t, "detach"):
        t = t.detach().cpu().float().numpy()
    return np.asarray(t, dtype=np.float32)


def _matrix_dtype(x, dtype):
    if dtype not in GGML_TYPES:
        raise ValueError("dtype must be one of %s, got %r" % (", ".join(GGML_TYPES), dtype))
    # Q8_0 needs rows of whole blocks; fall back to F16 like convert_hf_to_gguf.
    if dtype == "Q8_0" and x.shape[-1] % 32:
        return "F16"
    return dtype


def permute_qk(w, n_head):
    """HF rotate-half rows -> GGUF interleaved pairs (convert_hf_to_gguf's
    LlamaModel.permute): within each head, rows [0..d/2) and [d/2..d) are
    interleaved so that rotated pairs (i, i + d/2) become (2i, 2i + 1)."""
    w = np.asarray(w)
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def _filler_pieces(count, space):
    """`count` distinct printable pieces: the space marker, single letters and
    digits, space marker + letter, then letter pairs."""
    alphabet = "etaoinshrdlcumwfgypbvkjxqzETAOINSHRDLCUMWFGYPBVKJXQZ0123456789"
    pieces = [space] + list(alphabet) + [space + c for c in alphabet]
    pieces += [a + b for a in alphabet for b in alphabet] + [space + a + b for a in alphabet for b in alphabet]
    if count > len(pieces):
        pieces += ["<filler_%d>" % i for i in range(count - len(pieces))]
    return pieces[:count]


def minimal_llama_vocab(n_vocab):
    """A valid SentencePiece ("llama") vocabulary of n_vocab tokens: <unk>,
    <s>, </s>, the 256 byte tokens <0x00>..<0xFF>, then filler pieces."""
    if n_vocab < 259:
        raise ValueError("a minimal llama vocabulary needs >= 259 tokens (3 special + 256 bytes), "
                         "got vocab_size %d; pass tokenizer={...}" % n_vocab)
    tokens = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    types = [TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_CONTROL] + [TOKEN_BYTE] * 256
    scores = [0.0] * len(tokens)
    filler = _filler_pieces(n_vocab - len(tokens), "\u2581")
    tokens += filler
    types += [TOKEN_NORMAL] * len(filler)
    scores += [-float(i + 1) for i in range(len(filler))]
    return {"model": "llama", "tokens": tokens, "scores": scores, "token_types": types,
            "bos": 1, "eos": 2, "unk": 0, "add_bos": True, "add_space_prefix": True}


def minimal_gpt2_vocab(n_vocab):
    """A valid byte-level BPE ("gpt2") vocabulary of n_vocab tokens: the 256
    byte characters, filler tokens made by merges, and <|endoftext|> last
    (control; bos and eos)."""
    if n_vocab < 257:
        raise ValueError("a minimal gpt2 vocabulary needs >= 257 tokens (256 bytes + <|endoftext|>), "
                         "got vocab_size %d; pass tokenizer={...}" % n_vocab)
    b2u = bytes_to_unicode()
    tokens = [b2u[b] for b in range(256)]
    have = set(tokens)
    merges = []
    space = b2u[ord(" ")]
    for piece in _filler_pieces(4 * n_vocab, space):
        if len(tokens) == n_vocab - 1:
            break
        if piece in have or piece.startswith("<"):
            continue
        # A merge whose two sides are already tokens: first char + rest.
        left, right = piece[0], piece[1:]
        if left in have and right in have:
            merges.append(left + " " + right)
            tokens.append(piece)
            have.add(piece)
    while len(tokens) < n_vocab - 1:
        tokens.append("<filler_%d>" % len(tokens))
    tokens.append("<|endoftext|>")
    types = [TOKEN_NORMAL] * (n_vocab - 1) + [TOKEN_CONTROL]
    eot = n_vocab - 1
    return {"model": "gpt2", "pre": "gpt-2", "tokens": tokens, "token_types": types, "merges": merges,
            "bos": eot, "eos": eot, "add_bos": False}


def _add_tokenizer(w, tok, n_vocab, model):
    tok = dict(tok)
    tok.setdefault("model", model)
    if tok["model"] == "gpt2":
        tok.setdefault("pre", "gpt-2" if model == "gpt2" else "default")
    tokens = list(tok["tokens"])
    if len(tokens) != n_vocab:
        raise ValueError("tokenizer has %d tokens, the model's vocab_size is %d" % (len(tokens), n_vocab))
    w.add("tokenizer.ggml.model", string(tok["model"]))
    if tok.get("pre"):
        w.add("tokenizer.ggml.pre", string(tok["pre"]))
    w.add("tokenizer.ggml.tokens", array(STRING, tokens))
    if tok.get("scores") is not None:
        w.add("tokenizer.ggml.scores", array(FLOAT32, tok["scores"]))
    types = tok.get("token_types")
    if types is None:
        types = [TOKEN_NORMAL] * n_vocab
    if len(types) != n_vocab:
        raise ValueError("token_types has %d entries for %d tokens" % (len(types), n_vocab))
    w.add("tokenizer.ggml.token_type", array(INT32, types))
    if tok.get("merges") is not None:
        w.add("tokenizer.ggml.merges", array(STRING, tok["merges"]))
    for field, key in (("bos", "bos_token_id"), ("eos", "eos_token_id"), ("unk", "unknown_token_id"),
                       ("pad", "padding_token_id"), ("eot", "eot_token_id"),
                       ("eom", "eom_token_id")):
        if tok.get(field) is not None:
            w.add("tokenizer.ggml." + key, u32(tok[field]))
    for field, key in (("add_bos", "add_bos_token"), ("add_eos", "add_eos_token"),
                       ("add_space_prefix", "add_space_prefix")):
        if tok.get(field) is not None:
            w.add("tokenizer.ggml." + key, boolean(tok[field]))


def _tied(state_dict, a, b):
    """Whether state dict entries a and b are one tensor (or equal)."""
    if b not in state_dict:
        return True
    x, y = state_dict[a], state_dict[b]
    if hasattr(x, "data_ptr") and hasattr(y, "data_ptr") and x.data_ptr() == y.data_ptr():
        return True
    return False


def _add_rope_scaling(w, cfg, head_dim, arch):
    """cfg's rope_scaling as llama.cpp's convert_hf_to_gguf.py writes it:
    "llama3" as the rope_freqs.weight tensor (the factors kiln_export
    computes: gguf_parity checks them against the PyTorch reference's
    frequencies and llama.cpp), "linear" and "yarn" as rope.scaling.* keys."""
    rs = cfg.get("rope_scaling")
    kind = (rs or {}).get("rope_type", (rs or {}).get("type", "default"))
    if kind == "default":
        return
    if kind == "llama3":
        factors = llama_rope(cfg, "Llama", head_dim)["freq_factors"]
        w.add_tensor("rope_freqs.weight", np.array(factors, np.float32), "F32")
        return
    w.add(arch + ".rope.scaling.type", string(kind))
    w.add(arch + ".rope.scaling.factor", f32(rs["factor"]))
    if kind == "yarn":
        w.add(arch + ".rope.scaling.original_context_length",
              u32(rs.get("original_max_position_embeddings") or cfg["max_position_embeddings"]))


def write_llama_gguf(path, state_dict, cfg, *, dtype="F32", tokenizer=None, name="kiln-test-llama",
                     edit=None, arch="llama"):
    """Writes a LlamaForCausalLM-layout state dict (reference.Llama) as a
    GGUF file of architecture `arch`: "llama" (q/k rows permuted to
    llama.cpp's interleaved-pairs RoPE layout), "qwen2" (q/k/v biases),
    "qwen3" (attn_q_norm / attn_k_norm) or "gemma3" (reference.Gemma3: its
    norms before and after attention and feed-forward, gains stored as
    1 + w, sliding_window, sliding_window_pattern and rope.freq_base_swa
    keys), all but llama unpermuted (rotate-half, NEOX in llama.cpp), as
    convert_hf_to_gguf.py writes them. Norm gains and
    biases stay F32; matrices use `dtype` (F32, F16, BF16, Q8_0).
    output.weight is written only when the embeddings are not tied (cfg
    tie_word_embeddings, or one shared tensor). edit(writer), when given,
    runs before the file is written (tests that damage metadata or
    tensors)."""
    sd = state_dict
    d = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    kv_heads = cfg.get("num_key_value_heads") or heads
    head_dim = cfg.get("head_dim") or d // heads
    n_layer = cfg["num_hidden_layers"]
    vocab = cfg["vocab_size"]
    tied = bool(cfg.get("tie_word_embeddings")) or _tied(sd, "model.embed_tokens.weight", "lm_head.weight")

    w = GGUFWriter(path)
    w.add("general.architecture", string(arch))
    w.add("general.name", string(name))
    w.add(arch + ".vocab_size", u32(vocab))
    w.add(arch + ".context_length", u32(cfg.get("max_position_embeddings", 2048)))
    w.add(arch + ".embedding_length", u32(d))
    w.add(arch + ".block_count", u32(n_layer))
    w.add(arch + ".feed_forward_length", u32(cfg["intermediate_size"]))
    w.add(arch + ".attention.head_count", u32(heads))
    w.add(arch + ".attention.head_count_kv", u32(kv_heads))
    if head_dim != d // heads:
        w.add(arch + ".attention.key_length", u32(head_dim))
        w.add(arch + ".attention.value_length", u32(head_dim))
    w.add(arch + ".rope.dimension_count", u32(head_dim))
    w.add(arch + ".rope.freq_base", f32(cfg.get("rope_theta") or 10000.0))
    _add_rope_scaling(w, cfg, head_dim, arch)
    w.add(arch + ".attention.layer_norm_rms_epsilon", f32(cfg.get("rms_norm_eps", 1e-6)))
    if arch == "gemma3":
        w.add(arch + ".attention.sliding_window", u32(cfg.get("sliding_window", 4096)))
        w.add(arch + ".attention.sliding_window_pattern",
              u32(cfg.get("sliding_window_pattern", 6)))
        w.add(arch + ".rope.freq_base_swa", f32(cfg.get("rope_local_base_freq", 10000.0)))
    w.add("general.file_type", u32(FILE_TYPES[dtype]))
    _add_tokenizer(w, tokenizer if tokenizer is not None else minimal_llama_vocab(vocab), vocab, "llama")

    def mat(gguf_name, hf_name, permute_heads=None):
        x = _np(sd[hf_name])
        if permute_heads and arch == "llama" and not isinstance(x, LazyTensor):
            x = permute_qk(x, permute_heads)
        w.add_tensor(gguf_name, x, _matrix_dtype(x, dtype))

    def norm(gguf_name, hf_name):
        x = _np(sd[hf_name])
        if arch == "gemma3" and gguf_name.endswith("norm.weight"):
            x = x + 1  # Gemma's gains scale by 1 + w: the converter adds the 1
        w.add_tensor(gguf_name, x, "F32")

    mat("token_embd.weight", "model.embed_tokens.weight")
    for i in range(n_layer):
        p = "model.layers.%d." % i
        b = "blk.%d." % i
        norm(b + "attn_norm.weight", p + "input_layernorm.weight")
        mat(b + "attn_q.weight", p + "self_attn.q_proj.weight", heads)
        mat(b + "attn_k.weight", p + "self_attn.k_proj.weight", kv_heads)
        mat(b + "attn_v.weight", p + "self_attn.v_proj.weight")
        for part in "qkv" if arch == "qwen2" else "":
            norm(b + "attn_%s.bias" % part, p + "self_attn.%s_proj.bias" % part)
        for part in "qk" if arch in ("qwen3", "gemma3") else "":
            norm(b + "attn_%s_norm.weight" % part, p + "self_attn.%s_norm.weight" % part)
        mat(b + "attn_output.weight", p + "self_attn.o_proj.weight")
        if arch == "gemma3":
            norm(b + "post_attention_norm.weight", p + "post_attention_layernorm.weight")
            norm(b + "ffn_norm.weight", p + "pre_feedforward_layernorm.weight")
            norm(b + "post_ffw_norm.weight", p + "post_feedforward_layernorm.weight")
        else:
            norm(b + "ffn_norm.weight", p + "post_attention_layernorm.weight")
        mat(b + "ffn_gate.weight", p + "mlp.gate_proj.weight")
        mat(b + "ffn_up.weight", p + "mlp.up_proj.weight")
        mat(b + "ffn_down.weight", p + "mlp.down_proj.weight")
    norm("output_norm.weight", "model.norm.weight")
    if not tied:
        mat("output.weight", "lm_head.weight")
    if edit:
        edit(w)
    w.write()
    return path


def write_gpt2_gguf(path, state_dict, cfg, *, dtype="F32", tokenizer=None, name="kiln-test-gpt2",
                    edit=None):
    """Writes a GPT2LMHeadModel-layout state dict (reference.GPT2) as a GGUF
    file of architecture "gpt2". Conv1D weights ([in, out]) are transposed to
    [out, in] (ggml dims [in, out]); norms and biases stay F32; matrices use
    `dtype`. output.weight only when lm_head is not tied to wte. edit: as
    for write_llama_gguf."""
    sd = state_dict
    d = cfg["n_embd"]
    n_layer = cfg["n_layer"]
    vocab = cfg["vocab_size"]
    tied = cfg.get("tie_word_embeddings", True) or _tied(sd, "transformer.wte.weight", "lm_head.weight")

    w = GGUFWriter(path)
    w.add("general.architecture", string("gpt2"))
    w.add("general.name", string(name))
    w.add("gpt2.context_length", u32(cfg["n_positions"]))
    w.add("gpt2.embedding_length", u32(d))
    w.add("gpt2.block_count", u32(n_layer))
    w.add("gpt2.feed_forward_length", u32(cfg.get("n_inner") or 4 * d))
    w.add("gpt2.attention.head_count", u32(cfg["n_head"]))
    w.add("gpt2.attention.layer_norm_epsilon", f32(cfg.get("layer_norm_epsilon", 1e-5)))
    w.add("general.file_type", u32(FILE_TYPES[dtype]))
    _add_tokenizer(w, tokenizer if tokenizer is not None else minimal_gpt2_vocab(vocab), vocab, "gpt2")

    def mat(gguf_name, x):
        w.add_tensor(gguf_name, x, _matrix_dtype(x, dtype))

    def vec(gguf_name, hf_name):
        w.add_tensor(gguf_name, _np(sd[hf_name]), "F32")

    mat("token_embd.weight", _np(sd["transformer.wte.weight"]))
    mat("position_embd.weight", _np(sd["transformer.wpe.weight"]))
    for i in range(n_layer):
        p = "transformer.h.%d." % i
        b = "blk.%d." % i
        vec(b + "attn_norm.weight", p + "ln_1.weight")
        vec(b + "attn_norm.bias", p + "ln_1.bias")
        mat(b + "attn_qkv.weight", _np(sd[p + "attn.c_attn.weight"]).T)
        vec(b + "attn_qkv.bias", p + "attn.c_attn.bias")
        mat(b + "attn_output.weight", _np(sd[p + "attn.c_proj.weight"]).T)
        vec(b + "attn_output.bias", p + "attn.c_proj.bias")
        vec(b + "ffn_norm.weight", p + "ln_2.weight")
        vec(b + "ffn_norm.bias", p + "ln_2.bias")
        mat(b + "ffn_up.weight", _np(sd[p + "mlp.c_fc.weight"]).T)
        vec(b + "ffn_up.bias", p + "mlp.c_fc.bias")
        mat(b + "ffn_down.weight", _np(sd[p + "mlp.c_proj.weight"]).T)
        vec(b + "ffn_down.bias", p + "mlp.c_proj.bias")
    vec("output_norm.weight", "transformer.ln_f.weight")
    vec("output_norm.bias", "transformer.ln_f.bias")
    if not tied:
        mat("output.weight", _np(sd["lm_head.weight"]))
    if edit:
        edit(w)
    w.write()
    return path
