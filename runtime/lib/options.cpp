//===- options.cpp - Flags of generated executables -----------------------===//

#include "kiln/rt/driver.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace kiln::rt {

static Error usage(const std::string &msg) { return {kExitUsage, msg}; }

static std::optional<Error> parseInt(const std::string &flag,
                                     const std::string &v, int64_t &out) {
  errno = 0;
  char *end = nullptr;
  long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || errno != 0 || *end != '\0')
    return usage("invalid integer '" + v + "' for " + flag);
  out = x;
  return std::nullopt;
}

static std::optional<Error> parseDouble(const std::string &flag,
                                        const std::string &v, double &out) {
  errno = 0;
  char *end = nullptr;
  double x = std::strtod(v.c_str(), &end);
  if (v.empty() || errno != 0 || *end != '\0' || !std::isfinite(x))
    return usage("invalid number '" + v + "' for " + flag);
  out = x;
  return std::nullopt;
}

static std::optional<Error> parseTokenList(const std::string &flag,
                                           const std::string &v,
                                           std::vector<int32_t> &out) {
  out.clear();
  size_t i = 0;
  while (i <= v.size()) {
    size_t j = v.find(',', i);
    if (j == std::string::npos)
      j = v.size();
    std::string item = v.substr(i, j - i);
    int64_t id;
    if (parseInt(flag, item, id) || id < 0 || id > INT32_MAX)
      return usage("invalid token id '" + item + "' in " + flag);
    out.push_back((int32_t)id);
    i = j + 1;
  }
  return std::nullopt;
}

