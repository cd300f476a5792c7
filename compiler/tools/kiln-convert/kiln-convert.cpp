//===- kiln-convert.cpp - GGUF / Hugging Face -> .kiln, --info, tokenize ---===//
//
//   kiln-convert model.gguf -o model.kiln [--dtype f32|stored]
//   kiln-convert path/to/hf-model-dir -o model.kiln
//   kiln-convert --info FILE-OR-DIR
//   kiln-convert --tokenize FILE-OR-DIR -p "text"    (or JSON strings on stdin)
//   kiln-convert --detokenize FILE-OR-DIR             (JSON id arrays on stdin)
//
// Exit codes: 0 success, 1 usage, 2 unreadable, unsupported or invalid input,
// 3 the output cannot be written.
//
//===----------------------------------------------------------------------===//

#include "kiln/Convert/Convert.h"
#include "kiln/rt/model.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <iostream>

using namespace llvm;
namespace kc = kiln::convert;

namespace {
enum ExitCode { Ok = 0, Usage = 1, BadInput = 2, BadOutput = 3 };

/// What --dtype defaults to: weights as published (the compiler reads F16,
/// BF16 and GGUF's block types and dequantizes inside its kernels).
constexpr kc::WeightDType kDefaultWeightDType = kc::WeightDType::Stored;

cl::OptionCategory category("kiln-convert options");
cl::opt<std::string> inputPath(cl::Positional, cl::Required,
                               cl::desc("<model.gguf | hf-model-dir | "
                                        "model.kiln>"),
                               cl::cat(category));
cl::opt<std::string> outputPath("o",
                                cl::desc("Output .kiln file (default: the "
                                         "input's name with .kiln)"),
                                cl::value_desc("file"), cl::cat(category));
cl::opt<bool> info("info",
                   cl::desc("Print what the input holds (architecture, "
                            "shapes, tensor types, vocabulary, special "
                            "tokens) and exit"),
                   cl::cat(category));
cl::opt<std::string> name("name", cl::desc("Model name to record"),
                          cl::cat(category));
cl::opt<int64_t> context("context",
                         cl::desc("Cap the context length (KV cache "
                                  "capacity) below the model's"),
                         cl::init(0), cl::cat(category));
cl::opt<kc::WeightDType> dtype(
    "dtype", cl::desc("How tensors are stored in the .kiln file"),
    cl::values(clEnumValN(kc::WeightDType::F32, "f32",
                          "every tensor widened to f32 (exactly)"),
               clEnumValN(kc::WeightDType::Stored, "stored",
                          "matrices in the type they were published in "
                          "(F16, BF16, Q8_0, ...), bytes copied unchanged; "
                          "1-D tensors as f32")),
    cl::init(kDefaultWeightDType), cl::cat(category));
cl::opt<std::string> quantize(
    "quantize",
    cl::desc("Quantize F32/F16/BF16 matrices as llama-quantize's recipe of "
             "that name does: q8_0, q4_0 or q4_k_m (see QUANTIZING below)"),
    cl::value_desc("recipe"), cl::cat(category));
cl::opt<bool> tokenize("tokenize",
                       cl::desc("Print the token ids of -p TEXT, or of each "
                                "JSON string read from stdin (one per line), "
                                "as JSON arrays"),
                       cl::cat(category));
cl::opt<bool> parseSpecial(
    "parse-special",
    cl::desc("With --tokenize: control tokens written in the text (<s>, "
             "<|im_end|>, ...) become their ids, as the generated "
             "executable's prompts do (llama_tokenize's parse_special)"),
    cl::cat(category));
cl::opt<bool> detokenize("detokenize",
                         cl::desc("Print the text of each JSON array of "
                                  "token ids read from stdin, as JSON "
                                  "strings"),
                         cl::cat(category));
cl::opt<std::string> prompt("p", cl::desc("With --tokenize: the text"),
                            cl::value_desc("text"), cl::cat(category));

const std::string inputsHelp = R"(
INPUTS
  GGUF file (v2, v3)      architectures llama (Llama, Mistral-style and other
                          llama-layout models) and gpt2; tensor types F32,
                          F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K
                          and Q6_K (what llama-quantize's common recipes
                          write); the vocabulary embedded in the file:
                          tokenizer.ggml.model
                          "llama" (SentencePiece BPE with scores and byte
                          fallback) or "gpt2" (byte-level BPE with merges,
                          pre-tokenizer gpt-2); token types and special token
                          ids.
  Hugging Face directory  config.json, model.safetensors or a sharded
                          model.safetensors.index.json (F32, F16, BF16),
                          tokenizer.json (BPE: GPT-2 ByteLevel, or
                          SentencePiece-style with byte fallback) and, if
                          present, tokenizer_config.json. Architectures
                          GPT2LMHeadModel, LlamaForCausalLM,
                          MistralForCausalLM (sliding window: the context is
                          capped at the window) and Qwen2ForCausalLM (q/k/v
                          biases; its Llama-3-style tokenizer is not
                          supported yet).
  .kiln file              for --info, --tokenize and --detokenize.

TENSOR TYPES (--dtype)
  f32     every tensor is widened to f32: F16 and BF16 exactly, quantized
          blocks exactly as llama.cpp dequantizes them.
  stored  tensors of rank 2 and more keep the type they were published in
          (F32, F16, BF16, Q8_0, Q4_0, ..., Q6_K), their bytes (GGUF's
          quantized blocks) copied unchanged: no requantization, and a
          file about the size of the input. 1-D tensors (norms, biases)
          are always f32.
  The default is )" + std::string(kDefaultWeightDType == kc::WeightDType::F32
                                        ? "f32"
                                        : "stored") + R"(. The output is streamed one tensor at a time:
  converting never holds the model twice in memory, and a .kiln file has no
  size limit.

