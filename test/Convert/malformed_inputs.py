#!/usr/bin/env python3
"""Table-driven bad inputs for kiln-convert: each is refused with the
expected exit code and a message naming the problem, and never leaves an
output file behind.

Families: safetensors files (truncations at every section boundary, flipped
bytes, offsets past the end, absurd shapes, wrong dtypes, shards), config.json,
tokenizer.json, GGUF files (when test/lib/gguf_writer.py is given: wrong
magic and version, truncations at every section boundary, absurd counts and
shapes, unsupported types and settings) and command lines.

    malformed_inputs.py --kiln-bin build/bin --work DIR
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import hf_checkpoint  # noqa: E402
import reference  # noqa: E402

TEXT = "the quick brown fox jumps over the lazy dog and the dog sleeps"


def base_gpt2(work):
    cfg = dict(architectures=["GPT2LMHeadModel"], n_embd=16, n_head=2, n_layer=1,
               n_positions=32, vocab_size=280, bos_token_id=279, eos_token_id=279)
    model = reference.randomize(reference.GPT2(cfg), 0)
    tokens, merges = hf_checkpoint.train_byte_bpe(TEXT, 280)
    d = os.path.join(work, "base-gpt2")
    hf_checkpoint.write_hf_dir(d, cfg, model.state_dict(),
                               hf_checkpoint.gpt2_tokenizer_json(tokens, merges, 279))
    return d


def base_llama(work):
    cfg = dict(architectures=["LlamaForCausalLM"], hidden_size=16, intermediate_size=32,
               num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
               max_position_embeddings=32, vocab_size=300, bos_token_id=1, eos_token_id=2)
    model = reference.randomize(reference.Llama(cfg), 0)
    tokens, merges = hf_checkpoint.train_spm_bpe(TEXT, 300)
    d = os.path.join(work, "base-llama")
    hf_checkpoint.write_hf_dir(d, cfg, model.state_dict(),
                               hf_checkpoint.llama_tokenizer_json(tokens, merges), shards=2)
    return d


class Case:
    def __init__(self, name, make, code, message, args=None):
        self.name, self.make, self.code, self.message, self.args = name, make, code, message, args


def copy(src, work, name):
    d = os.path.join(work, name)
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(src, d)
    return d


def rewrite(path, fn):
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(fn(data))


def rewrite_new(path, obj):
    """Writes `obj` as JSON to `path` (a file the directory may not have)."""
    with open(path, "w") as f:
        json.dump(obj, f)


def st_parts(data):
    n = struct.unpack("<Q", data[:8])[0]
    return n, json.loads(data[8:8 + n]), data[8 + n:]


def st_build(header, body, pad=True):
    h = json.dumps(header).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + body


def append_tensor(name, shape, dtype="F32"):
    """Adds tensor `name` (zeros) with bytes of its own after the data."""
    def apply(data):
        n, header, body = st_parts(data)
        size = 4 if dtype == "F32" else 2
        for d in shape:
            size *= d
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [len(body), len(body) + size]}
        return st_build(header, body + b"\0" * size)
    return apply


def edit_header(fn):
    def apply(data):
        n, header, body = st_parts(data)
        fn(header)
        return st_build(header, body)
    return apply


def edit_json(fn):
    """fn edits the parsed JSON in place."""
    def apply(data):
        j = json.loads(data)
        fn(j)
        return json.dumps(j).encode()
    return apply


def safetensors_cases(gpt2):
    st = "model.safetensors"
    cases = []

    def variant(name, fn, code, msg, target=st):
        def make(work):
            d = copy(gpt2, work, name)
            rewrite(os.path.join(d, target), fn)
            return d
        cases.append(Case(name, make, code, msg))

    def header_len(data):
        return struct.unpack("<Q", data[:8])[0]

    variant("st-empty", lambda d: b"", 2, "no safetensors header")
    variant("st-4-bytes", lambda d: d[:4], 2, "no safetensors header")
    variant("st-cut-in-header", lambda d: d[:8 + header_len(d) // 2], 2, "header claims")
    variant("st-cut-after-header", lambda d: d[:8 + header_len(d)], 2, "outside the file")
    variant("st-cut-mid-data", lambda d: d[:len(d) // 2], 2, "outside the file")
    variant("st-cut-last-byte", lambda d: d[:-1], 2, "outside the file")
    variant("st-header-len-huge", lambda d: struct.pack("<Q", 1 << 62) + d[8:], 2,
            "header claims")
    variant("st-header-len-past-end", lambda d: struct.pack("<Q", len(d)) + d[8:], 2,
            "header claims")
    variant("st-header-not-json", lambda d: d[:8] + b"x" + d[9:], 2,
            "safetensors header of")
    variant("st-header-array", lambda d: st_build([1, 2], b""), 2, "not an object")
    variant("st-tensor-not-object", edit_header(lambda h: h.update({"wte": 5})), 2,
            "is not an object")
    variant("st-no-dtype", edit_header(lambda h: h["transformer.wte.weight"].pop("dtype")), 2,
            "lacks dtype, shape or data_offsets")
    variant("st-no-shape", edit_header(lambda h: h["transformer.wte.weight"].pop("shape")), 2,
            "lacks dtype, shape or data_offsets")
    variant("st-one-offset", edit_header(
        lambda h: h["transformer.wte.weight"].update({"data_offsets": [0]})), 2,
        "lacks dtype, shape or data_offsets")
    variant("st-negative-dim", edit_header(
        lambda h: h["transformer.wte.weight"].update({"shape": [-280, 16]})), 2, "invalid shape")
    variant("st-offset-past-end", edit_header(
        lambda h: h["transformer.wte.weight"].update({"data_offsets": [0, 1 << 40]})), 2,
        "outside the file")
    variant("st-offsets-reversed", edit_header(
        lambda h: h["transformer.wte.weight"].update({"data_offsets": [100, 50]})), 2,
        "outside the file")
    variant("st-size-mismatch", edit_header(
        lambda h: h["transformer.wte.weight"].update({"shape": [281, 16]})), 2,
        "bytes but its dtype and shape need")
    variant("st-shape-overflow", edit_header(
        lambda h: h["transformer.wte.weight"].update({"shape": [1 << 62, 1 << 62, 16]})), 2,
        "overflows")
    variant("st-dtype-i64", edit_header(
        lambda h: h["transformer.wte.weight"].update({"dtype": "I64", "shape": [280, 8]})), 2,
        "dtype I64, which kiln-convert does not read")
    variant("st-missing-tensor", edit_header(lambda h: h.pop("transformer.ln_f.weight")), 2,
            "lacks tensor 'transformer.ln_f.weight'")
    variant("st-unknown-tensor", append_tensor("transformer.extra.weight", [16]),
            2, "does not know what to do with: transformer.extra.weight")
    variant("st-overlap", edit_header(
        lambda h: h.update({"transformer.extra.weight": dict(h["transformer.ln_f.weight"])})),
        2, "overlap")
    variant("st-wrong-shape", edit_header(
        lambda h: h["transformer.ln_f.weight"].update({"shape": [4, 4]})), 2,
        "has shape [4, 4] but the config needs [16]")
    variant("st-5-bytes", lambda d: d[:5], 2, "no safetensors header")
    variant("st-header-len-zero", lambda d: struct.pack("<Q", 0) + d[8:], 2,
            "is not valid JSON")
    deep = b'{"x":' + b"[" * 5000 + b"]" * 5000 + b"}"
    variant("st-deep-nesting", lambda d: struct.pack("<Q", len(deep)) + deep, 2,
            "nests arrays and objects more than 256 deep")
    variant("st-dtype-f64", edit_header(
        lambda h: h["transformer.wte.weight"].update({"dtype": "F64", "shape": [140, 16]})), 2,
        "dtype F64, which kiln-convert does not read")
    variant("st-dtype-bool", edit_header(
        lambda h: h["transformer.ln_f.weight"].update({"dtype": "BOOL", "shape": [64]})), 2,
        "dtype BOOL")
    variant("st-dtype-garbled", edit_header(
        lambda h: h["transformer.ln_f.weight"].update({"dtype": "F3"})), 2, "dtype F3")
    variant("st-offsets-strings", edit_header(
        lambda h: h["transformer.ln_f.weight"].update({"data_offsets": ["0", "64"]})), 2,
        "data offsets outside the file")
    variant("st-offsets-negative", edit_header(
        lambda h: h["transformer.ln_f.weight"].update({"data_offsets": [-8, 56]})), 2,
        "data offsets outside the file")
    variant("st-shape-not-array", edit_header(
        lambda h: h["transformer.ln_f.weight"].update({"shape": 16})), 2,
        "lacks dtype, shape or data_offsets")
    variant("st-shape-float", edit_header(
        lambda h: h["transformer.ln_f.weight"].update({"shape": [15.5]})), 2, "invalid shape")
    variant("st-zero-dim", edit_header(
        lambda h: h["transformer.ln_f.weight"].update({"shape": [0], "data_offsets": [0, 0]})),
        2, "has shape [0] but the config needs [16]")
    return cases


def shard_cases(llama):
    cases = []
    idx = "model.safetensors.index.json"

    def variant(name, fn, code, msg):
        def make(work):
            d = copy(llama, work, name)
            fn(d)
            return d
        cases.append(Case(name, make, code, msg))

    def edit_index(fn):
        return lambda d: rewrite(os.path.join(d, idx), edit_json(fn))

    def dup(d):
        # The same tensor in both shards.
        a, b = (os.path.join(d, "model-0000%d-of-00002.safetensors" % i) for i in (1, 2))
        with open(a, "rb") as f:
            _, ha, _ = st_parts(f.read())
        name = sorted(k for k in ha if k != "__metadata__")[0]
        rewrite(b, append_tensor(name, ha[name]["shape"]))

    variant("shard-path-escape", edit_index(
        lambda j: j["weight_map"].update({"model.norm.weight": "../evil.safetensors"})), 2,
        "invalid shard file")
    variant("shard-missing-file", lambda d: os.remove(
        os.path.join(d, "model-00002-of-00002.safetensors")), 2, "cannot read")
    variant("shard-index-not-json", lambda d: rewrite(os.path.join(d, idx), lambda x: b"{"), 2,
            "is not valid JSON")
    variant("shard-no-weight-map", edit_index(lambda j: j.pop("weight_map")), 2,
            "has no weight_map")
    variant("shard-duplicate-tensor", dup, 2, "appears in two shards")
    variant("shard-index-names-missing", edit_index(
        lambda j: j["weight_map"].update({"model.extra.weight": "model-00001-of-00002.safetensors"})),
        2, "places tensor 'model.extra.weight' in model-00001-of-00002.safetensors, which does "
        "not hold it")
    variant("no-weights", lambda d: os.remove(os.path.join(d, idx)), 2,
            "has neither model.safetensors nor model.safetensors.index.json")
    return cases


def config_cases(gpt2, llama):
    cases = []

    def variant(name, base, fn, code, msg, target="config.json"):
        def make(work):
            d = copy(base, work, name)
            rewrite(os.path.join(d, target), fn)
            return d
        cases.append(Case(name, make, code, msg))

    variant("config-not-json", gpt2, lambda d: d[:-3], 2, "config.json' is not valid JSON")
    variant("config-array", gpt2, lambda d: b"[]", 2, "config.json is not a JSON object")
    variant("config-unknown-arch", gpt2, edit_json(
        lambda j: j.update({"architectures": ["FalconForCausalLM"]})), 2,
        "architecture 'FalconForCausalLM' is not supported (supported: GPT2LMHeadModel")
    variant("config-no-arch", gpt2, edit_json(lambda j: j.pop("architectures")), 2,
            "names no architecture")
    variant("config-missing-width", gpt2, edit_json(lambda j: j.pop("n_embd")), 2,
            "config.json lacks 'n_embd'")
    variant("config-heads-not-divisor", gpt2, edit_json(lambda j: j.update({"n_head": 3})), 2,
            "is not a multiple of n_head 3")
    variant("config-vocab-string", gpt2, edit_json(lambda j: j.update({"vocab_size": "280"})),
            2, "'vocab_size' is not an integer")
    variant("config-negative-layers", gpt2, edit_json(lambda j: j.update({"n_layer": -1})), 2,
            "layer count -1 is invalid")
    variant("config-zero-positions", gpt2, edit_json(lambda j: j.update({"n_positions": 0})),
            2, "context length is 0")
    variant("config-activation", gpt2, edit_json(
        lambda j: j.update({"activation_function": "mish"})), 2,
        "activation_function 'mish' is not supported")
    variant("config-inverse-layer-scale", gpt2, edit_json(
        lambda j: j.update({"scale_attn_by_inverse_layer_idx": True})), 2,
        "scale_attn_by_inverse_layer_idx")
    variant("config-vocab-mismatch", gpt2, edit_json(lambda j: j.update({"vocab_size": 300})),
            2, "has shape [280, 16] but the config needs [300, 16]")
    variant("config-vocab-huge", gpt2, edit_json(lambda j: j.update({"vocab_size": 1 << 29})),
            2, "is more than the checkpoint's tensors hold")
    variant("config-rope-scaling", llama, edit_json(
        lambda j: j.update({"rope_scaling": {"type": "dynamic", "factor": 2.0}})), 2,
        "config.json: RoPE scaling 'dynamic' is not supported (supported: none, linear, "
        "llama3, yarn)")
    variant("config-rope-longrope", llama, edit_json(
        lambda j: j.update({"rope_parameters": {"rope_type": "longrope", "rope_theta": 1e4}})),
        2, "RoPE scaling 'longrope' is not supported")
    variant("config-rope-llama3", llama, edit_json(
        lambda j: j.update({"rope_scaling": {"rope_type": "llama3", "factor": 8.0}})), 2,
        "config.json: llama3 RoPE scaling needs original_max_position_embeddings and "
        "0 < low_freq_factor < high_freq_factor")
    variant("config-rope-no-factor", llama, edit_json(
        lambda j: j.update({"rope_scaling": {"rope_type": "linear"}})), 2,
        "config.json: linear RoPE scaling needs a positive factor")
    variant("config-rope-factor-string", llama, edit_json(
        lambda j: j.update({"rope_scaling": {"rope_type": "yarn", "factor": "4"}})), 2,
        "config.json: 'factor' is not a number")
    variant("config-rope-scaling-list", llama, edit_json(
        lambda j: j.update({"rope_scaling": [8.0]})), 2,
        "config.json: rope_scaling is not an object")
    variant("config-yarn-attention-factor", llama, edit_json(
        lambda j: j.update({"rope_scaling": {"rope_type": "yarn", "factor": 4.0,
                                             "attention_factor": -1.0}})), 2,
        "yarn RoPE scaling gives the attention factor -1.000000; it must be positive")
    variant("config-qwen3-attention-bias", llama, edit_json(
        lambda j: j.update({"architectures": ["Qwen3ForCausalLM"], "attention_bias": True})),
        2, "attention_bias (with an o_proj bias) is not supported for Qwen3ForCausalLM")
    variant("config-qwen3-no-qk-norm", llama, edit_json(
        lambda j: j.update({"architectures": ["Qwen3ForCausalLM"]})),
        2, "lacks tensor 'model.layers.0.self_attn.q_norm.weight'")
    variant("config-mistral-window-negative", llama, edit_json(
        lambda j: j.update({"architectures": ["MistralForCausalLM"], "sliding_window": -4})),
        2, "config.json: sliding_window must not be negative, got -4")
    gemma = {"architectures": ["Gemma3ForCausalLM"], "head_dim": 8}
    variant("config-gemma3-softcap", llama, edit_json(
        lambda j: j.update(dict(gemma, final_logit_softcapping=30.0))), 2,
        "config.json: final_logit_softcapping is not supported")
    variant("config-gemma3-activation", llama, edit_json(
        lambda j: j.update(dict(gemma, hidden_activation="relu"))), 2,
        "hidden_activation 'relu' is not supported for Gemma3ForCausalLM")
    variant("config-gemma3-layer-types", llama, edit_json(
        lambda j: j.update(dict(gemma, layer_types=["chunked_attention"]))), 2,
        "layer_types[0] 'chunked_attention' is not supported (supported: sliding_attention, "
        "full_attention)")
    variant("config-gemma3-layer-count", llama, edit_json(
        lambda j: j.update(dict(gemma, layer_types=[]))), 2,
        "layer_types has 0 entries for 1 layers")
    variant("config-gemma3-window", llama, edit_json(
        lambda j: j.update(dict(gemma, sliding_window=0))), 2,
        "sliding_window, sliding_window_pattern, query_pre_attn_scalar and "
        "rope_local_base_freq must be positive")
    variant("config-gemma3-llama-weights", llama, edit_json(lambda j: j.update(gemma)), 2,
            "lacks tensor 'model.layers.0.self_attn.q_norm.weight'")
    variant("config-hidden-act", llama, edit_json(lambda j: j.update({"hidden_act": "gelu"})),
            2, "hidden_act 'gelu' is not supported")
    variant("config-kv-heads", llama, edit_json(
        lambda j: j.update({"num_key_value_heads": 3})), 2,
        "is not a multiple of the key/value head count 3")
    variant("config-mlp-bias", llama, edit_json(lambda j: j.update({"mlp_bias": True})), 2,
            "mlp_bias is not supported")
    variant("config-odd-head-dim", llama, edit_json(lambda j: j.update({"head_dim": 7})), 2,
            "must be even for rotary positions")
    return cases


def tokenizer_cases(gpt2, llama):
    cases = []
    tj = "tokenizer.json"

    def variant(name, base, fn, code, msg):
        def make(work):
            d = copy(base, work, name)
            fn(d)
            return d
        cases.append(Case(name, make, code, msg))

    def edit(fn):
        return lambda d: rewrite(os.path.join(d, tj), edit_json(fn))

    variant("tok-missing", gpt2, lambda d: os.remove(os.path.join(d, tj)), 2,
            "has no tokenizer.json")
    variant("tok-not-json", gpt2, lambda d: rewrite(os.path.join(d, tj), lambda x: x[:100]), 2,
            "tokenizer.json' is not valid JSON")
    variant("tok-no-model", gpt2, edit(lambda j: j.pop("model")), 2,
            "tokenizer.json has no model object")
    variant("tok-unigram", gpt2, edit(lambda j: j["model"].update({"type": "Unigram"})), 2,
            "model type 'Unigram' is not supported (supported: BPE)")
    variant("tok-id-out-of-range", gpt2, edit(
        lambda j: j["model"]["vocab"].update({"zzz": 5000})), 2,
        "has id 5000, outside the model's vocabulary of 280")
    variant("tok-merge-unknown-piece", gpt2, edit(
        lambda j: j["model"]["merges"].append("q \u00e9\u00e9")), 2,
        "names a token that is not in the vocabulary")
    variant("tok-merge-bad-shape", gpt2, edit(lambda j: j["model"]["merges"].append(7)), 2,
            "a merge is neither")
    variant("tok-vocab-not-object", gpt2, edit(lambda j: j["model"].update({"vocab": []})), 2,
            "model.vocab is not an object")
    variant("tok-split-pretokenizer", gpt2, edit(lambda j: j.update({"pre_tokenizer": {
        "type": "Split", "pattern": {"Regex": "\\d"}, "behavior": "Isolated"}})), 2,
        "the Split pre-tokenizer regex '\\d' is not supported (supported: Llama 3's and "
        "Qwen2's)")
    qwen2_re = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|"
                " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")

    def qwen2_split(behavior="Isolated", byte_level=True, use_regex=False):
        pre = [{"type": "Split", "pattern": {"Regex": qwen2_re}, "behavior": behavior,
                "invert": False}]
        if byte_level:
            pre.append({"type": "ByteLevel", "add_prefix_space": False, "use_regex": use_regex})
        return edit(lambda j: j.update({"pre_tokenizer": {"type": "Sequence",
                                                          "pretokenizers": pre}}))
    variant("tok-split-space-bytelevel", gpt2, edit(lambda j: j.update({"pre_tokenizer": {
        "type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious"},
            {"type": "ByteLevel", "add_prefix_space": False}]}})), 2,
        "a Split at spaces without a normalizer that replaces spaces by U+2581")
    variant("tok-split-removed", gpt2, qwen2_split(behavior="Removed"), 2,
            "a Split pre-tokenizer other than behavior Isolated, invert false")
    variant("tok-split-no-bytelevel", gpt2, qwen2_split(byte_level=False), 2,
            "a Split regex without a ByteLevel pre-tokenizer")
    variant("tok-split-twice", gpt2, qwen2_split(use_regex=True), 2,
            "a Split regex followed by a ByteLevel pre-tokenizer with its own regex")
    variant("tok-bytelevel-no-regex", gpt2, edit(
        lambda j: j["pre_tokenizer"].update({"use_regex": False})), 2, "use_regex=false")
    variant("tok-prefix-space", gpt2, edit(
        lambda j: j["pre_tokenizer"].update({"add_prefix_space": True})), 2,
        "add_prefix_space=true is not supported")
    variant("tok-missing-byte", gpt2, edit(
        lambda j: j["model"]["vocab"].pop("\u0100")), 2,
        "the GPT-2 vocabulary has no token for byte 0x00")
    variant("tok-metaspace", llama, edit(lambda j: j.update({"normalizer": None,
                                                             "pre_tokenizer": {
        "type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first",
        "split": False}})), 2, "Metaspace pre-tokenizer")
    variant("tok-nfkc", llama, edit(lambda j: j["normalizer"]["normalizers"].append(
        {"type": "NFKC"})), 2, "normalizer 'NFKC' is not supported")
    variant("tok-no-byte-fallback", llama, edit(
        lambda j: j["model"].update({"byte_fallback": False})), 2, "without byte_fallback")
    variant("tok-added-no-id", llama, edit(lambda j: j["added_tokens"][0].pop("id")), 2,
            "an added token lacks id or content")
    variant("tok-no-space-handling", llama, edit(lambda j: j.update({"normalizer": None})), 2,
            "this tokenizer is not supported")
    def raw(data):
        return lambda d: rewrite(os.path.join(d, tj), lambda x: data)

    def first_merge(j):
        return j["model"]["merges"][0]

    variant("tok-deep-nesting", gpt2, raw(b"[" * 100000 + b"]" * 100000), 2,
            "nests arrays and objects more than 256 deep")
    variant("tok-empty-file", gpt2, raw(b""), 2, "tokenizer.json' is not valid JSON")
    variant("tok-one-byte", gpt2, raw(b"{"), 2, "tokenizer.json' is not valid JSON")
    variant("tok-array", gpt2, raw(b"[]"), 2, "tokenizer.json has no model object")
    variant("tok-trailing-garbage", gpt2, lambda d: rewrite(os.path.join(d, tj),
                                                            lambda x: x + b"}"), 2,
            "tokenizer.json' is not valid JSON")
    variant("tok-invalid-utf8", gpt2, lambda d: rewrite(
        os.path.join(d, tj), lambda x: x.replace(b'"version"', b'"\xff\xfe"', 1)), 2,
        "tokenizer.json' is not valid JSON")
    variant("tok-wordpiece", gpt2, edit(lambda j: j["model"].update({"type": "WordPiece"})), 2,
            "model type 'WordPiece' is not supported")
    variant("tok-no-type", gpt2, edit(lambda j: j["model"].pop("type")), 2,
            "model type '?' is not supported")
    variant("tok-merges-not-array", gpt2, edit(lambda j: j["model"].update({"merges": "x y"})),
            2, "model.merges is not an array")
    variant("tok-merge-three-pieces", gpt2, edit(
        lambda j: j["model"]["merges"].append("t h e")), 2, "is not two pieces separated")
    variant("tok-merge-pair-with-space", gpt2, edit(
        lambda j: j["model"]["merges"].append(["t h", "e"])), 2, "has a piece with a space")
    variant("tok-merge-triple", gpt2, edit(
        lambda j: j["model"]["merges"].append(["t", "h", "e"])), 2, "a merge is neither")
    variant("tok-merge-result-missing", gpt2, edit(
        lambda j: j["model"]["merges"].append("q z")), 2,
        "names a token that is not in the vocabulary")
    variant("tok-negative-id", gpt2, edit(lambda j: j["model"]["vocab"].update({"zz": -3})), 2,
            "has id -3, outside the model's vocabulary")
    variant("tok-string-id", gpt2, edit(lambda j: j["model"]["vocab"].update({"zz": "7"})), 2,
            "token 'zz' has no integer id")
    variant("tok-duplicate-id", gpt2, edit(lambda j: j["model"]["vocab"].update({"zz": 7})), 2,
            "id 7 is given to both")
    variant("tok-added-not-array", gpt2, edit(lambda j: j.update({"added_tokens": {"id": 1}})),
            2, "added_tokens is not an array")
    variant("tok-added-content-number", gpt2, edit(
        lambda j: j["added_tokens"][0].update({"content": 5})), 2,
        "an added token lacks id or content")
    variant("tok-added-conflict", gpt2, edit(lambda j: j["added_tokens"].append(
        {"id": 65, "content": "<|special|>", "special": True})), 2, "id 65 is given to both")
    variant("tok-whitespace-pretokenizer", gpt2, edit(
        lambda j: j.update({"pre_tokenizer": {"type": "Whitespace"}})), 2,
        "pre-tokenizer 'Whitespace' is not supported")
    variant("tok-digits-in-sequence", gpt2, edit(lambda j: j.update({"pre_tokenizer": {
        "type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True},
                                              j["pre_tokenizer"]]}})), 2,
        "pre-tokenizer 'Digits' is not supported")
    variant("tok-lowercase", llama, edit(lambda j: j["normalizer"]["normalizers"].append(
        {"type": "Lowercase"})), 2, "normalizer 'Lowercase' is not supported")
    variant("tok-replace-other", llama, edit(
        lambda j: j["normalizer"]["normalizers"][1].update({"content": "_"})), 2,
        "a Replace normalizer other than")
    variant("tok-prepend-other", llama, edit(
        lambda j: j["normalizer"]["normalizers"][0].update({"prepend": " "})), 2,
        "a Prepend normalizer other than U+2581")
    variant("tok-dropout", gpt2, edit(lambda j: j["model"].update({"dropout": 0.1})), 2,
            "BPE dropout (random merges) is not supported")
    variant("tok-subword-prefix", gpt2, edit(
        lambda j: j["model"].update({"continuing_subword_prefix": "##"})), 2,
        "model.continuing_subword_prefix '##' is not supported")
    variant("tok-word-suffix", gpt2, edit(
        lambda j: j["model"].update({"end_of_word_suffix": "</w>"})), 2,
        "model.end_of_word_suffix '</w>' is not supported")
    variant("tok-empty-vocab", gpt2, edit(lambda j: j["model"].update({"vocab": {}, "merges": []})),
            2, "the GPT-2 vocabulary has no token for byte 0x00")
    variant("tok-config-bos-out-of-range", gpt2, lambda d: rewrite(
        os.path.join(d, "config.json"), edit_json(lambda j: j.update({"bos_token_id": 5000}))),
        2, "config.json: bos_token_id 5000 lies outside the vocabulary of 280")
    variant("tok-generation-config-eos-out-of-range", gpt2, lambda d: rewrite_new(
        os.path.join(d, "generation_config.json"), {"eos_token_id": [279, 5000]}),
        2, "generation_config.json: eos_token_id 5000 lies outside the vocabulary of 280")
    def bad_tokenizer_config(d):
        with open(os.path.join(d, "tokenizer_config.json"), "wb") as f:
            f.write(b"{add_bos_token")
    variant("tok-config-file-not-json", llama, bad_tokenizer_config, 2,
        "tokenizer_config.json' is not valid JSON")
    variant("tok-config-chat-template", llama, lambda d: rewrite_new(
        os.path.join(d, "tokenizer_config.json"), {"chat_template": 3}), 2,
        "tokenizer_config.json: chat_template is neither a string nor a list of named "
        "templates")
    return cases


def command_cases(gpt2):
    cases = []

    def simple(name, args, code, msg, make=None):
        cases.append(Case(name, make or (lambda work: gpt2), code, msg, args))

    simple("cli-tokenize-and-detokenize", ["--tokenize", "--detokenize", "{in}"], 1,
           "exclude each other")
    simple("cli-p-without-tokenize", ["{in}", "-p", "x", "-o", "{out}"], 1,
           "-p goes with --tokenize")
    simple("cli-negative-context", ["{in}", "--context", "-5", "-o", "{out}"], 1,
           "--context must be positive")
    simple("cli-missing-input", ["{in}/nope.gguf", "-o", "{out}"], 2, "does not exist")
    simple("cli-unwritable-output", ["{in}", "-o", "/nonexistent-dir/x.kiln"], 3,
           "cannot write '/nonexistent-dir/x.kiln'")

    def no_config(work):
        d = os.path.join(work, "no-config")
        os.makedirs(d, exist_ok=True)
        return d
    simple("cli-dir-without-config", ["{in}", "-o", "{out}"], 2, "without config.json",
           no_config)

    def short_file(work):
        p = os.path.join(work, "short.bin")
        with open(p, "wb") as f:
            f.write(b"GGU")
        return p
    simple("cli-short-file", ["{in}", "-o", "{out}"], 2, "too short to be a model file",
           short_file)

    def junk(work):
        p = os.path.join(work, "junk.bin")
        with open(p, "wb") as f:
            f.write(os.urandom(64).replace(b"GGUF", b"xxxx"))
        return p
    simple("cli-unknown-format", ["{in}", "-o", "{out}"], 2,
           "neither a GGUF file, a .kiln file nor a Hugging Face model directory", junk)
    return cases


class GGUFLayout:
    """Where each part of a GGUF file starts (parsed here, independently of
    Kiln's reader): the header fields, every key/value pair, every tensor
    info (and its type and offset fields), the data section and every
    tensor's data."""

    SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def __init__(self, data):
        self.data = data
        self.marks = {"version": 4, "tensor-count": 8, "kv-count": 16}
        n_tensors, n_kv = struct.unpack_from("<QQ", data, 8)
        pos = 24
        self.kv_type_at = []

        def string(pos):
            n = struct.unpack_from("<Q", data, pos)[0]
            return pos + 8 + n

        def value(pos, t):
            if t == 8:
                return string(pos)
            if t == 9:
                et, count = struct.unpack_from("<IQ", data, pos)
                pos += 12
                if et == 8:
                    for _ in range(count):
                        pos = string(pos)
                    return pos
                return pos + count * self.SIZES[et]
            return pos + self.SIZES[t]

        self.kv_type_of = {}
        for k in range(n_kv):
            self.marks["kv-%d" % k] = pos
            key_len = struct.unpack_from("<Q", data, pos)[0]
            key = data[pos + 8:pos + 8 + key_len].decode()
            pos = string(pos)
            self.kv_type_of[key] = pos
            self.marks["kv-%d-value" % k] = pos
            t = struct.unpack_from("<I", data, pos)[0]
            self.kv_type_at.append(pos)
            pos = value(pos + 4, t)
        self.tensor_info = []
        for i in range(n_tensors):
            self.marks["tensor-info-%d" % i] = pos
            name_end = string(pos)
            n_dims = struct.unpack_from("<I", data, name_end)[0]
            dims_at = name_end + 4
            type_at = dims_at + 8 * n_dims
            self.tensor_info.append(dict(n_dims_at=name_end, dims_at=dims_at, type_at=type_at,
                                         offset_at=type_at + 4))
            pos = type_at + 12
        self.marks["tensor-infos-end"] = pos
        self.data_start = (pos + 31) // 32 * 32
        self.marks["data"] = self.data_start
        for i, info in enumerate(self.tensor_info):
            off = struct.unpack_from("<Q", data, info["offset_at"])[0]
            self.marks["tensor-data-%d" % i] = self.data_start + off

    def patch(self, at, fmt, value):
        b = bytearray(self.data)
        struct.pack_into(fmt, b, at, value)
        return bytes(b)


def gguf_cases(gguf_writer, work):
    """GGUF files written by test/lib/gguf_writer.py, then damaged."""
    import numpy as np
    cfg = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
               num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32,
               vocab_size=300, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2)
    model = reference.randomize(reference.Llama(cfg), 0)
    sd = model.state_dict()
    base = os.path.join(work, "base.gguf")
    gguf_writer.write_llama_gguf(base, sd, cfg)
    with open(base, "rb") as f:
        good = f.read()
    lay = GGUFLayout(good)
    cases = []

    def variant(name, fn, code, msg):
        def make(w):
            p = os.path.join(w, name + ".gguf")
            with open(p, "wb") as f:
                f.write(fn(good))
            return p
        cases.append(Case(name, make, code, msg))

    def edited(name, edit, code, msg):
        def make(w):
            p = os.path.join(w, name + ".gguf")
            gguf_writer.write_llama_gguf(p, sd, cfg, edit=edit)
            return p
        cases.append(Case(name, make, code, msg))

    def set_kv(key, value):
        def edit(w):
            w.kv[key] = gguf_writer._infer(value)
        return edit

    def drop_kv(key):
        return lambda w: w.kv.pop(key)

    def cut_array(key, n):
        def edit(w):
            w.kv[key].value = w.kv[key].value[:n]
        return edit

    def drop_tensor(name):
        def edit(w):
            w.tensors = [t for t in w.tensors if t[0] != name]
        return edit

    def add_tensor(name, x):
        return lambda w: w.add_tensor(name, np.asarray(x, dtype=np.float32))

    t0, t1 = lay.tensor_info[0], lay.tensor_info[1]
    variant("gguf-bad-magic", lambda d: b"GGUX" + d[4:], 2, "neither a GGUF file")
    variant("gguf-version-1", lambda d: lay.patch(4, "<I", 1), 2,
            "GGUF version 1 is not supported")
    variant("gguf-version-4", lambda d: lay.patch(4, "<I", 4), 2,
            "GGUF version 4 is not supported")
    # Truncated at every section boundary (and inside the header fields).
    marks = sorted(set(lay.marks.values()))
    for what, off in sorted(lay.marks.items(), key=lambda kv: kv[1]):
        if off < len(good) and (what.startswith(("version", "tensor-count", "kv-count", "data"))
                                or what in ("kv-0", "kv-5", "kv-10", "tensor-infos-end")
                                or what.startswith("tensor-info-") and what.endswith(("-0", "-3"))
                                or what.startswith("tensor-data-") and what.endswith(("-1", "-4"))):
            variant("gguf-cut-at-%s" % what, lambda d, off=off: d[:off], 2,
                    "too short" if off < 8 else "truncated")
    assert len(marks) > 10
    variant("gguf-cut-last-byte", lambda d: d[:-1], 2, "truncated")
    variant("gguf-huge-tensor-count", lambda d: lay.patch(8, "<Q", 1 << 60), 2,
            "bytes can hold")
    variant("gguf-huge-kv-count", lambda d: lay.patch(16, "<Q", 1 << 60), 2,
            "bytes can hold")
    variant("gguf-huge-key-length", lambda d: lay.patch(24, "<Q", 1 << 60), 2,
            "truncated or corrupt")
    variant("gguf-bad-value-type", lambda d: lay.patch(lay.kv_type_at[1], "<I", 99), 2,
            "unknown value type 99")
    variant("gguf-flipped-array-count",
            lambda d: lay.patch(lay.kv_type_of["tokenizer.ggml.tokens"] + 8, "<Q", 1 << 59), 2,
            "truncated")
    variant("gguf-bad-dims", lambda d: lay.patch(t0["n_dims_at"], "<I", 9), 2,
            "dimensions (1 to 4 are valid)")
    variant("gguf-zero-dim", lambda d: lay.patch(t0["dims_at"], "<Q", 0), 2,
            "invalid dimension 0")
    variant("gguf-absurd-dim", lambda d: lay.patch(t0["dims_at"], "<Q", 1 << 50), 2,
            "invalid dimension")
    variant("gguf-shape-overflow", lambda d: lay.patch(t0["dims_at"] + 8, "<Q", 1 << 39), 2,
            "invalid shape")
    variant("gguf-offset-past-end", lambda d: lay.patch(t0["offset_at"], "<Q", 1 << 40), 2,
            "ends past the end of the file")
    variant("gguf-misaligned-offset", lambda d: lay.patch(t1["offset_at"], "<Q", 3), 2,
            "not a multiple of the alignment")
    variant("gguf-type-q4k-short-rows", lambda d: lay.patch(t0["type_at"], "<I", 12), 2,
            "is Q4_K but its last dimension 16 is not a multiple of the 256-element block")
    variant("gguf-type-q2k", lambda d: lay.patch(t0["type_at"], "<I", 10), 2,
            "has type Q2_K, which kiln-convert does not read")
    variant("gguf-type-unknown", lambda d: lay.patch(t0["type_at"], "<I", 200), 2,
            "unknown type 200, which kiln-convert does not read")
    edited("gguf-arch-falcon", set_kv("general.architecture", "falcon"), 2,
           "GGUF architecture 'falcon' is not supported (supported: llama, qwen2, qwen3, gemma3, "
           "gpt2)")
    edited("gguf-no-arch", drop_kv("general.architecture"), 2, "lacks 'general.architecture'")
    edited("gguf-no-heads", drop_kv("llama.attention.head_count"), 2,
           "lacks 'llama.attention.head_count'")
    edited("gguf-heads-string", set_kv("llama.attention.head_count", "two"), 2,
           "is string, expected an integer")
    edited("gguf-heads-array", set_kv("llama.attention.head_count", [2, 2]), 2,
           "is an array, expected an integer")
    edited("gguf-eps-string", set_kv("llama.attention.layer_norm_rms_epsilon", "x"), 2,
           "is string, expected a number")
    edited("gguf-rope-scaling", set_kv("llama.rope.scaling.type", "longrope"), 2,
           "GGUF key 'llama.rope.scaling.type': RoPE scaling 'longrope' is not supported "
           "(supported: none, linear, llama3, yarn)")

    def yarn(factor):
        def edit(w):
            set_kv("llama.rope.scaling.type", "yarn")(w)
            set_kv("llama.rope.scaling.factor", gguf_writer.f32(factor))(w)
        return edit

    edited("gguf-yarn-negative-factor", yarn(-2.0), 2,
           "yarn RoPE scaling needs a positive factor")
    edited("gguf-experts", set_kv("llama.expert_count", 8), 2, "mixture-of-experts")
    edited("gguf-partial-rope", set_kv("llama.rope.dimension_count", 4), 2,
           "partial rotary embeddings")
    edited("gguf-no-tokenizer", drop_kv("tokenizer.ggml.model"), 2, "has no tokenizer")
    edited("gguf-tokenizer-bert", set_kv("tokenizer.ggml.model", "bert"), 2,
           "GGUF tokenizer model 'bert' is not supported")

    def gpt2_pre(pre):
        def edit(w):
            set_kv("tokenizer.ggml.model", "gpt2")(w)
            set_kv("tokenizer.ggml.pre", pre)(w)
        return edit

    edited("gguf-pretokenizer-unknown", gpt2_pre("deepseek-llm"), 2,
           "GGUF pre-tokenizer 'deepseek-llm' is not supported (supported: gpt-2, default, "
           "llama-bpe, qwen2)")
    edited("gguf-short-scores", cut_array("tokenizer.ggml.scores", 10), 2,
           "has 10 entries for 300 tokens")
    edited("gguf-short-vocab", cut_array("tokenizer.ggml.tokens", 299), 2,
           "299 tokens but the embedding has 300 rows")
    edited("gguf-bad-token-type", set_kv("tokenizer.ggml.token_type",
                                         gguf_writer.array(gguf_writer.INT32, [9] * 300)), 2,
           "invalid type 9 ")
    edited("gguf-bos-out-of-range", set_kv("tokenizer.ggml.bos_token_id", 5000), 2,
           "outside the vocabulary of 300")
    edited("gguf-eot-out-of-range", set_kv("tokenizer.ggml.eot_token_id", 300), 2,
           "GGUF key 'tokenizer.ggml.eot_token_id' is 300, outside the vocabulary of 300")
    edited("gguf-missing-tensor", drop_tensor("blk.0.ffn_up.weight"), 2,
           "lacks tensor 'blk.0.ffn_up.weight'")
    def gemma3_window(window, pattern):
        def edit(w):
            set_kv("general.architecture", "gemma3")(w)
            for key in [k for k in w.kv if k.startswith("llama.")]:
                w.kv["gemma3." + key[len("llama."):]] = w.kv.pop(key)
            for key, value in (("sliding_window", window), ("sliding_window_pattern", pattern)):
                set_kv("gemma3.attention." + key, value)(w)
        return edit

    edited("gguf-gemma3-pattern", gemma3_window(4, 0), 2,
           "GGUF key 'gemma3.attention.sliding_window_pattern' is 0; it must be positive")
    edited("gguf-gemma3-pattern-array", gemma3_window(
        4, gguf_writer.array(gguf_writer.INT32, [1, 0])), 2,
        "GGUF key 'gemma3.attention.sliding_window_pattern' must be a period or one bool "
        "per layer (1)")
    edited("gguf-gemma3-window", gemma3_window(-4, 2), 2,
           "GGUF key 'gemma3.attention.sliding_window' is -4; it must not be negative")
    edited("gguf-chat-template-number", set_kv("tokenizer.chat_template", 3), 2,
           "GGUF key 'tokenizer.chat_template' is")
    edited("gguf-rope-freqs-shape", add_tensor("rope_freqs.weight", np.ones(3)), 2,
           "tensor 'rope_freqs.weight' has shape [3] but the model's settings need [4]")
    edited("gguf-rope-freqs-negative", add_tensor("rope_freqs.weight",
                                                   np.array([1.0, 2.0, -1.0, 4.0])), 2,
           "tensor 'rope_freqs.weight' holds -1.000000; RoPE frequency factors must be "
           "positive and finite")
    edited("gguf-rope-freqs-nan", add_tensor("rope_freqs.weight",
                                              np.array([1.0, np.nan, 1.0, 4.0])), 2,
           "RoPE frequency factors must be positive and finite")
    edited("gguf-unknown-tensor", add_tensor("blk.0.extra.weight", np.ones(4)), 2,
           "does not know what to do with: blk.0.extra.weight")
    edited("gguf-wrong-shape", lambda w: w.tensors.__setitem__(
        1, (w.tensors[1][0], (4, 4), "F32", np.ones(16, np.float32).tobytes())), 2,
        "but the model's settings need [16]")
    variant("gguf-bad-alignment", lambda d: _with_alignment(gguf_writer, sd, cfg, work, 24), 2,
            "general.alignment must be a power of two")
    return cases


