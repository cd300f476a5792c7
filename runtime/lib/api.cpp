//===- api.cpp - The C API of models compiled as shared libraries ---------===//

#include "kiln.h"
#include "kiln/rt/session.h"

#include <cmath>
#include <cstring>

using namespace kiln::rt;

struct kiln_handle {
  ModelFile model;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<Session> session;
  std::unique_ptr<Seq2SeqSession> seq2seq; ///< encoder-decoder models
  std::string error;
};

static void copyError(const std::string &msg, char *err, size_t size) {
  if (err && size > 0) {
    std::strncpy(err, msg.c_str(), size - 1);
    err[size - 1] = '\0';
  }
}

extern "C" {

kiln_params kiln_default_params(void) {
  kiln_params p;
  p.n_predict = 128;
  p.temperature = 0.8f;
  p.top_k = 40;
  p.top_p = 0.95f;
  p.seed = 0;
  p.ignore_eos = 0;
  SamplingParams d;
  p.min_p = (float)d.minP;
  p.repeat_penalty = (float)d.repeatPenalty;
  p.repeat_last_n = d.repeatLastN;
  p.presence_penalty = (float)d.presencePenalty;
  p.frequency_penalty = (float)d.frequencyPenalty;
  return p;
}

kiln_handle *kiln_load(const char *model_path, char *err, size_t err_size) {
  EntryPoints entry = linkedEntryPoints();
  std::string path = model_path
                         ? model_path
                         : (kiln_model.model_path ? kiln_model.model_path : "");
  auto h = std::make_unique<kiln_handle>();
  std::optional<Error> e =
      loadModelFile(path, h->model, sessionMemoryBytes(entry.info));
  if (!e)
    e = checkCompatible(h->model, entry.info);
  if (!e && entry.info.kind == KILN_MODEL_ENCODER_DECODER) {
    h->seq2seq = std::make_unique<Seq2SeqSession>(h->model, entry);
    e = h->seq2seq->init();
  } else if (!e) {
    h->session = std::make_unique<Session>(h->model, entry);
    e = h->session->init();
  }
  if (e) {
    copyError(e->message, err, err_size);
    return nullptr;
  }
  h->tokenizer = std::make_unique<Tokenizer>(h->model);
  return h.release();
}

int64_t kiln_generate(kiln_handle *h, const int32_t *prompt, size_t n,
                      const kiln_params *params, kiln_token_callback cb,
                      void *user) {
  if (!h)
    return -1;
  kiln_params p = params ? *params : kiln_default_params();
  if (h->seq2seq && prompt && n > 0) {
    // The prompt is the source; decoding starts from the BOS token.
  } else if (!prompt || n == 0 || (int64_t)n > h->model.contextLength) {
    h->error = "the prompt must hold 1 to " +
               std::to_string(h->model.contextLength) + " tokens";
    return -1;
  }
  for (size_t i = 0; i < n && !h->seq2seq; ++i)
    if (prompt[i] < 0 || prompt[i] >= h->model.vocabSize) {
      h->error = "token id " + std::to_string(prompt[i]) +
                 " is outside the vocabulary";
      return -1;
    }
  if (p.n_predict < -1 || p.temperature < 0 || p.top_k < 0 ||
      !(p.top_p > 0 && p.top_p <= 1) || !(p.min_p >= 0 && p.min_p <= 1) ||
      !(p.repeat_penalty > 0) || p.repeat_last_n < -1 ||
      !std::isfinite(p.repeat_penalty) || !std::isfinite(p.presence_penalty) ||
      !std::isfinite(p.frequency_penalty)) {
    h->error = "invalid sampling parameters";
    return -1;
  }
  SamplingParams s;
  s.temperature = p.temperature;
  s.topK = p.top_k;
  s.topP = p.top_p;
  s.minP = p.min_p;
  s.repeatPenalty = p.repeat_penalty;
  s.repeatLastN = p.repeat_last_n;
  s.presencePenalty = p.presence_penalty;
  s.frequencyPenalty = p.frequency_penalty;
  Rng rng(p.seed);
  GenerationResult r;
  bool stopped = false;
  auto onToken = [&](int32_t t) {
    if (stopped)
      return false;
    static const std::string none;
    const std::string &piece = (h->model.isEndToken(t) && !p.ignore_eos)
                                   ? none
                                   : h->tokenizer->piece(t);
    if (cb && cb(t, piece.data(), piece.size(), user) != 0)
      stopped = true;
    return !stopped;
  };
  std::vector<int32_t> ids(prompt, prompt + n);
  if (h->seq2seq) {
    Seq2SeqResult sr;
    std::optional<Error> e = h->seq2seq->encode(ids, sr);
    if (!e)
      e = h->seq2seq->generate(p.n_predict, s, rng, p.ignore_eos != 0, false,
                               onToken, sr);
    if (e) {
      h->error = e->message;
      return -1;
    }
    return (int64_t)sr.tokens.size();
  }
  if (auto e = h->session->generateAt(0, ids, p.n_predict, s, rng,
                                      p.ignore_eos != 0, false, onToken, r)) {
    h->error = e->message;
    return -1;
  }
  return (int64_t)r.tokens.size();
}

int64_t kiln_tokenize(kiln_handle *h, const char *text, int32_t *ids,
                      size_t cap) {
  if (!h || !text)
    return -1;
  std::vector<int32_t> out;
  if (auto e = h->tokenizer->encode(text, out, /*parseSpecial=*/true)) {
    h->error = e->message;
    return -1;
  }
  for (size_t i = 0; i < out.size() && i < cap; ++i)
    ids[i] = out[i];
  return (int64_t)out.size();
}

int64_t kiln_vocab_size(const kiln_handle *h) {
  return h ? h->model.vocabSize : -1;
}
int64_t kiln_context_length(const kiln_handle *h) {
  return h ? h->model.contextLength : -1;
}
const char *kiln_last_error(const kiln_handle *h) {
  return h ? h->error.c_str() : "no handle";
}
void kiln_free(kiln_handle *h) { delete h; }

} // extern "C"
