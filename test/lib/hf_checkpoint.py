"""Test tooling: Hugging Face model directories written from PyTorch state
dicts, without the transformers or safetensors packages.

  write_safetensors(path, tensors)          the safetensors format: an 8-byte
                                            little-endian header length, a JSON
                                            header {name: {dtype, shape,
                                            data_offsets}}, then the raw data
  write_hf_dir(dir, config, state_dict, tokenizer_json, dtype="F32", shards=1)
  gpt2_tokenizer_json(vocab, merges, eos)   tokenizer.json of a byte-level BPE
  llama_tokenizer_json(vocab, merges)       tokenizer.json of a Llama-style BPE
                                            (Prepend + Replace normalizer,
                                            byte fallback)
  train_byte_bpe(text, vocab_size) / train_spm_bpe(text, vocab_size)
                                            small real BPE vocabularies for
                                            random-weight test models
"""
import collections
import json
import os
import struct

import numpy as np

_DTYPES = {"F32": np.float32, "F16": np.float16}


def _bf16_bytes(a):
    """Round-to-nearest-even float32 -> bfloat16, as raw little-endian bytes."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype("<u2").tobytes()


def round_to(a, dtype):
    """The values a tensor stored as `dtype` holds, as float64."""
    a = np.asarray(a, dtype=np.float32)
    if dtype == "F32":
        return a.astype(np.float64)
    if dtype == "F16":
        return a.astype(np.float16).astype(np.float64)
    if dtype == "BF16":
        raw = np.frombuffer(_bf16_bytes(a), dtype="<u2").astype(np.uint32) << 16
        return raw.view(np.float32).reshape(a.shape).astype(np.float64)
    raise ValueError("unknown dtype %r" % dtype)


def write_safetensors(path, tensors, dtype="F32", metadata=None):
    """tensors: {name: array}; every tensor is written as `dtype` (F32, F16,
    BF16)."""
    header, blobs, offset = {}, [], 0
    for name, a in tensors.items():
        a = np.asarray(a, dtype=np.float32)
        raw = (_bf16_bytes(a) if dtype == "BF16"
               else np.ascontiguousarray(a, dtype=_DTYPES[dtype]).astype(
                   np.dtype(_DTYPES[dtype]).newbyteorder("<")).tobytes())
        header[name] = {"dtype": dtype, "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # the data starts 8-aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for b in blobs:
            f.write(b)


def write_hf_dir(directory, config, state_dict, tokenizer_json, *, dtype="F32", shards=1,
                 tokenizer_config=None):
    """config.json, model.safetensors (or `shards` shards with an index),
    tokenizer.json (and tokenizer_config.json when given)."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    with open(os.path.join(directory, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer_json, f, ensure_ascii=False)
    if tokenizer_config is not None:
        with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
            json.dump(tokenizer_config, f, indent=1)
    tensors = {k: (v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v))
               for k, v in state_dict.items()}
    if shards == 1:
        write_safetensors(os.path.join(directory, "model.safetensors"), tensors, dtype)
        return
    names = list(tensors)
    weight_map = {}
    for s in range(shards):
        part = names[s::shards]
        fname = "model-%05d-of-%05d.safetensors" % (s + 1, shards)
        write_safetensors(os.path.join(directory, fname), {n: tensors[n] for n in part}, dtype)
        weight_map.update({n: fname for n in part})
    with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f, indent=1)


def bytes_to_unicode():
    """GPT-2's byte -> printable character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def _train(words, vocab, budget):
    """Greedy BPE training over {tuple(symbols): count}; appends merged
    pieces to `vocab`, returns the merges in order."""
    merges = []
    words = dict(words)
    while len(vocab) < budget:
        pairs = collections.Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        (a, b), _ = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        merges.append(a + " " + b)
        vocab.append(a + b)
        new = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] = new.get(tuple(out), 0) + c
        words = new
    return merges


def train_byte_bpe(text, vocab_size):
    """A GPT-2-style vocabulary: the 256 byte characters, merges learned from
    `text` (split on spaces, a space prefixing each word), and <|endoftext|>
    last. Returns (tokens by id, merges)."""
    b2u = bytes_to_unicode()
    vocab = [b2u[b] for b in range(256)]
    words = collections.Counter()
    for i, w in enumerate(text.split(" ")):
        piece = (" " if i else "") + w
        words[tuple(b2u[b] for b in piece.encode())] += 1
    merges = _train(words, vocab, vocab_size - 1)
    vocab += ["<|extra_%d|>" % i for i in range(vocab_size - 1 - len(vocab))]
    vocab.append("<|endoftext|>")
    return vocab, merges


def train_spm_bpe(text, vocab_size):
    """A Llama-style vocabulary: <unk>, <s>, </s>, the 256 <0xNN> byte
    tokens, the characters of `text`, then merges learned from it (U+2581
    for spaces). Returns (tokens by id, merges)."""
    vocab = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    norm = "\u2581" + text.replace(" ", "\u2581")
    for ch in sorted(set(norm)):
        if ch not in vocab:
            vocab.append(ch)
    words = collections.Counter()
    for w in norm.split("\u2581")[1:]:
        words[tuple("\u2581" + w)] += 1
    merges = _train(words, vocab, vocab_size)
    vocab += ["<extra_%d>" % i for i in range(vocab_size - len(vocab))]
    return vocab, merges


def gpt2_tokenizer_json(vocab, merges, eos_id):
    return {
        "version": "1.0",
        "added_tokens": [{"id": eos_id, "content": vocab[eos_id], "single_word": False,
                          "lstrip": False, "rstrip": False, "normalized": True,
                          "special": True}],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                          "use_regex": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True,
                           "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": "", "end_of_word_suffix": "",
                  "fuse_unk": False, "byte_fallback": False,
                  "vocab": {t: i for i, t in enumerate(vocab)}, "merges": list(merges)},
    }


def llama_tokenizer_json(vocab, merges):
    specials = [{"id": i, "content": vocab[i], "single_word": False, "lstrip": False,
                 "rstrip": False, "normalized": False, "special": True} for i in range(3)]
    return {
        "version": "1.0",
        "added_tokens": specials,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
        "pre_tokenizer": None,
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [1],
                                                                   "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": True, "byte_fallback": True,
                  "vocab": {t: i for i, t in enumerate(vocab)}, "merges": list(merges)},
    }