QUANTIZING (--quantize RECIPE)
  Matrices stored as F32, F16 or BF16 are quantized with llama-quantize's
  reference quantizers (the same blocks, no importance matrix) and its rule
  for which tensor gets which type:
  q8_0    every matrix Q8_0.
  q4_0    Q4_0; the output matrix (or a tied embedding) Q6_K.
  q4_k_m  Q4_K; the output matrix (or a tied embedding) Q6_K; attn_v (or
          GPT-2's fused attn_qkv) and ffn_down Q6_K in the first and last
          eighth of the layers and in every third layer between.
  A type whose block does not divide a row falls back as llama-quantize's
  does (Q4_K -> Q5_0, Q6_K -> Q8_0, otherwise F16). Norms,
  biases and learned position tables are left as --dtype says. An input
  that is already quantized is refused. docs/convert.md has the details.

Anything unsupported (an architecture, tensor type, RoPE scaling, tokenizer)
is refused with a message naming it; a truncated or inconsistent input is
refused, and the output is written atomically (no partial file is left).

EXIT CODES
  0 success, 1 bad usage, 2 unreadable / unsupported / invalid input,
  3 the output cannot be written.
)";
cl::extrahelp inputs(inputsHelp.c_str());

int fail(ExitCode code, const Twine &msg) {
  errs() << "kiln-convert: error: " << msg << "\n";
  return code;
}

