//===- chat_template.h - Chat templates (a Jinja subset) --------*- C++ -*-===//
//
// Part of kiln_model. Models ship their chat format as a Jinja template
// (GGUF `tokenizer.chat_template`, Hugging Face `chat_template`) rendered
// over the conversation. This renders the subset of Jinja those templates
// use, with the settings Hugging Face applies (trim_blocks, lstrip_blocks,
// one trailing newline dropped), so that the text equals what
// @huggingface/jinja (transformers.js) renders:
//
//   statements  if / elif / else, for (targets, `if` filter, else, loop.*),
//               set (names, namespace attributes), comments, {%- -%} {{- -}}
//   expressions literals (strings, numbers, true/false/none, lists, dicts),
//               names, .attr, [index], [a:b:c] slices, calls, unary not / -,
//               * / // % + - ~, comparisons, in / not in, is [not] TEST,
//               and / or, x if c else y, filters x | f(args)
//   tests       defined, undefined, none, string, number, integer, boolean,
//               iterable, mapping, sequence, true, false, odd, even,
//               equalto / eq
//   filters     trim, length / count, tojson, upper, lower, capitalize,
//               title (ASCII case), first, last, join, default, string, int,
//               float, list,
//               items, reverse, replace, select / reject (with a test),
//               selectattr / rejectattr, map(attribute=...), indent
//   methods     strings: strip lstrip rstrip split startswith endswith
//               upper lower title replace; dicts: get items keys values
//   functions   raise_exception(msg), namespace(k=v, ...), range(...)
//
// Anything else (macros, call blocks, includes, an unknown filter, test or
// method) is refused with a message naming it. Rendering is bounded: at
// most kMaxTemplateOutput bytes out, kMaxTemplateSteps evaluation steps and
// kMaxTemplateDepth nesting, so no template hangs or exhausts memory.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_RT_CHAT_TEMPLATE_H
#define KILN_RT_CHAT_TEMPLATE_H

#include <cstddef>
#include <string>
#include <vector>

namespace kiln::rt {

constexpr size_t kMaxTemplateOutput = 4 << 20;
constexpr size_t kMaxTemplateSteps = 10'000'000;
constexpr size_t kMaxTemplateDepth = 200;

/// One message of a conversation.
struct ChatMessage {
  std::string role; ///< "system", "user", "assistant", ...
  std::string content;
};

/// What a chat template is rendered with (the variables transformers
/// passes): `messages` (each a dict of role and content), bos_token,
/// eos_token and add_generation_prompt.
struct ChatTemplateInput {
  std::vector<ChatMessage> messages;
  std::string bosToken, eosToken;
  bool addGenerationPrompt = true;
  /// More variables: a JSON object whose members the template sees by name
  /// (llama.cpp's --chat-template-kwargs, e.g. {"enable_thinking": false});
  /// empty: none.
  std::string variablesJson;
};

/// Renders `source` over `input` into `out`; false with `error` (naming the
/// construct, and where it is: "line L, column C") when the template cannot
/// be parsed or rendered, raises an exception itself, or exceeds the limits.
bool renderChatTemplate(const std::string &source,
                        const ChatTemplateInput &input, std::string &out,
                        std::string &error);

} // namespace kiln::rt

#endif // KILN_RT_CHAT_TEMPLATE_H