def _with_alignment(gguf_writer, sd, cfg, work, alignment):
    p = os.path.join(work, "align.gguf")
    gguf_writer.write_llama_gguf(p, sd, cfg, edit=lambda w: w.kv.__setitem__(
        "general.alignment", gguf_writer.u32(alignment)))
    with open(p, "rb") as f:
        return f.read()


def kiln_cases():
    """.kiln files kiln-convert reads (--info, --tokenize): the version 2
    layout checks, on the tiny Llama of test/Driver/Inputs written by
    json2kiln.py with one field changed."""
    cases = []
    json2kiln = os.path.join(HERE, "..", "lib", "json2kiln.py")
    base_json = os.path.join(HERE, "..", "Driver", "Inputs", "tiny-llama.json")

    def variant(name, mutate, msg, args=("--info", "{in}"), cut=None):
        def make(work):
            m = json.load(open(base_json))
            mutate(m)
            src = os.path.join(work, name + ".json")
            json.dump(m, open(src, "w"))
            path = os.path.join(work, name + "-in.kiln")
            subprocess.check_call([sys.executable, json2kiln, src, "-o", path] +
                                  (["--truncate", str(cut)] if cut is not None else []))
            return path
        cases.append(Case("kiln-" + name, make, 2, msg, list(args)))

    def weight(i, **fields):
        return lambda m: m["weights"][i].update(fields)

    def data(i, shape, nbytes, **fields):
        def mutate(m):
            w = m["weights"][i]
            for k in ("ones", "random", "values"):
                w.pop(k, None)
            w.update(shape=shape, data=[0] * nbytes, **fields)
        return mutate

    nothing = lambda m: None  # noqa: E731
    variant("version-1", lambda m: m.update(version=1),
            "schema version 1 (weights inside the FlatBuffer), which this kiln-convert no "
            "longer reads: rewrite it as version 2 with `python3 -m kiln_export.upgrade "
            "OLD.kiln NEW.kiln`")
    variant("version-1-tokenize", lambda m: m.update(version=1),
            "python3 -m kiln_export.upgrade OLD.kiln NEW.kiln", ("--tokenize", "{in}", "-p", "a"))
    variant("version-3", lambda m: m.update(version=3),
            "schema version 3 is newer than this kiln-convert supports (2)")
    variant("truncated-flatbuffer", nothing, "FlatBuffers verification failed", cut=600)
    variant("truncated-data", nothing, "model file is shorter than it claims", cut=4096 + 1000)
    variant("data-offset-not-page-aligned", lambda m: m.update(data_offset=6000),
            "data_offset 6000 is not a positive multiple of 4096")
    variant("data-size-overflows", lambda m: m.update(data_size=2**64 - 4096),
            "model file is shorter than it claims")
    variant("offset-past-the-end", weight(8, offset=4096),
            "weight 'l0.w_down' (384 bytes at offset 4096) ends past the data section")
    variant("offset-not-aligned", weight(1, offset=520),
            "weight 'norm' has offset 520, not a multiple of 64")
    variant("size-overflows", weight(2, size=2**64 - 64),
            "weight 'l0.wq' (18446744073709551552 bytes at offset 576) ends past the data "
            "section")
    variant("size-mismatch", data(2, [8, 8], 255),
            "weight 'l0.wq' has size 255 but its dtype F32 and shape need 256 bytes")
    variant("weights-overlap", weight(3, offset=576),
            "weights 'l0.wq' and 'l0.wk' overlap in the data section")
    variant("q8_0-row-not-whole-blocks", data(2, [8, 8], 68, dtype="Q8_0"),
            "weight 'l0.wq' is Q8_0 but its last dimension 8 is not a multiple of the "
            "32-element block")
    variant("dtype-unknown", weight(1, dtype=99),
            "weight 'norm' has dtype unknown dtype 99, which is not a weight type")
    variant("dtype-i32", weight(1, dtype="I32"),
            "weight 'norm' has dtype I32, which is not a weight type")
    variant("dtype-tokenize", weight(1, dtype=42), "which is not a weight type",
            ("--tokenize", "{in}", "-p", "a"))
    return cases