/// --tokenize / --detokenize over the model's tokenizer (the runtime's).
int runTokenizer(std::vector<uint8_t> bytes) {
  kiln::rt::ModelFile model;
  if (auto err = kiln::rt::loadModelBuffer(std::move(bytes), model))
    return fail(BadInput, err->message);
  kiln::rt::Tokenizer tok(model);
  if (tokenize && prompt.getNumOccurrences()) {
    std::vector<int32_t> ids;
    if (auto err = tok.encode(prompt, ids, parseSpecial))
      return fail(Usage, err->message);
    outs() << kiln::rt::idList(ids) << "\n";
    return Ok;
  }
  std::string line;
  int lineNo = 0;
  while (std::getline(std::cin, line)) {
    ++lineNo;
    auto v = kc::parseJSON(line, "stdin line " + Twine(lineNo));
    if (!v)
      return fail(Usage, toString(v.takeError()));
    if (tokenize) {
      std::optional<StringRef> s = v->getAsString();
      if (!s)
        return fail(Usage, "stdin line " + Twine(lineNo) +
                               " is not a JSON string");
      std::vector<int32_t> ids;
      if (auto err = tok.encode(s->str(), ids, parseSpecial))
        return fail(Usage, "line " + Twine(lineNo) + ": " + err->message);
      outs() << kiln::rt::idList(ids) << "\n";
    } else {
      const json::Array *a = v->getAsArray();
      if (!a)
        return fail(Usage, "stdin line " + Twine(lineNo) +
                               " is not a JSON array of ids");
      std::vector<int32_t> ids;
      for (const json::Value &e : *a) {
        std::optional<int64_t> id = e.getAsInteger();
        if (!id || *id < 0 || *id >= model.vocabSize)
          return fail(Usage, "stdin line " + Twine(lineNo) +
                                 ": token ids must lie in [0, " +
                                 Twine(model.vocabSize) + ")");
        ids.push_back((int32_t)*id);
      }
      outs() << kiln::rt::jsonString(tok.decode(ids)) << "\n";
    }
  }
  return Ok;
}
} // namespace

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(category);
  if (!cl::ParseCommandLineOptions(
          argc, argv,
          "kiln-convert: GGUF files and Hugging Face checkpoints to .kiln "
          "model files\n",
          &errs()))
    return Usage;
  if (tokenize && detokenize)
    return fail(Usage, "--tokenize and --detokenize exclude each other");
  if (prompt.getNumOccurrences() && !tokenize)
    return fail(Usage, "-p goes with --tokenize");
  if ((info || tokenize || detokenize) && outputPath.getNumOccurrences())
    return fail(Usage, "-o does not go with --info, --tokenize or "
                       "--detokenize");
  if (context < 0)
    return fail(Usage, "--context must be positive");
  if ((info || tokenize || detokenize) && quantize.getNumOccurrences())
    return fail(Usage, "--quantize does not go with --info, --tokenize or "
                       "--detokenize");
  kc::QuantizeRecipe recipe = kc::QuantizeRecipe::None;
  if (quantize.getNumOccurrences()) {
    auto parsed = kc::parseQuantizeRecipe(quantize);
    if (!parsed)
      return fail(Usage, "unknown --quantize recipe '" + quantize +
                             "' (recipes: q8_0, q4_0, q4_k_m)");
    recipe = *parsed;
  }

  if (info) {
    auto text = kc::describe(inputPath);
    if (!text)
      return fail(BadInput, toString(text.takeError()));
    outs() << *text;
    return Ok;
  }
  auto kind = kc::detectInput(inputPath);
  if (!kind)
    return fail(BadInput, toString(kind.takeError()));
  if (*kind == kc::InputKind::Kiln) {
    if (!tokenize && !detokenize)
      return fail(Usage, "'" + inputPath + "' is already a .kiln file");
    auto buf = MemoryBuffer::getFile(inputPath, false, false);
    if (!buf)
      return fail(BadInput, "cannot read '" + inputPath +
                                "': " + buf.getError().message());
    return runTokenizer(
        std::vector<uint8_t>((*buf)->getBufferStart(), (*buf)->getBufferEnd()));
  }
  kc::ConvertOptions options;
  options.name = name;
  options.contextLength = context;
  options.dtype = dtype;
  options.quantize = recipe;
  auto converted = kc::convertToKiln(inputPath, options);
  if (!converted)
    return fail(BadInput, toString(converted.takeError()));
  if (tokenize || detokenize) {
    std::unique_ptr<MemoryBuffer> buf = converted->toMemoryBuffer();
    if (!buf)
      return fail(BadInput, "out of memory");
    return runTokenizer(std::vector<uint8_t>(buf->getBufferStart(),
                                             buf->getBufferEnd()));
  }

  std::string out = outputPath;
  if (out.empty()) {
    SmallString<256> p(StringRef(inputPath).rtrim("/"));
    sys::path::replace_extension(p, ".kiln");
    out = p.str().str();
  }
  if (Error e = kc::writeModelFile(out, *converted)) {
    ExitCode code = BadOutput;
    std::string msg;
    handleAllErrors(std::move(e), [&](const ErrorInfoBase &err) {
      if (err.convertToErrorCode() == std::errc::invalid_argument)
        code = BadInput;
      msg = err.message();
    });
    return fail(code, msg);
  }
  return Ok;
}