std::optional<Error> parseOptions(int argc, char **argv, Options &o) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string flag = arg, value;
    bool hasValue = false;
    if (arg.rfind("--", 0) == 0) {
      size_t eq = arg.find('=');
      if (eq != std::string::npos) {
        flag = arg.substr(0, eq);
        value = arg.substr(eq + 1);
        hasValue = true;
      }
    }
    auto take = [&](std::string &v) -> std::optional<Error> {
      if (hasValue) {
        v = value;
        return std::nullopt;
      }
      if (i + 1 >= argc)
        return usage("missing value for " + flag);
      v = argv[++i];
      return std::nullopt;
    };
    auto noValue = [&]() -> std::optional<Error> {
      if (hasValue)
        return usage(flag + " takes no value");
      return std::nullopt;
    };
    std::string v;
    std::optional<Error> err;
    if (flag == "-h" || flag == "--help") {
      err = noValue();
      o.help = true;
    } else if (flag == "-m" || flag == "--model") {
      if (!(err = take(v)))
        o.modelPath = v;
    } else if (flag == "-p" || flag == "--prompt") {
      if (!(err = take(v)))
        o.prompt = v;
    } else if (flag == "-f" || flag == "--file") {
      if (!(err = take(v))) {
        std::string text;
        FILE *f = std::fopen(v.c_str(), "rb");
        if (!f) {
          err = usage("cannot read prompt file '" + v +
                      "': " + std::strerror(errno));
        } else {
          char buf[65536];
          size_t n;
          while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
            text.append(buf, n);
          std::fclose(f);
          o.prompt = text;
        }
      }
    } else if (flag == "--prompt-tokens") {
      std::vector<int32_t> ids;
      if (!(err = take(v)) && !(err = parseTokenList(flag, v, ids)))
        o.promptTokens = ids;
    } else if (flag == "--src-tokens") {
      std::vector<int32_t> ids;
      if (!(err = take(v)) && !(err = parseTokenList(flag, v, ids)))
        o.srcTokens = ids;
    } else if (flag == "--beams") {
      if (!(err = take(v)) && !(err = parseInt(flag, v, o.beams)) &&
          (o.beams < 1 || o.beams > 256))
        err = usage("--beams must be between 1 and 256, got " + v);
    } else if (flag == "--early-stop") {
      err = noValue();
      o.earlyStop = true;
    } else if (flag == "--length-penalty") {
      err = take(v);
      if (!err)
        err = parseDouble(flag, v, o.lengthPenalty);
    } else if (flag == "-n" || flag == "--n-predict") {
      if (!(err = take(v)) && !(err = parseInt(flag, v, o.nPredict)) &&
          o.nPredict < -1)
        err = usage(flag +
                    " must be -1 (until EOS or the context is full) or "
                    "non-negative, got " +
                    v);
    } else if (flag == "--temp") {
      if (!(err = take(v)) &&
          !(err = parseDouble(flag, v, o.sampling.temperature)) &&
          o.sampling.temperature < 0)
        err = usage("--temp must be >= 0, got " + v);
    } else if (flag == "--top-k") {
      if (!(err = take(v)) && !(err = parseInt(flag, v, o.sampling.topK)) &&
          o.sampling.topK < 0)
        err = usage("--top-k must be >= 0, got " + v);
    } else if (flag == "--top-p") {
      if (!(err = take(v)) && !(err = parseDouble(flag, v, o.sampling.topP)) &&
          !(o.sampling.topP > 0 && o.sampling.topP <= 1))
        err = usage("--top-p must be in (0, 1], got " + v);
    } else if (flag == "--min-p") {
      if (!(err = take(v)) && !(err = parseDouble(flag, v, o.sampling.minP)) &&
          !(o.sampling.minP >= 0 && o.sampling.minP <= 1))
        err = usage("--min-p must be in [0, 1], got " + v);
    } else if (flag == "--repeat-penalty") {
      if (!(err = take(v)) &&
          !(err = parseDouble(flag, v, o.sampling.repeatPenalty)) &&
          !(o.sampling.repeatPenalty > 0))
        err = usage("--repeat-penalty must be positive, got " + v);
    } else if (flag == "--repeat-last-n") {
      if (!(err = take(v)) &&
          !(err = parseInt(flag, v, o.sampling.repeatLastN)) &&
          o.sampling.repeatLastN < -1)
        err = usage("--repeat-last-n must be -1 (all), 0 (off) or positive, "
                    "got " +
                    v);
    } else if (flag == "--presence-penalty" || flag == "--frequency-penalty") {
      double &f = flag == "--presence-penalty" ? o.sampling.presencePenalty
                                               : o.sampling.frequencyPenalty;
      if (!(err = take(v)))
        err = parseDouble(flag, v, f);
    } else if (flag == "--seed") {
      int64_t s;
      if (!(err = take(v)) && !(err = parseInt(flag, v, s))) {
        if (s < 0)
          err = usage("--seed must be >= 0, got " + v);
        else
          o.seed = (uint64_t)s;
      }
    } else if (flag == "-t" || flag == "--threads") {
      if (!(err = take(v)) && !(err = parseInt(flag, v, o.threads)) &&
          (o.threads < 1 || o.threads > 1024))
        err = usage(flag + " must be between 1 and 1024, got " + v);
    } else if (flag == "-v" || flag == "--verbose") {
      err = noValue();
      o.verbose = true;
    } else if (flag == "--stop") {
      if (!(err = take(v))) {
        if (v.empty())
          err = usage("--stop needs a non-empty string");
        else
          o.stops.push_back(v);
      }
    } else if (flag == "--no-parse-special") {
      err = noValue();
      o.parseSpecial = false;
    } else if (flag == "--ignore-eos") {
      err = noValue();
      o.ignoreEos = true;
    } else if (flag == "--output") {
      if (!(err = take(v))) {
        if (v == "text")
          o.output = OutputFormat::Text;
        else if (v == "json")
          o.output = OutputFormat::Json;
        else
          err = usage("--output must be text or json, got '" + v + "'");
      }
    } else if (flag == "--logits") {
      err = noValue();
      o.logits = true;
    } else if (flag == "--forward-logits") {
      err = noValue();
      o.forwardLogits = true;
    } else if (flag == "--perplexity") {
      if (!(err = take(v)))
        o.perplexityFile = v;
    } else if (flag == "--score") {
      if (!(err = take(v)))
        o.scoreText = v;
    } else if (flag == "--stride") {
      if (!(err = take(v)) && !(err = parseInt(flag, v, o.stride)) &&
          o.stride < 1)
        err = usage("--stride must be >= 1, got " + v);
    } else if (flag == "-i" || flag == "--interactive") {
      err = noValue();
      o.interactive = true;
    } else if (flag == "--chat") {
      err = noValue();
      o.chat = true;
    } else if (flag == "--print-prompt") {
      err = noValue();
      o.printPrompt = true;
    } else if (flag == "--chat-template") {
      if (!(err = take(v)))
        o.chatTemplate = v;
    } else if (flag == "--system") {
      if (!(err = take(v)))
        o.system = v;
    } else if (flag == "--messages") {
      if (!(err = take(v)))
        o.messagesFile = v;
    } else if (flag == "--chat-template-kwargs") {
      if (!(err = take(v)))
        o.chatTemplateKwargs = v;
    } else if (flag == "--no-stats") {
      err = noValue();
      o.stats = false;
    } else {
      err = usage("unknown argument '" + arg + "'");
    }
    if (err)
      return err;
  }
  if (o.help)
    return std::nullopt;
  bool chatting = o.chat || o.printPrompt;
  if ((o.chatTemplate || o.system || o.messagesFile || o.chatTemplateKwargs) &&
      !chatting)
    return usage("--chat-template, --chat-template-kwargs, --system and "
                 "--messages go with --chat or --print-prompt");
  if (o.chat && o.printPrompt)
    return usage("give one of --chat and --print-prompt");
  if (chatting &&
      (o.interactive || o.promptTokens || o.srcTokens || o.perplexityFile ||
       o.scoreText || o.forwardLogits || o.logits))
    return usage("--chat and --print-prompt take the conversation as "
                 "--system, --messages and -p (the next user message); not "
                 "-i, --prompt-tokens, --perplexity, --score or --logits");
  if (o.chat && o.output == OutputFormat::Json)
    return usage("--chat prints text (--print-prompt --output=json shows "
                 "the rendered prompt's tokens)");
  if (o.printPrompt && !o.prompt && !o.messagesFile && !o.system)
    return usage("--print-prompt needs a conversation: -p, --messages or "
                 "--system");
  int inputs = !!o.prompt + !!o.promptTokens + !!o.srcTokens +
               !!o.perplexityFile + !!o.scoreText;
  if (inputs > 1)
    return usage("give one of -p/--prompt, --prompt-tokens, --src-tokens, "
                 "--perplexity and --score");
  if (inputs == 0 && !o.interactive && !chatting)
    return usage("no prompt: give -p TEXT or --prompt-tokens IDS "
                 "(encoder-decoder models: -p TEXT or --src-tokens IDS)");
  if (o.interactive && (o.perplexityFile || o.scoreText || o.forwardLogits ||
                        o.output == OutputFormat::Json))
    return usage("-i works with text output and an optional first prompt");
  if (o.logits && o.output != OutputFormat::Json)
    return usage("--logits needs --output=json");
  if (!o.stops.empty() &&
      (o.beams > 1 || o.perplexityFile || o.scoreText || o.forwardLogits))
    return usage("--stop applies to generation (not --beams, "
                 "--perplexity, --score or --forward-logits)");
  return std::nullopt;
}