def run_case(case, convert, work):
    target = case.make(work)
    out = os.path.join(work, case.name + ".kiln")
    if os.path.exists(out):
        os.remove(out)
    args = case.args or [target, "-o", out]
    args = [a.replace("{in}", target).replace("{out}", out) for a in args]
    p = subprocess.run([convert] + args, capture_output=True, text=True)
    problems = []
    if p.returncode != case.code:
        problems.append("exit %d, expected %d" % (p.returncode, case.code))
    if case.message not in p.stderr:
        problems.append("message lacks %r" % case.message)
    if p.returncode not in (0, 1, 2, 3) or "Stack dump" in p.stderr:
        problems.append("crashed")
    if p.stderr.count("\n") > 1:
        problems.append("more than one line")
    if os.path.exists(out) or any(f.startswith(case.name + ".kiln.tmp")
                                  for f in os.listdir(work)):
        problems.append("left an output file behind")
    return problems, p.stderr.strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kiln-bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--no-gguf", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    convert = os.path.join(args.kiln_bin, "kiln-convert")
    gpt2, llama = base_gpt2(args.work), base_llama(args.work)
    for base in (gpt2, llama):  # the unmodified inputs convert
        p = subprocess.run([convert, base, "-o", base + ".kiln"], capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit("the base input %s does not convert: %s" % (base, p.stderr))
    families = [("safetensors", safetensors_cases(gpt2) + shard_cases(llama)),
                ("config.json", config_cases(gpt2, llama)),
                ("tokenizer.json", tokenizer_cases(gpt2, llama)),
                ("command line", command_cases(gpt2)),
                (".kiln", kiln_cases())]
    if not args.no_gguf:
        import gguf_writer
        families.append(("GGUF", gguf_cases(gguf_writer, args.work)))
    failed = 0
    for family, cases in families:
        for case in cases:
            problems, stderr = run_case(case, convert, args.work)
            status = "ok  " if not problems else "FAIL"
            failed += bool(problems)
            print("%s %-14s %-32s exit %d  %s%s" % (status, family, case.name, case.code,
                                                    stderr[:150],
                                                    "" if not problems
                                                    else "  <-- " + "; ".join(problems)))
        print("%s: %d inputs" % (family, len(cases)))
    if failed:
        sys.exit("%d inputs were not refused as expected" % failed)
    print("all %d bad inputs refused as expected" % sum(len(c) for _, c in families))


if __name__ == "__main__":
    main()