std::string helpText(const char *argv0) {
  std::string s = "usage: ";
  s += argv0;
  s += R"HELP( [options] (-p TEXT | --prompt-tokens IDS)

Generates text with the model compiled into this executable (a Kiln build).

  -p, --prompt TEXT       prompt text (byte-level models; others: --prompt-tokens)
  -f, --file FILE         prompt text read from FILE (as -p)
  --prompt-tokens IDS     prompt as comma-separated token ids, e.g. 1,2,3
  -n, --n-predict N       tokens to generate (default: 128; -1 = until EOS or
                          the context is full)
  --temp T                sampling temperature (default: 0.8; 0 = greedy)
  --top-k K               keep the K most likely tokens (default: 40; 0 = off)
  --top-p P               nucleus sampling mass in (0, 1] (default: 0.95; 1 = off)
  --min-p P               keep tokens at least P times as likely as the most
                          likely one, in [0, 1] (default: 0 = off)
  --repeat-penalty F      divide the positive logits (multiply the others) of
                          tokens seen in the last N by F (default: 1 = off)
  --repeat-last-n N       tokens the penalties look back over (default: 64;
                          0 = off, -1 = the prompt and everything generated)
  --presence-penalty F    subtract F from the logit of every token seen in
                          the last N (default: 0 = off)
  --frequency-penalty F   subtract F times its count from the logit of every
                          token seen in the last N (default: 0 = off)
                          Sampling follows llama.cpp's chain: penalties,
                          top-k, top-p, min-p, temperature, draw.
  --seed S                random seed (default: from the clock; reported in JSON)
  -t, --threads N         threads the compiled kernels run on (default: every
                          CPU this process may use); results do not depend on it
  --ignore-eos            do not stop at the end-of-sequence token (or the
                          model's other end tokens, e.g. <|eot_id|>)
  --no-parse-special      encode control tokens written in the prompt (<s>,
                          <|im_end|>, ...) as text instead of as their ids
  --stop TEXT             stop when the generated text contains TEXT, which is
                          not printed (repeatable: the first to appear)
  --output FORMAT         text (default: the generated text, streamed) or json
  --logits                with --output=json: the logits each token was chosen from
  --forward-logits        run the compiled whole-sequence form over the prompt and
                          print {"tokens": [...], "logits": [[...] per position]}
  --perplexity FILE       score FILE with teacher forcing (the compiled
                          whole-sequence form): per-token negative
                          log-likelihood and perplexity; texts longer than the
                          context use a sliding window (see --stride)
  --score TEXT            the same for one text given on the command line
  --stride N              sliding-window step for scoring (default: half the
                          context); each window scores only tokens not scored
                          before, with up to a full context of left context
  -i, --interactive       chat-style loop: read a line from stdin, continue the
                          conversation from the KV cache (nothing is
                          recomputed), print the reply; ends at EOF or when
                          the context is full
  --chat                  a conversation in the model's chat format: each
                          line read from stdin (after -p, the first) is a
                          user message; the conversation is rendered with
                          the chat template and only the tokens the KV cache
                          lacks are computed; a reply ends at an end token
                          (<|eot_id|>, <|im_end|>, <end_of_turn>, ...) or a
                          --stop string; ends at EOF or a full context
  --chat-template T       the chat template: a Jinja file, or the built-in
                          name chatml (default: the model file's, from GGUF
                          tokenizer.chat_template or Hugging Face
                          chat_template)
  --chat-template-kwargs JSON
                          more template variables, a JSON object, e.g.
                          '{"enable_thinking": false}' (Qwen3)
  --system TEXT           the system message (--chat, --print-prompt)
  --messages FILE         the conversation so far, a JSON array of
                          {"role": ..., "content": ...} (--chat, --print-prompt)
  --print-prompt          print the rendered prompt (--system, --messages, -p
                          as the next user message, then the assistant's
                          turn) and exit; with --output=json
                          {"prompt": text, "prompt_tokens": ids}
  --no-stats              do not print the stats line on stderr
  -v, --verbose           report on stderr how the model file was loaded: its
                          weights read into memory (on huge pages) or mapped
                          from the file, and the sizes that decided it

Encoder-decoder models (the source is -p TEXT or --src-tokens IDS; decoding
starts from the model's BOS token and stops at its EOS token):
  --src-tokens IDS        source as comma-separated token ids
  --beams K               beam search with K beams (default: 1 = greedy or
                          sampling as set by --temp etc.)
  --length-penalty A      beam search: a finished hypothesis scores
                          log P / length^A (default: 1.0; length counts the
                          generated tokens, EOS included)
  --early-stop            beam search: stop as soon as K hypotheses have finished
  Beam search keeps, each step, the 2K best continuations; those ending in
  EOS among the best K finish (the K best finished are kept). It ends once K
  have finished and the best live beam, scored at its current length, is no
  better than the worst finished one (with --early-stop: at once), or at -n
  tokens / a full context, where live beams count as finished; it prints the
  best. JSON output adds "beams": [{"tokens", "text", "log_prob",
  "score"}, best first] and reports "source_tokens" instead of
  "prompt_tokens", and timings {"source_tokens", "generated_tokens",
  "encode_ms", "decode_ms", "decode_steps"}.
  -m, --model PATH        model file (default: the one the executable was compiled from)
  -h, --help              this help

JSON output (--output=json), one object:
  {"tokens": [generated ids], "text": "...", "prompt_tokens": [ids],
   "stop_reason": "eos" | "length" | "context" | "stop", "seed": S,
   "logits": [[vocab floats] per generated token]   (with --logits),
   "timings": {"prompt_tokens": N, "generated_tokens": M,
               "prefill_ms": x, "decode_ms": y}}

Generation stops at the end-of-sequence token or another end token of the
model (included in "tokens", not printed), after -n tokens, when the context is full (stop_reason "context"),
or when the text contains a --stop string (stop_reason "stop": "tokens" has
every token chosen, "text" and the printed text end before the string).
After text output a stats line goes to stderr: prompt tokens and tok/s,
generated tokens and tok/s, time to first token.

Scoring output: text mode prints "perplexity P over N tokens (mean NLL X
nats/token, window W, stride S)". With --output=json, one object
{"tokens_scored": N, "mean_nll": X, "perplexity": P, "window": W,
 "stride": S, "nll": [per-token NLL], "score_ms": T}.

Exit codes: 0 success, 1 bad flag or value, 2 unreadable or invalid model
file, 3 bad prompt (empty, ids outside the vocabulary, longer than the
context), 4 out of memory or internal error.
)HELP";
  return s;
}

} // namespace kiln::rt
