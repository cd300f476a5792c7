//===- chat_template.cpp - Chat templates (a Jinja subset) ----------------===//
//
// A small tree-walking Jinja interpreter: the template is preprocessed as
// @huggingface/jinja does (trim_blocks, lstrip_blocks, one trailing newline
// dropped), cut into text, {{ expression }} and {% statement %} pieces,
// parsed into a tree of statements and expressions, and evaluated over
// values (undefined, none, booleans, integers, floats, strings, lists,
// dicts, namespaces, callables). Errors are exceptions inside this file
// and a message at its interface.
//
//===----------------------------------------------------------------------===//

#include "kiln/rt/chat_template.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <utility>

namespace kiln::rt {
namespace {

//===----------------------------------------------------------------------===//
// Values
//===----------------------------------------------------------------------===//

struct TemplateError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Value;
using List = std::vector<Value>;
/// Insertion-ordered, as Python dicts (and tojson) are.
using Dict = std::vector<std::pair<std::string, Value>>;
using Args = std::vector<Value>;
using Kwargs = std::vector<std::pair<std::string, Value>>;
using Function = std::function<Value(const Args &, const Kwargs &)>;

struct Value {
  enum Kind { Undefined, None, Bool, Int, Float, String, ListK, DictK, Func };
  Kind kind = Undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::shared_ptr<List> list;
  /// Shared so that a namespace's attributes set in a loop stay set.
  std::shared_ptr<Dict> dict;
  bool isNamespace = false;
  std::shared_ptr<Function> fn;

  static Value none() { return make(None); }
  static Value boolean(bool v) {
    Value x = make(Bool);
    x.b = v;
    return x;
  }
  static Value integer(int64_t v) {
    Value x = make(Int);
    x.i = v;
    return x;
  }
  static Value real(double v) {
    Value x = make(Float);
    x.f = v;
    return x;
  }
  static Value string(std::string v) {
    Value x = make(String);
    x.s = std::move(v);
    return x;
  }
  static Value ofList(List v) {
    Value x = make(ListK);
    x.list = std::make_shared<List>(std::move(v));
    return x;
  }
  static Value ofDict(Dict v) {
    Value x = make(DictK);
    x.dict = std::make_shared<Dict>(std::move(v));
    return x;
  }
  static Value function(Function f) {
    Value x = make(Func);
    x.fn = std::make_shared<Function>(std::move(f));
    return x;
  }
  static Value make(Kind k) {
    Value x;
    x.kind = k;
    return x;
  }
  bool isNumber() const { return kind == Int || kind == Float; }
  double number() const { return kind == Int ? (double)i : f; }
  const Value *member(const std::string &key) const {
    if (kind != DictK)
      return nullptr;
    for (const auto &[k, v] : *dict)
      if (k == key)
        return &v;
    return nullptr;
  }
};

const char *kindName(const Value &v) {
  switch (v.kind) {
  case Value::Undefined:
    return "undefined";
  case Value::None:
    return "none";
  case Value::Bool:
    return "boolean";
  case Value::Int:
    return "integer";
  case Value::Float:
    return "float";
  case Value::String:
    return "string";
  case Value::ListK:
    return "list";
  case Value::DictK:
    return v.isNamespace ? "namespace" : "dict";
  case Value::Func:
    return "function";
  }
  return "value";
}

/// The byte offsets where `s`'s characters (UTF-8 code points) start, and
/// its size last: strings index, slice, reverse and count by character,
/// as Python does. Invalid bytes count as one character each.
std::vector<size_t> charStarts(const std::string &s) {
  std::vector<size_t> starts;
  for (size_t k = 0; k < s.size();) {
    starts.push_back(k);
    unsigned char c = (unsigned char)s[k];
    size_t n = c < 0x80         ? 1
               : (c >> 5) == 6  ? 2
               : (c >> 4) == 14 ? 3
               : (c >> 3) == 30 ? 4
                                : 1;
    if (k + n > s.size())
      n = 1;
    for (size_t j = 1; j < n; ++j)
      if (((unsigned char)s[k + j] >> 6) != 2)
        n = 1;
    k += n;
  }
  starts.push_back(s.size());
  return starts;
}

/// Character `i` of `s` (starts as charStarts gives them).
std::string charAt(const std::string &s, const std::vector<size_t> &starts,
                   size_t i) {
  return s.substr(starts[i], starts[i + 1] - starts[i]);
}

bool truthy(const Value &v) {
  switch (v.kind) {
  case Value::Undefined:
  case Value::None:
    return false;
  case Value::Bool:
    return v.b;
  case Value::Int:
    return v.i != 0;
  case Value::Float:
    return v.f != 0;
  case Value::String:
    return !v.s.empty();
  case Value::ListK:
    return !v.list->empty();
  case Value::DictK:
    return v.isNamespace || !v.dict->empty();
  case Value::Func:
    return true;
  }
  return false;
}

std::string formatFloat(double f) {
  if (std::isfinite(f) && f == std::floor(f) && std::fabs(f) < 1e15) {
    std::ostringstream os;
    os << (int64_t)f << ".0";
    return os.str();
  }
  std::ostringstream os;
  os.precision(17);
  os << f;
  return os.str();
}

/// A JSON value as a template value (objects keep their member order).
Value fromJson(const nlohmann::ordered_json &j, int depth = 0) {
  if (depth > (int)kMaxTemplateDepth)
    throw TemplateError("the variables nest too deeply");
  if (j.is_null())
    return Value::none();
  if (j.is_boolean())
    return Value::boolean(j.get<bool>());
  if (j.is_number_integer())
    return Value::integer(j.get<int64_t>());
  if (j.is_number())
    return Value::real(j.get<double>());
  if (j.is_string())
    return Value::string(j.get<std::string>());
  if (j.is_array()) {
    List l;
    for (const auto &e : j)
      l.push_back(fromJson(e, depth + 1));
    return Value::ofList(std::move(l));
  }
  Dict d;
  for (auto it = j.begin(); it != j.end(); ++it)
    d.emplace_back(it.key(), fromJson(it.value(), depth + 1));
  return Value::ofDict(std::move(d));
}

nlohmann::ordered_json toJson(const Value &v, int depth = 0) {
  if (depth > (int)kMaxTemplateDepth)
    throw TemplateError("tojson: the value nests too deeply");
  switch (v.kind) {
  case Value::Undefined:
  case Value::None:
  case Value::Func:
    return nullptr;
  case Value::Bool:
    return v.b;
  case Value::Int:
    return v.i;
  case Value::Float:
    return v.f;
  case Value::String:
    return v.s;
  case Value::ListK: {
    auto a = nlohmann::ordered_json::array();
    for (const Value &e : *v.list)
      a.push_back(toJson(e, depth + 1));
    return a;
  }
  case Value::DictK: {
    auto o = nlohmann::ordered_json::object();
    for (const auto &[k, e] : *v.dict)
      o[k] = toJson(e, depth + 1);
    return o;
  }
  }
  return nullptr;
}

/// JSON as Python's json.dumps writes it (", " and ": " separators, or an
/// indent), which is what templates' tojson produces.
void dumpJson(const nlohmann::ordered_json &j, std::string &out, int indent,
              int level) {
  auto newline = [&](int l) {
    out += '\n';
    out.append((size_t)(indent * l), ' ');
  };
  if (j.is_array() || j.is_object()) {
    bool arr = j.is_array();
    if (j.empty()) {
      out += arr ? "[]" : "{}";
      return;
    }
    out += arr ? '[' : '{';
    bool first = true;
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (!first)
        out += indent > 0 ? "," : ", ";
      first = false;
      if (indent > 0)
        newline(level + 1);
      if (!arr) {
        out += nlohmann::ordered_json(it.key()).dump(
            -1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
        out += ": ";
      }
      dumpJson(*it, out, indent, level + 1);
    }
    if (indent > 0)
      newline(level);
    out += arr ? ']' : '}';
    return;
  }
  // Invalid UTF-8 in a string becomes U+FFFD.
  out +=
      j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::string toString(const Value &v) {
  switch (v.kind) {
  case Value::Undefined:
    return "";
  case Value::None: // as @huggingface/jinja prints them
    return "";
  case Value::Bool:
    return v.b ? "true" : "false";
  case Value::Int:
    return std::to_string(v.i);
  case Value::Float:
    return formatFloat(v.f);
  case Value::String:
    return v.s;
  case Value::ListK:
  case Value::DictK: {
    std::string out;
    dumpJson(toJson(v), out, 0, 0);
    return out;
  }
  case Value::Func:
    return "<function>";
  }
  return "";
}

bool equal(const Value &a, const Value &b) {
  if (a.isNumber() && b.isNumber())
    return a.number() == b.number();
  if (a.kind == Value::Bool && b.kind == Value::Bool)
    return a.b == b.b;
  if (a.kind != b.kind)
    return false;
  switch (a.kind) {
  case Value::Undefined:
  case Value::None:
    return true;
  case Value::String:
    return a.s == b.s;
  case Value::ListK:
    if (a.list->size() != b.list->size())
      return false;
    for (size_t k = 0; k < a.list->size(); ++k)
      if (!equal((*a.list)[k], (*b.list)[k]))
        return false;
    return true;
  case Value::DictK:
    return a.dict == b.dict;
  default:
    return false;
  }
}

//===----------------------------------------------------------------------===//
// Lexing
//===----------------------------------------------------------------------===//

/// @huggingface/jinja's preprocessing: drop one trailing newline, strip
/// spaces and tabs before a block or comment tag that starts a line
/// (lstrip_blocks), drop the newline after a block or comment tag
/// (trim_blocks).
std::string preprocess(std::string t) {
  if (!t.empty() && t.back() == '\n')
    t.pop_back();
  std::string a;
  a.reserve(t.size());
  size_t lineStart = 0;
  for (size_t k = 0; k <= t.size(); ++k) {
    if (k == t.size() || t[k] == '\n') {
      std::string line = t.substr(lineStart, k - lineStart);
      size_t ws = line.find_first_not_of(" \t");
      if (ws != std::string::npos && ws > 0 && line.size() >= ws + 2 &&
          line[ws] == '{' &&
          (line[ws + 1] == '#' || line[ws + 1] == '%' || line[ws + 1] == '-'))
        line = line.substr(ws);
      a += line;
      if (k < t.size())
        a += '\n';
      lineStart = k + 1;
    }
  }
  std::string b;
  b.reserve(a.size());
  for (size_t k = 0; k < a.size(); ++k) {
    b += a[k];
    if (a[k] == '}' && k > 0 &&
        (a[k - 1] == '#' || a[k - 1] == '%' || a[k - 1] == '-') &&
        k + 1 < a.size() && a[k + 1] == '\n')
      ++k;
  }
  return b;
}

enum class Tok {
  Text,
  ExprOpen,  // {{
  ExprClose, // }}
  StmtOpen,  // {%
  StmtClose, // %}
  Name,
  String,
  Int,
  Float,
  Op, // punctuation and operators
  End
};

struct Token {
  Tok kind;
  std::string text;
  size_t pos; ///< offset in the preprocessed source
};

class Lexer {
public:
  explicit Lexer(const std::string &src) : src(src) {}

  std::vector<Token> run() {
    std::vector<Token> out;
    size_t k = 0;
    bool stripNext = false;
    while (k < src.size()) {
      size_t open = findTag(k);
      std::string text = src.substr(k, open - k);
      if (stripNext) {
        size_t first = text.find_first_not_of(" \t\n\r");
        text = first == std::string::npos ? "" : text.substr(first);
      }
      stripNext = false;
      if (open + 2 < src.size() && src[open + 2] == '-') {
        size_t last = text.find_last_not_of(" \t\n\r");
        text = last == std::string::npos ? "" : text.substr(0, last + 1);
      }
      if (!text.empty())
        out.push_back({Tok::Text, text, k});
      if (open >= src.size())
        break;
      char kind = src[open + 1];
      size_t p = open + 2;
      if (p < src.size() && src[p] == '-')
        ++p;
      if (kind == '#') {
        size_t close = src.find("#}", p);
        if (close == std::string::npos)
          throw error(open, "unterminated comment");
        stripNext = close > 0 && src[close - 1] == '-';
        k = close + 2;
        continue;
      }
      out.push_back({kind == '{' ? Tok::ExprOpen : Tok::StmtOpen, "", open});
      char closeChar = kind == '{' ? '}' : '%';
      k = lexInside(p, closeChar, out, stripNext);
    }
    out.push_back({Tok::End, "", src.size()});
    return out;
  }

  TemplateError error(size_t pos, const std::string &msg) const {
    return TemplateError(where(src, pos) + ": " + msg);
  }

  static std::string where(const std::string &src, size_t pos) {
    size_t line = 1, col = 1;
    for (size_t k = 0; k < pos && k < src.size(); ++k) {
      if (src[k] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    return "line " + std::to_string(line) + ", column " + std::to_string(col);
  }

private:
  size_t findTag(size_t from) const {
    for (size_t k = from; k + 1 < src.size(); ++k)
      if (src[k] == '{' &&
          (src[k + 1] == '{' || src[k + 1] == '%' || src[k + 1] == '#'))
        return k;
    return src.size();
  }

  /// Tokens up to the closing `}}` / `%}`; returns the offset after it.
  size_t lexInside(size_t k, char close, std::vector<Token> &out,
                   bool &stripNext) {
    int braces = 0; // dict literals open inside an expression
    auto at = [&](size_t p) { return p < src.size() ? src[p] : '\0'; };
    while (true) {
      while (k < src.size() && std::isspace((unsigned char)src[k]))
        ++k;
      if (k >= src.size())
        throw error(k,
                    close == '}' ? "unterminated '{{'" : "unterminated '{%'");
      // The closing tag, "}}" / "%}" or "-}}" / "-%}" (a '}' closing a
      // dict literal comes first).
      bool minus = at(k) == '-' && at(k + 1) == close && at(k + 2) == '}';
      size_t c = minus ? k + 1 : k;
      if (at(c) == close && at(c + 1) == '}' && (close == '%' || braces == 0)) {
        out.push_back({close == '}' ? Tok::ExprClose : Tok::StmtClose, "", k});
        stripNext = minus;
        return c + 2;
      }
      char ch = src[k];
      if (ch == '{')
        ++braces;
      else if (ch == '}')
        --braces;
      if (std::isalpha((unsigned char)ch) || ch == '_') {
        size_t e = k;
        while (e < src.size() &&
               (std::isalnum((unsigned char)src[e]) || src[e] == '_'))
          ++e;
        out.push_back({Tok::Name, src.substr(k, e - k), k});
        k = e;
        continue;
      }
      if (std::isdigit((unsigned char)ch)) {
        size_t e = k;
        while (e < src.size() && std::isdigit((unsigned char)src[e]))
          ++e;
        bool isFloat = e + 1 < src.size() && src[e] == '.' &&
                       std::isdigit((unsigned char)src[e + 1]);
        if (isFloat) {
          ++e;
          while (e < src.size() && std::isdigit((unsigned char)src[e]))
            ++e;
        }
        out.push_back(
            {isFloat ? Tok::Float : Tok::Int, src.substr(k, e - k), k});
        k = e;
        continue;
      }
      if (ch == '\'' || ch == '"') {
        std::string s;
        size_t e = k + 1;
        for (; e < src.size() && src[e] != ch; ++e) {
          if (src[e] == '\\' && e + 1 < src.size()) {
            char n = src[++e];
            switch (n) {
            case 'n':
              s += '\n';
              break;
            case 't':
              s += '\t';
              break;
            case 'r':
              s += '\r';
              break;
            case 'b':
              s += '\b';
              break;
            case 'f':
              s += '\f';
              break;
            case 'v':
              s += '\v';
              break;
            case '0':
              s += '\0';
              break;
            default:
              s += n;
            }
          } else {
            s += src[e];
          }
        }
        if (e >= src.size())
          throw error(k, "unterminated string");
        out.push_back({Tok::String, s, k});
        k = e + 1;
        continue;
      }
      static const char *ops[] = {
          "//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "<", ">",
          "=",  "(",  ")",  "[",  "]",  "{",  "}", ",", ":", ".", "|", "~"};
      bool found = false;
      for (const char *op : ops) {
        size_t n = std::char_traits<char>::length(op);
        if (src.compare(k, n, op) == 0) {
          out.push_back({Tok::Op, op, k});
          k += n;
          found = true;
          break;
        }
      }
      if (!found)
        throw error(k, std::string("unexpected character '") + ch + "'");
    }
  }

  const std::string &src;
};

//===----------------------------------------------------------------------===//
// Syntax tree
//===----------------------------------------------------------------------===//

struct Expr;
using ExprP = std::unique_ptr<Expr>;

struct Expr {
  enum Kind {
    Literal,
    Name,
    ListLit,
    DictLit,
    Attr,    // a.name
    Index,   // a[b]
    Slice,   // a[b:c:d] (children may be null)
    Call,    // a(args, kw=...)
    Filter,  // a | name(args)
    Test,    // a is [not] name(args)
    Unary,   // op a
    Binary,  // a op b
    Ternary, // a if b else c
  };
  Kind kind;
  size_t pos = 0;
  Value value;          // Literal
  std::string name;     // Name, Attr, Filter, Test; Unary / Binary operator
  bool negated = false; // Test
  std::vector<ExprP> args;
  std::vector<std::pair<std::string, ExprP>> kwargs;
  /// Children: Attr/Index/Slice/Call/Filter/Test/Unary the object first;
  /// DictLit keys and values alternate.
  std::vector<ExprP> kids;
};

struct Stmt;
using StmtP = std::unique_ptr<Stmt>;
using Body = std::vector<StmtP>;

struct Stmt {
  enum Kind { Text, Output, If, For, Set };
  Kind kind;
  size_t pos = 0;
  std::string text; // Text
  ExprP expr;       // Output; Set value; For iterable
  /// If: conditions and bodies (the else branch has a null condition).
  std::vector<std::pair<ExprP, Body>> branches;
  /// For: loop variables, optional filter, body and else body.
  std::vector<std::string> targets;
  ExprP filter;
  Body body, elseBody;
  /// Set: the variable, or namespace `target`.`attr`.
  std::string target, attr;
};

class Parser {
public:
  Parser(std::vector<Token> toks, const std::string &src)
      : toks(std::move(toks)), src(src) {}

  Body parseTemplate() {
    Body body = parseBody({});
    if (peek().kind != Tok::End)
      throw error(peek().pos, "unexpected '{% " + peekStmtName() + " %}'");
    return body;
  }

private:
  const Token &peek(size_t ahead = 0) const {
    return toks[std::min(k + ahead, toks.size() - 1)];
  }
  Token next() { return toks[std::min(k++, toks.size() - 1)]; }
  TemplateError error(size_t pos, const std::string &msg) const {
    return TemplateError(Lexer::where(src, pos) + ": " + msg);
  }
  bool isOp(const char *op, size_t ahead = 0) const {
    return peek(ahead).kind == Tok::Op && peek(ahead).text == op;
  }
  bool isName(const char *name, size_t ahead = 0) const {
    return peek(ahead).kind == Tok::Name && peek(ahead).text == name;
  }
  void expectOp(const char *op) {
    if (!isOp(op))
      throw error(peek().pos, std::string("expected '") + op + "'" + found());
    ++k;
  }
  void expect(Tok kind, const char *what) {
    if (peek().kind != kind)
      throw error(peek().pos, std::string("expected ") + what + found());
    ++k;
  }
  std::string expectName() {
    if (peek().kind != Tok::Name)
      throw error(peek().pos, "expected a name" + found());
    return next().text;
  }
  std::string found() const {
    const Token &t = peek();
    switch (t.kind) {
    case Tok::End:
      return ", found the end of the template";
    case Tok::Text:
      return ", found text";
    case Tok::ExprClose:
      return ", found '}}'";
    case Tok::StmtClose:
      return ", found '%}'";
    default:
      return ", found '" + t.text + "'";
    }
  }
  std::string peekStmtName() const {
    return peek(1).kind == Tok::Name ? peek(1).text : std::string("?");
  }
  void enter() {
    if (++depth > kMaxTemplateDepth)
      throw error(peek().pos, "the template nests too deeply");
  }

  /// Statements until one of `ends` (a statement name after '{%') or the
  /// end; the terminator is left unread.
  Body parseBody(std::initializer_list<const char *> ends) {
    enter();
    Body body;
    while (peek().kind != Tok::End) {
      const Token &t = peek();
      if (t.kind == Tok::Text) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Text;
        s->pos = t.pos;
        s->text = t.text;
        body.push_back(std::move(s));
        ++k;
        continue;
      }
      if (t.kind == Tok::ExprOpen) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Output;
        s->pos = next().pos;
        s->expr = parseExpr();
        expect(Tok::ExprClose, "'}}'");
        body.push_back(std::move(s));
        continue;
      }
      if (t.kind != Tok::StmtOpen)
        throw error(t.pos, "unexpected token" + found());
      std::string name = peekStmtName();
      for (const char *e : ends)
        if (name == e) {
          --depth;
          return body;
        }
      body.push_back(parseStatement());
    }
    if (ends.size()) // the statement's end: the last of the terminators
      throw error(peek().pos,
                  std::string("missing '{% ") + *(ends.end() - 1) + " %}'");
    --depth;
    return body;
  }

  StmtP parseStatement() {
    size_t pos = next().pos; // {%
    if (peek().kind != Tok::Name)
      throw error(peek().pos, "expected a statement" + found());
    std::string name = next().text;
    auto s = std::make_unique<Stmt>();
    s->pos = pos;
    if (name == "if") {
      s->kind = Stmt::If;
      ExprP cond = parseExpr();
      expect(Tok::StmtClose, "'%}'");
      while (true) {
        Body b = parseBody({"elif", "else", "endif"});
        s->branches.emplace_back(std::move(cond), std::move(b));
        next(); // {%
        std::string kw = next().text;
        if (kw == "elif") {
          cond = parseExpr();
          expect(Tok::StmtClose, "'%}'");
          continue;
        }
        if (kw == "else") {
          expect(Tok::StmtClose, "'%}'");
          Body eb = parseBody({"endif"});
          s->branches.emplace_back(nullptr, std::move(eb));
          next();
          next();
        }
        expect(Tok::StmtClose, "'%}'");
        return s;
      }
    }
    if (name == "for") {
      s->kind = Stmt::For;
      s->targets.push_back(expectName());
      while (isOp(",")) {
        ++k;
        s->targets.push_back(expectName());
      }
      if (!isName("in"))
        throw error(peek().pos, "expected 'in'" + found());
      ++k;
      s->expr = parseOr(); // no ternary: 'if' starts the loop filter
      if (isName("if")) {
        ++k;
        s->filter = parseExpr();
      }
      expect(Tok::StmtClose, "'%}'");
      s->body = parseBody({"else", "endfor"});
      next();
      if (next().text == "else") {
        expect(Tok::StmtClose, "'%}'");
        s->elseBody = parseBody({"endfor"});
        next();
        next();
      }
      expect(Tok::StmtClose, "'%}'");
      return s;
    }
    if (name == "set") {
      s->kind = Stmt::Set;
      s->target = expectName();
      if (isOp(".")) {
        ++k;
        s->attr = expectName();
      }
      if (!isOp("="))
        throw error(peek().pos, "'{% set %}' blocks are not supported; "
                                "expected '='" +
                                    found());
      ++k;
      s->expr = parseExpr();
      expect(Tok::StmtClose, "'%}'");
      return s;
    }
    if (name == "generation" || name == "endgeneration") {
      // transformers' assistant-mask markers: no output (as
      // @huggingface/jinja drops them).
      expect(Tok::StmtClose, "'%}'");
      s->kind = Stmt::Text;
      return s;
    }
    throw error(pos, "the '" + name + "' statement is not supported");
  }

  ExprP node(Expr::Kind kind, size_t pos) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->pos = pos;
    return e;
  }

  ExprP parseExpr() {
    enter();
    ExprP e = parseOr();
    if (isName("if")) {
      size_t pos = next().pos;
      ExprP cond = parseOr();
      ExprP other;
      if (isName("else")) {
        ++k;
        other = parseExpr();
      } else {
        other = node(Expr::Literal, pos); // undefined
      }
      ExprP t = node(Expr::Ternary, pos);
      t->kids.push_back(std::move(e));
      t->kids.push_back(std::move(cond));
      t->kids.push_back(std::move(other));
      e = std::move(t);
    }
    --depth;
    return e;
  }

  ExprP binary(const std::string &op, ExprP a, ExprP b, size_t pos) {
    ExprP e = node(Expr::Binary, pos);
    e->name = op;
    e->kids.push_back(std::move(a));
    e->kids.push_back(std::move(b));
    return e;
  }

  ExprP parseOr() {
    ExprP e = parseAnd();
    while (isName("or")) {
      size_t pos = next().pos;
      e = binary("or", std::move(e), parseAnd(), pos);
    }
    return e;
  }
  ExprP parseAnd() {
    ExprP e = parseNot();
    while (isName("and")) {
      size_t pos = next().pos;
      e = binary("and", std::move(e), parseNot(), pos);
    }
    return e;
  }
  ExprP parseNot() {
    if (isName("not")) {
      enter();
      size_t pos = next().pos;
      ExprP e = node(Expr::Unary, pos);
      e->name = "not";
      e->kids.push_back(parseNot());
      --depth;
      return e;
    }
    return parseCompare();
  }
  ExprP parseCompare() {
    ExprP e = parseAdd();
    while (true) {
      size_t pos = peek().pos;
      std::string op;
      if (peek().kind == Tok::Op && (isOp("==") || isOp("!=") || isOp("<") ||
                                     isOp(">") || isOp("<=") || isOp(">="))) {
        op = next().text;
      } else if (isName("in")) {
        ++k;
        op = "in";
      } else if (isName("not") && isName("in", 1)) {
        k += 2;
        op = "not in";
      } else if (isName("is")) {
        ++k;
        ExprP t = node(Expr::Test, pos);
        if (isName("not")) {
          ++k;
          t->negated = true;
        }
        // none / true / false are names of tests too.
        if (peek().kind != Tok::Name)
          throw error(peek().pos, "expected a test name" + found());
        t->name = next().text;
        t->kids.push_back(std::move(e));
        if (isOp("("))
          parseArgs(*t);
        else if (peek().kind == Tok::String || peek().kind == Tok::Int ||
                 peek().kind == Tok::Float)
          t->args.push_back(parsePrimary()); // `is equalto 3`
        e = std::move(t);
        continue;
      } else {
        return e;
      }
      e = binary(op, std::move(e), parseAdd(), pos);
    }
  }
  ExprP parseAdd() {
    ExprP e = parseConcat();
    while (isOp("+") || isOp("-")) {
      Token t = next();
      e = binary(t.text, std::move(e), parseConcat(), t.pos);
    }
    return e;
  }
  ExprP parseConcat() {
    ExprP e = parseMul();
    while (isOp("~")) {
      size_t pos = next().pos;
      e = binary("~", std::move(e), parseMul(), pos);
    }
    return e;
  }
  ExprP parseMul() {
    ExprP e = parseUnary();
    while (isOp("*") || isOp("/") || isOp("//") || isOp("%")) {
      Token t = next();
      e = binary(t.text, std::move(e), parseUnary(), t.pos);
    }
    return e;
  }
  ExprP parseUnary() {
    if (isOp("-") || isOp("+")) {
      enter();
      Token t = next();
      ExprP e = node(Expr::Unary, t.pos);
      e->name = t.text;
      e->kids.push_back(parseUnary());
      --depth;
      return e;
    }
    ExprP e = parsePostfix(parsePrimary());
    while (isOp("|")) {
      size_t pos = next().pos;
      ExprP f = node(Expr::Filter, pos);
      f->name = expectName();
      f->kids.push_back(std::move(e));
      if (isOp("("))
        parseArgs(*f);
      e = parsePostfix(std::move(f));
    }
    return e;
  }
  void parseArgs(Expr &e) {
    expectOp("(");
    while (!isOp(")")) {
      if (peek().kind == Tok::Name && isOp("=", 1)) {
        std::string key = next().text;
        ++k;
        e.kwargs.emplace_back(key, parseExpr());
      } else {
        e.args.push_back(parseExpr());
      }
      if (!isOp(","))
        break;
      ++k;
    }
    expectOp(")");
  }
  ExprP parsePostfix(ExprP e) {
    while (true) {
      if (isOp(".")) {
        size_t pos = next().pos;
        ExprP a = node(Expr::Attr, pos);
        a->name = expectName();
        a->kids.push_back(std::move(e));
        e = std::move(a);
      } else if (isOp("[")) {
        size_t pos = next().pos;
        ExprP parts[3];
        int colons = 0;
        while (!isOp("]")) {
          if (isOp(":")) {
            if (++colons > 2)
              throw error(peek().pos, "a slice has at most two ':'");
            ++k;
            continue;
          }
          if (parts[colons])
            throw error(peek().pos, "expected ']'" + found());
          parts[colons] = parseExpr();
        }
        ++k;
        ExprP x = node(colons ? Expr::Slice : Expr::Index, pos);
        x->kids.push_back(std::move(e));
        if (!colons && !parts[0])
          throw error(pos, "an empty subscript");
        for (int c = 0; c <= (colons ? 2 : 0); ++c)
          x->kids.push_back(std::move(parts[c]));
        e = std::move(x);
      } else if (isOp("(")) {
        ExprP c = node(Expr::Call, peek().pos);
        c->kids.push_back(std::move(e));
        parseArgs(*c);
        e = std::move(c);
      } else {
        return e;
      }
    }
  }
  ExprP parsePrimary() {
    enter();
    Token t = next();
    ExprP e;
    switch (t.kind) {
    case Tok::String: {
      e = node(Expr::Literal, t.pos);
      std::string s = t.text;
      while (peek().kind == Tok::String) // adjacent literals concatenate
        s += next().text;
      e->value = Value::string(s);
      break;
    }
    case Tok::Int:
      e = node(Expr::Literal, t.pos);
      e->value = Value::integer(std::strtoll(t.text.c_str(), nullptr, 10));
      break;
    case Tok::Float:
      e = node(Expr::Literal, t.pos);
      e->value = Value::real(std::strtod(t.text.c_str(), nullptr));
      break;
    case Tok::Name:
      e = node(Expr::Literal, t.pos);
      if (t.text == "true" || t.text == "True")
        e->value = Value::boolean(true);
      else if (t.text == "false" || t.text == "False")
        e->value = Value::boolean(false);
      else if (t.text == "none" || t.text == "None")
        e->value = Value::none();
      else {
        e->kind = Expr::Name;
        e->name = t.text;
      }
      break;
    case Tok::Op:
      if (t.text == "(") {
        e = parseExpr();
        if (isOp(",")) { // a tuple: a list here
          ExprP l = node(Expr::ListLit, t.pos);
          l->args.push_back(std::move(e));
          while (isOp(",")) {
            ++k;
            if (isOp(")"))
              break;
            l->args.push_back(parseExpr());
          }
          e = std::move(l);
        }
        expectOp(")");
        break;
      }
      if (t.text == "[") {
        e = node(Expr::ListLit, t.pos);
        while (!isOp("]")) {
          e->args.push_back(parseExpr());
          if (!isOp(","))
            break;
          ++k;
        }
        expectOp("]");
        break;
      }
      if (t.text == "{") {
        e = node(Expr::DictLit, t.pos);
        while (!isOp("}")) {
          e->kids.push_back(parseExpr());
          expectOp(":");
          e->kids.push_back(parseExpr());
          if (!isOp(","))
            break;
          ++k;
        }
        expectOp("}");
        break;
      }
      [[fallthrough]];
    default:
      --k;
      throw error(t.pos, "expected an expression" + found());
    }
    --depth;
    return e;
  }

  std::vector<Token> toks;
  const std::string &src;
  size_t k = 0;
  size_t depth = 0;
};

//===----------------------------------------------------------------------===//
// Evaluation
//===----------------------------------------------------------------------===//

class Renderer {
public:
  Renderer(const std::string &src, std::string &out) : src(src), out(out) {}

  void set(const std::string &name, Value v) { scopes.front()[name] = v; }

  void render(const Body &body) {
    for (const StmtP &s : body)
      exec(*s);
  }

private:
  TemplateError error(size_t pos, const std::string &msg) const {
    return TemplateError(Lexer::where(src, pos) + ": " + msg);
  }
  void step(size_t pos) {
    if (++steps > kMaxTemplateSteps)
      throw error(pos, "rendering takes more than " +
                           std::to_string(kMaxTemplateSteps) + " steps");
  }
  void emit(const std::string &s, size_t pos) {
    if (out.size() + s.size() > kMaxTemplateOutput)
      throw error(pos, "the rendered text exceeds " +
                           std::to_string(kMaxTemplateOutput) + " bytes");
    out += s;
  }

  Value lookup(const std::string &name) const {
    for (auto it = scopes.rbegin(); it != scopes.rend(); ++it) {
      auto f = it->find(name);
      if (f != it->end())
        return f->second;
    }
    return Value();
  }

  void exec(const Stmt &s) {
    step(s.pos);
    switch (s.kind) {
    case Stmt::Text:
      emit(s.text, s.pos);
      return;
    case Stmt::Output:
      emit(toString(eval(*s.expr)), s.pos);
      return;
    case Stmt::If:
      for (const auto &[cond, body] : s.branches)
        if (!cond || truthy(eval(*cond))) {
          render(body);
          return;
        }
      return;
    case Stmt::Set: {
      Value v = eval(*s.expr);
      if (s.attr.empty()) {
        scopes.back()[s.target] = v;
        return;
      }
      Value ns = lookup(s.target);
      if (ns.kind != Value::DictK || !ns.isNamespace)
        throw error(s.pos, "cannot set '" + s.attr + "' on '" + s.target +
                               "', which is a " + kindName(ns) +
                               ", not a namespace");
      for (auto &[k, e] : *ns.dict)
        if (k == s.attr) {
          e = v;
          return;
        }
      ns.dict->emplace_back(s.attr, v);
      return;
    }
    case Stmt::For:
      execFor(s);
      return;
    }
  }

  void execFor(const Stmt &s) {
    Value seq = eval(*s.expr);
    List items;
    if (seq.kind == Value::ListK)
      items = *seq.list;
    else if (seq.kind == Value::DictK)
      for (const auto &kv : *seq.dict)
        items.push_back(Value::string(kv.first));
    else if (seq.kind == Value::String) {
      std::vector<size_t> starts = charStarts(seq.s);
      for (size_t c = 0; c + 1 < starts.size(); ++c)
        items.push_back(Value::string(charAt(seq.s, starts, c)));
    } else if (seq.kind != Value::Undefined && seq.kind != Value::None)
      throw error(s.pos, std::string("cannot loop over a ") + kindName(seq));
    auto bind = [&](std::map<std::string, Value> &scope, const Value &item) {
      if (s.targets.size() == 1) {
        scope[s.targets[0]] = item;
        return;
      }
      if (item.kind != Value::ListK || item.list->size() != s.targets.size())
        throw error(s.pos, "cannot unpack a " + std::string(kindName(item)) +
                               " into " + std::to_string(s.targets.size()) +
                               " loop variables");
      for (size_t t = 0; t < s.targets.size(); ++t)
        scope[s.targets[t]] = (*item.list)[t];
    };
    if (s.filter) { // {% for x in xs if cond %}: loop.* counts the kept
      List kept;
      for (const Value &item : items) {
        scopes.emplace_back();
        bind(scopes.back(), item);
        bool keep = truthy(eval(*s.filter));
        scopes.pop_back();
        if (keep)
          kept.push_back(item);
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      render(s.elseBody);
      return;
    }
    if (scopes.size() > kMaxTemplateDepth)
      throw error(s.pos, "loops nest too deeply");
    int64_t n = (int64_t)items.size();
    for (int64_t idx = 0; idx < n; ++idx) {
      scopes.emplace_back();
      bind(scopes.back(), items[idx]);
      Dict loop = {{"index", Value::integer(idx + 1)},
                   {"index0", Value::integer(idx)},
                   {"revindex", Value::integer(n - idx)},
                   {"revindex0", Value::integer(n - idx - 1)},
                   {"first", Value::boolean(idx == 0)},
                   {"last", Value::boolean(idx == n - 1)},
                   {"length", Value::integer(n)},
                   {"previtem", idx > 0 ? items[idx - 1] : Value()},
                   {"nextitem", idx + 1 < n ? items[idx + 1] : Value()}};
      scopes.back()["loop"] = Value::ofDict(std::move(loop));
      render(s.body);
      // Assignments inside a loop body do not leak out (Jinja scoping).
      scopes.pop_back();
    }
  }

  Value eval(const Expr &e) {
    step(e.pos);
    if (++depth > kMaxTemplateDepth)
      throw error(e.pos, "the expression nests too deeply");
    Value v = evalInner(e);
    --depth;
    return v;
  }

  Value evalInner(const Expr &e) {
    switch (e.kind) {
    case Expr::Literal:
      return e.value;
    case Expr::Name:
      return lookup(e.name);
    case Expr::ListLit: {
      List l;
      for (const ExprP &a : e.args)
        l.push_back(eval(*a));
      return Value::ofList(std::move(l));
    }
    case Expr::DictLit: {
      Dict d;
      for (size_t k = 0; k + 1 < e.kids.size(); k += 2) {
        Value key = eval(*e.kids[k]);
        if (key.kind != Value::String)
          throw error(e.kids[k]->pos, "dict keys must be strings");
        d.emplace_back(key.s, eval(*e.kids[k + 1]));
      }
      return Value::ofDict(std::move(d));
    }
    case Expr::Attr: {
      Value obj = eval(*e.kids[0]);
      return attribute(obj, e.name, e.pos);
    }
    case Expr::Index: {
      Value obj = eval(*e.kids[0]);
      Value key = eval(*e.kids[1]);
      return index(obj, key, e.pos);
    }
    case Expr::Slice:
      return slice(e);
    case Expr::Call:
      return call(e);
    case Expr::Filter:
      return filter(e);
    case Expr::Test: {
      bool r = test(e);
      return Value::boolean(e.negated ? !r : r);
    }
    case Expr::Unary: {
      Value a = eval(*e.kids[0]);
      if (e.name == "not")
        return Value::boolean(!truthy(a));
      if (a.kind == Value::Int) {
        if (e.name == "-" && a.i == INT64_MIN)
          throw error(e.pos, "integer overflow in unary '-'");
        return Value::integer(e.name == "-" ? -a.i : a.i);
      }
      if (a.kind == Value::Float)
        return Value::real(e.name == "-" ? -a.f : a.f);
      throw error(e.pos, "unary '" + e.name + "' on a " + kindName(a));
    }
    case Expr::Binary:
      return binary(e);
    case Expr::Ternary:
      return truthy(eval(*e.kids[1])) ? eval(*e.kids[0]) : eval(*e.kids[2]);
    }
    return Value();
  }

  Value attribute(const Value &obj, const std::string &name, size_t pos) {
    if (obj.kind == Value::DictK) {
      if (const Value *m = obj.member(name))
        return *m;
      if (!obj.isNamespace)
        return dictMethod(obj, name, pos);
      return Value();
    }
    if (obj.kind == Value::String)
      return stringMethod(obj, name, pos);
    if (obj.kind == Value::ListK) {
      if (name == "append")
        return Value::function([obj](const Args &a, const Kwargs &) {
          for (const Value &v : a)
            obj.list->push_back(v);
          return Value();
        });
      return Value();
    }
    if (obj.kind == Value::Undefined || obj.kind == Value::None)
      return Value();
    return Value();
  }

  /// A Python index (negative: from the end); n is a container's size, so
  /// i + n cannot overflow for negative i.
  static int64_t normIndex(int64_t i, int64_t n) { return i < 0 ? i + n : i; }

  Value index(const Value &obj, const Value &key, size_t pos) {
    if (obj.kind == Value::ListK || obj.kind == Value::String) {
      if (key.kind != Value::Int)
        throw error(pos, std::string("a ") + kindName(obj) +
                             " index must be an integer, got a " +
                             kindName(key));
      std::vector<size_t> starts;
      if (obj.kind == Value::String)
        starts = charStarts(obj.s);
      int64_t n = obj.kind == Value::ListK ? (int64_t)obj.list->size()
                                           : (int64_t)starts.size() - 1;
      int64_t i = normIndex(key.i, n);
      if (i < 0 || i >= n)
        return Value();
      return obj.kind == Value::ListK ? (*obj.list)[i]
                                      : Value::string(charAt(obj.s, starts, i));
    }
    if (obj.kind == Value::DictK) {
      if (key.kind != Value::String)
        return Value();
      const Value *m = obj.member(key.s);
      return m ? *m : Value();
    }
    if (obj.kind == Value::Undefined || obj.kind == Value::None)
      return Value();
    throw error(pos, std::string("cannot index a ") + kindName(obj));
  }

  Value slice(const Expr &e) {
    Value obj = eval(*e.kids[0]);
    auto part = [&](int k,
                    std::optional<int64_t> dflt) -> std::optional<int64_t> {
      if (!e.kids[k])
        return dflt;
      Value v = eval(*e.kids[k]);
      if (v.kind == Value::None)
        return dflt;
      if (v.kind != Value::Int)
        throw error(e.pos, "slice bounds must be integers");
      return v.i;
    };
    int64_t n;
    std::vector<size_t> starts;
    if (obj.kind == Value::ListK) {
      n = (int64_t)obj.list->size();
    } else if (obj.kind == Value::String) {
      starts = charStarts(obj.s);
      n = (int64_t)starts.size() - 1;
    } else {
      throw error(e.pos, std::string("cannot slice a ") + kindName(obj));
    }
    int64_t stepv = part(3, 1).value();
    if (stepv == 0)
      throw error(e.pos, "slice step cannot be zero");
    std::optional<int64_t> a = part(1, std::nullopt), b = part(2, std::nullopt);
    // Python's slice semantics.
    auto clamp = [&](std::optional<int64_t> x, int64_t dflt) {
      if (!x)
        return dflt;
      int64_t v = *x < 0 ? *x + n : *x;
      if (stepv > 0)
        return std::clamp<int64_t>(v, 0, n);
      return std::clamp<int64_t>(v, -1, n - 1);
    };
    int64_t start = clamp(a, stepv > 0 ? 0 : n - 1);
    int64_t stop = clamp(b, stepv > 0 ? n : -1);
    List l;
    std::string s;
    for (int64_t i = start; stepv > 0 ? i < stop : i > stop;) {
      step(e.pos);
      if (obj.kind == Value::ListK)
        l.push_back((*obj.list)[i]);
      else
        s += charAt(obj.s, starts, (size_t)i);
      if (__builtin_add_overflow(i, stepv, &i))
        break; // past either end
    }
    return obj.kind == Value::ListK ? Value::ofList(std::move(l))
                                    : Value::string(std::move(s));
  }

  Args evalArgs(const Expr &e) {
    Args a;
    for (const ExprP &x : e.args)
      a.push_back(eval(*x));
    return a;
  }
  Kwargs evalKwargs(const Expr &e) {
    Kwargs kw;
    for (const auto &[k, x] : e.kwargs)
      kw.emplace_back(k, eval(*x));
    return kw;
  }

  Value call(const Expr &e) {
    const Expr &callee = *e.kids[0];
    Args args = evalArgs(e);
    Kwargs kwargs = evalKwargs(e);
    if (callee.kind == Expr::Name) {
      const std::string &n = callee.name;
      Value f = lookup(n);
      if (f.kind == Value::Func)
        return (*f.fn)(args, kwargs);
      if (n == "raise_exception")
        throw error(e.pos,
                    "the template raised an exception: " +
                        (args.empty() ? std::string() : toString(args[0])));
      if (n == "namespace") {
        Value ns = Value::ofDict(Dict(kwargs.begin(), kwargs.end()));
        ns.isNamespace = true;
        return ns;
      }
      if (n == "range") {
        int64_t a = 0, b = 0, st = 1;
        for (const Value &v : args)
          if (v.kind != Value::Int)
            throw error(e.pos, "range() takes integers");
        if (args.size() == 1)
          b = args[0].i;
        else if (args.size() >= 2) {
          a = args[0].i;
          b = args[1].i;
          if (args.size() > 2)
            st = args[2].i;
        }
        if (st == 0)
          throw error(e.pos, "range() step cannot be zero");
        List l;
        for (int64_t i = a; st > 0 ? i < b : i > b;) {
          step(e.pos);
          l.push_back(Value::integer(i));
          if (__builtin_add_overflow(i, st, &i))
            break; // past the end
        }
        return Value::ofList(std::move(l));
      }
      throw error(e.pos, "the function '" + n + "' is not supported");
    }
    Value f = eval(callee);
    if (f.kind != Value::Func) {
      std::string what = callee.kind == Expr::Attr
                             ? "the method '" + callee.name + "'"
                             : std::string("this value");
      throw error(e.pos, what + " is not supported or not callable");
    }
    return (*f.fn)(args, kwargs);
  }

  static std::string stripChars(const std::string &s, const std::string &chars,
                                bool left, bool right) {
    size_t a = 0, b = s.size();
    auto in = [&](char c) {
      return chars.empty() ? std::isspace((unsigned char)c) != 0
                           : chars.find(c) != std::string::npos;
    };
    while (left && a < b && in(s[a]))
      ++a;
    while (right && b > a && in(s[b - 1]))
      --b;
    return s.substr(a, b - a);
  }

  static std::string titleCase(const std::string &s) {
    std::string r = s;
    bool start = true;
    for (char &c : r) {
      if (std::isalpha((unsigned char)c)) {
        c = start ? (char)std::toupper((unsigned char)c)
                  : (char)std::tolower((unsigned char)c);
        start = false;
      } else {
        start = true;
      }
    }
    return r;
  }

  static std::string replaceAll(std::string s, const std::string &from,
                                const std::string &to, int64_t count) {
    if (from.empty())
      return s;
    size_t p = 0;
    for (int64_t done = 0; count < 0 || done < count; ++done) {
      p = s.find(from, p);
      if (p == std::string::npos)
        break;
      s.replace(p, from.size(), to);
      p += to.size();
    }
    return s;
  }

  Value stringMethod(const Value &obj, const std::string &name, size_t pos) {
    std::string s = obj.s;
    // Captured by value: the functions outlive this call.
    auto str = [this, pos](const Args &a, size_t k,
                           const char *what) -> std::string {
      if (a.size() <= k || a[k].kind == Value::None)
        return "";
      if (a[k].kind != Value::String)
        throw error(pos, std::string(what) + " takes a string");
      return a[k].s;
    };
    if (name == "strip" || name == "lstrip" || name == "rstrip")
      return Value::function([s, str, name](const Args &a, const Kwargs &) {
        return Value::string(stripChars(s, str(a, 0, name.c_str()),
                                        name != "rstrip", name != "lstrip"));
      });
    if (name == "startswith" || name == "endswith")
      return Value::function([s, str, name](const Args &a, const Kwargs &) {
        std::string x = str(a, 0, name.c_str());
        bool r = name == "startswith"
                     ? s.compare(0, x.size(), x) == 0
                     : s.size() >= x.size() &&
                           s.compare(s.size() - x.size(), x.size(), x) == 0;
        return Value::boolean(r);
      });
    if (name == "split")
      return Value::function([s, str](const Args &a, const Kwargs &) {
        List parts;
        std::string sep = str(a, 0, "split");
        if (sep.empty()) { // whitespace runs
          std::istringstream is(s);
          std::string w;
          while (is >> w)
            parts.push_back(Value::string(w));
          return Value::ofList(std::move(parts));
        }
        size_t p = 0;
        while (true) {
          size_t q = s.find(sep, p);
          if (q == std::string::npos) {
            parts.push_back(Value::string(s.substr(p)));
            break;
          }
          parts.push_back(Value::string(s.substr(p, q - p)));
          p = q + sep.size();
        }
        return Value::ofList(std::move(parts));
      });
    if (name == "upper" || name == "lower" || name == "title" ||
        name == "capitalize")
      return Value::function([s, name](const Args &, const Kwargs &) {
        std::string r = s;
        if (name == "title")
          return Value::string(titleCase(r));
        for (size_t k = 0; k < r.size(); ++k)
          r[k] = name == "upper" || (name == "capitalize" && k == 0)
                     ? (char)std::toupper((unsigned char)r[k])
                     : (char)std::tolower((unsigned char)r[k]);
        return Value::string(r);
      });
    if (name == "replace")
      return Value::function([s, str](const Args &a, const Kwargs &) {
        int64_t count = a.size() > 2 && a[2].kind == Value::Int ? a[2].i : -1;
        return Value::string(
            replaceAll(s, str(a, 0, "replace"), str(a, 1, "replace"), count));
      });
    throw error(pos, "the string method '" + name + "' is not supported");
  }

  Value dictMethod(const Value &obj, const std::string &name, size_t pos) {
    if (name == "get")
      return Value::function([obj](const Args &a, const Kwargs &) {
        if (!a.empty() && a[0].kind == Value::String)
          if (const Value *m = obj.member(a[0].s))
            return *m;
        return a.size() > 1 ? a[1] : Value::none();
      });
    if (name == "items" || name == "keys" || name == "values")
      return Value::function([obj, name](const Args &, const Kwargs &) {
        List l;
        for (const auto &[k, v] : *obj.dict) {
          if (name == "items")
            l.push_back(Value::ofList({Value::string(k), v}));
          else
            l.push_back(name == "keys" ? Value::string(k) : v);
        }
        return Value::ofList(std::move(l));
      });
    (void)pos;
    return Value(); // a missing key: undefined
  }

  bool test(const Expr &e) {
    Value v = eval(*e.kids[0]);
    const std::string &n = e.name;
    if (n == "defined")
      return v.kind != Value::Undefined;
    if (n == "undefined")
      return v.kind == Value::Undefined;
    if (n == "none")
      return v.kind == Value::None;
    if (n == "string")
      return v.kind == Value::String;
    if (n == "number")
      return v.isNumber();
    if (n == "integer")
      return v.kind == Value::Int;
    if (n == "float")
      return v.kind == Value::Float;
    if (n == "boolean")
      return v.kind == Value::Bool;
    if (n == "true")
      return v.kind == Value::Bool && v.b;
    if (n == "false")
      return v.kind == Value::Bool && !v.b;
    if (n == "mapping")
      return v.kind == Value::DictK;
    if (n == "iterable")
      return v.kind == Value::ListK || v.kind == Value::DictK ||
             v.kind == Value::String;
    if (n == "sequence")
      return v.kind == Value::ListK || v.kind == Value::String;
    if (n == "callable")
      return v.kind == Value::Func;
    if (n == "odd" || n == "even") {
      if (v.kind != Value::Int)
        throw error(e.pos, "the test '" + n + "' takes an integer");
      return (v.i % 2 != 0) == (n == "odd");
    }
    if (n == "equalto" || n == "eq" || n == "sameas") {
      if (e.args.empty())
        throw error(e.pos, "the test '" + n + "' takes a value");
      return equal(v, eval(*e.args[0]));
    }
    throw error(e.pos, "the test '" + n + "' is not supported");
  }

  bool applyTest(const std::string &name, const Value &v, const Args &args,
                 size_t pos) {
    Expr t;
    t.kind = Expr::Test;
    t.pos = pos;
    t.name = name;
    auto lit = std::make_unique<Expr>();
    lit->kind = Expr::Literal;
    lit->value = v;
    t.kids.push_back(std::move(lit));
    for (const Value &a : args) {
      auto x = std::make_unique<Expr>();
      x->kind = Expr::Literal;
      x->value = a;
      t.args.push_back(std::move(x));
    }
    return test(t);
  }

  Value filter(const Expr &e) {
    Value v = eval(*e.kids[0]);
    Args a = evalArgs(e);
    Kwargs kw = evalKwargs(e);
    const std::string &n = e.name;
    auto need = [&](Value::Kind k, const char *what) {
      if (v.kind != k)
        throw error(e.pos, "the filter '" + n + "' takes " + what + ", got a " +
                               kindName(v));
    };
    auto kwarg = [&](const char *key) -> const Value * {
      for (const auto &[k, x] : kw)
        if (k == key)
          return &x;
      return nullptr;
    };
    if (n == "trim") {
      need(Value::String, "a string");
      return Value::string(stripChars(v.s, "", true, true));
    }
    if (n == "length" || n == "count") {
      if (v.kind == Value::String)
        return Value::integer((int64_t)charStarts(v.s).size() - 1);
      if (v.kind == Value::ListK)
        return Value::integer((int64_t)v.list->size());
      if (v.kind == Value::DictK)
        return Value::integer((int64_t)v.dict->size());
      throw error(e.pos, std::string("the filter 'length' takes a string, "
                                     "list or dict, got a ") +
                             kindName(v));
    }
    if (n == "tojson") {
      int indent = 0;
      if (const Value *i = kwarg("indent"); i && i->kind == Value::Int)
        indent = (int)std::clamp<int64_t>(i->i, 0, 16);
      else if (!a.empty() && a[0].kind == Value::Int)
        indent = (int)std::clamp<int64_t>(a[0].i, 0, 16);
      std::string out;
      dumpJson(toJson(v), out, indent, 0);
      return Value::string(out);
    }
    if (n == "upper" || n == "lower" || n == "capitalize" || n == "title") {
      need(Value::String, "a string");
      return (*stringMethod(v, n, e.pos).fn)({}, {});
    }
    if (n == "replace") {
      need(Value::String, "a string");
      return (*stringMethod(v, n, e.pos).fn)(a, {});
    }
    if (n == "string")
      return Value::string(toString(v));
    if (n == "int") {
      if (v.kind == Value::Int)
        return v;
      if (v.kind == Value::Float) {
        // In range, or an error (the conversion is undefined outside it).
        if (!(v.f > -9.2e18 && v.f < 9.2e18))
          throw error(e.pos,
                      "the filter 'int' cannot represent " + formatFloat(v.f));
        return Value::integer((int64_t)v.f);
      }
      if (v.kind == Value::String)
        return Value::integer(std::strtoll(v.s.c_str(), nullptr, 10));
      return Value::integer(0);
    }
    if (n == "float") {
      if (v.isNumber())
        return Value::real(v.number());
      if (v.kind == Value::String)
        return Value::real(std::strtod(v.s.c_str(), nullptr));
      return Value::real(0);
    }
    if (n == "default" || n == "d") {
      bool boolean = a.size() > 1 && truthy(a[1]);
      if (v.kind == Value::Undefined || (boolean && !truthy(v)))
        return a.empty() ? Value::string("") : a[0];
      return v;
    }
    if (n == "first" || n == "last") {
      if (v.kind == Value::ListK) {
        if (v.list->empty())
          return Value();
        return n == "first" ? v.list->front() : v.list->back();
      }
      need(Value::String, "a list or string");
      if (v.s.empty())
        return Value();
      std::vector<size_t> starts = charStarts(v.s);
      return Value::string(
          charAt(v.s, starts, n == "first" ? 0 : starts.size() - 2));
    }
    if (n == "join") {
      need(Value::ListK, "a list");
      std::string sep = !a.empty() ? toString(a[0]) : "";
      std::string r;
      for (size_t k = 0; k < v.list->size(); ++k) {
        if (k)
          r += sep;
        r += toString((*v.list)[k]);
      }
      return Value::string(r);
    }
    if (n == "list") {
      if (v.kind == Value::ListK)
        return v;
      List l;
      if (v.kind == Value::String) {
        std::vector<size_t> starts = charStarts(v.s);
        for (size_t c = 0; c + 1 < starts.size(); ++c)
          l.push_back(Value::string(charAt(v.s, starts, c)));
      } else if (v.kind == Value::DictK)
        for (const auto &kv : *v.dict)
          l.push_back(Value::string(kv.first));
      return Value::ofList(std::move(l));
    }
    if (n == "items") {
      need(Value::DictK, "a dict");
      return (*dictMethod(v, "items", e.pos).fn)({}, {});
    }
    if (n == "reverse") {
      if (v.kind == Value::String) {
        std::vector<size_t> starts = charStarts(v.s);
        std::string r;
        for (size_t c = starts.size() - 1; c-- > 0;)
          r += charAt(v.s, starts, c);
        return Value::string(r);
      }
      need(Value::ListK, "a list or string");
      return Value::ofList(List(v.list->rbegin(), v.list->rend()));
    }
    if (n == "select" || n == "reject" || n == "selectattr" ||
        n == "rejectattr") {
      need(Value::ListK, "a list");
      bool attr = n == "selectattr" || n == "rejectattr";
      bool keepIf = n == "select" || n == "selectattr";
      size_t first = attr ? 1 : 0;
      if (attr && (a.empty() || a[0].kind != Value::String))
        throw error(e.pos, "the filter '" + n + "' takes an attribute name");
      List l;
      for (const Value &item : *v.list) {
        Value x = attr ? attribute(item, a[0].s, e.pos) : item;
        bool r;
        if (a.size() > first) {
          if (a[first].kind != Value::String)
            throw error(e.pos, "the filter '" + n + "' takes a test name");
          r = applyTest(a[first].s, x, Args(a.begin() + first + 1, a.end()),
                        e.pos);
        } else {
          r = truthy(x);
        }
        if (r == keepIf)
          l.push_back(item);
      }
      return Value::ofList(std::move(l));
    }
    if (n == "map") {
      need(Value::ListK, "a list");
      const Value *attrName = kwarg("attribute");
      if (!attrName || attrName->kind != Value::String)
        throw error(e.pos, "the filter 'map' is supported with attribute=");
      List l;
      for (const Value &item : *v.list)
        l.push_back(attribute(item, attrName->s, e.pos));
      return Value::ofList(std::move(l));
    }
    if (n == "indent") {
      need(Value::String, "a string");
      int64_t width = !a.empty() && a[0].kind == Value::Int ? a[0].i : 4;
      width = std::clamp<int64_t>(width, 0, 64);
      std::string pad((size_t)width, ' '), r;
      for (size_t k = 0; k < v.s.size(); ++k) {
        r += v.s[k];
        if (v.s[k] == '\n' && k + 1 < v.s.size())
          r += pad;
      }
      return Value::string(r);
    }
    throw error(e.pos, "the filter '" + n + "' is not supported");
  }

  Value binary(const Expr &e) {
    const std::string &op = e.name;
    if (op == "and") {
      Value a = eval(*e.kids[0]);
      return truthy(a) ? eval(*e.kids[1]) : a;
    }
    if (op == "or") {
      Value a = eval(*e.kids[0]);
      return truthy(a) ? a : eval(*e.kids[1]);
    }
    Value a = eval(*e.kids[0]), b = eval(*e.kids[1]);
    if (op == "==")
      return Value::boolean(equal(a, b));
    if (op == "!=")
      return Value::boolean(!equal(a, b));
    if (op == "in" || op == "not in") {
      bool r;
      if (b.kind == Value::String) {
        if (a.kind != Value::String)
          throw error(e.pos, "'in' a string needs a string");
        r = b.s.find(a.s) != std::string::npos;
      } else if (b.kind == Value::ListK) {
        r = std::any_of(b.list->begin(), b.list->end(),
                        [&](const Value &x) { return equal(a, x); });
      } else if (b.kind == Value::DictK) {
        r = a.kind == Value::String && b.member(a.s);
      } else if (b.kind == Value::Undefined || b.kind == Value::None) {
        r = false;
      } else {
        throw error(e.pos, std::string("'in' a ") + kindName(b));
      }
      return Value::boolean(op == "in" ? r : !r);
    }
    if (op == "~")
      return Value::string(toString(a) + toString(b));
    if (op == "<" || op == ">" || op == "<=" || op == ">=") {
      int c;
      if (a.isNumber() && b.isNumber())
        c = a.number() < b.number() ? -1 : a.number() > b.number() ? 1 : 0;
      else if (a.kind == Value::String && b.kind == Value::String)
        c = a.s.compare(b.s);
      else
        throw error(e.pos, std::string("cannot compare a ") + kindName(a) +
                               " with a " + kindName(b));
      bool r = op == "<"    ? c < 0
               : op == ">"  ? c > 0
               : op == "<=" ? c <= 0
                            : c >= 0;
      return Value::boolean(r);
    }
    if (op == "+") {
      if (a.kind == Value::String && b.kind == Value::String)
        return Value::string(a.s + b.s);
      if (a.kind == Value::ListK && b.kind == Value::ListK) {
        List l = *a.list;
        l.insert(l.end(), b.list->begin(), b.list->end());
        return Value::ofList(std::move(l));
      }
      // Undefined adds as an empty string next to a string (as
      // @huggingface/jinja renders it).
      if (a.kind == Value::String && b.kind == Value::Undefined)
        return a;
      if (b.kind == Value::String && a.kind == Value::Undefined)
        return b;
    }
    if (a.isNumber() && b.isNumber()) {
      bool ints = a.kind == Value::Int && b.kind == Value::Int;
      // Integers that overflow 64 bits are an error, not a wrap.
      auto checked = [&](bool overflow, int64_t r) {
        if (overflow)
          throw error(e.pos, "integer overflow in '" + op + "'");
        return Value::integer(r);
      };
      int64_t r = 0;
      if (op == "+")
        return ints ? checked(__builtin_add_overflow(a.i, b.i, &r), r)
                    : Value::real(a.number() + b.number());
      if (op == "-")
        return ints ? checked(__builtin_sub_overflow(a.i, b.i, &r), r)
                    : Value::real(a.number() - b.number());
      if (op == "*")
        return ints ? checked(__builtin_mul_overflow(a.i, b.i, &r), r)
                    : Value::real(a.number() * b.number());
      if (op == "/") {
        if (b.number() == 0)
          throw error(e.pos, "division by zero");
        return Value::real(a.number() / b.number());
      }
      if (op == "//" || op == "%") {
        if (b.number() == 0)
          throw error(e.pos, "division by zero");
        if (ints) {
          if (a.i == INT64_MIN && b.i == -1)
            throw error(e.pos, "integer overflow in '" + op + "'");
          int64_t q = a.i / b.i, r = a.i % b.i;
          if (r != 0 && ((r < 0) != (b.i < 0))) {
            --q;
            r += b.i;
          }
          return Value::integer(op == "//" ? q : r);
        }
        double q = std::floor(a.number() / b.number());
        return Value::real(op == "//" ? q : a.number() - q * b.number());
      }
    }
    if (op == "*" && a.kind == Value::String && b.kind == Value::Int) {
      std::string r;
      for (int64_t k = 0; k < b.i; ++k) {
        if (r.size() + a.s.size() > kMaxTemplateOutput)
          throw error(e.pos, "a repeated string exceeds the output limit");
        r += a.s;
      }
      return Value::string(r);
    }
    throw error(e.pos, "'" + op + "' between a " + kindName(a) + " and a " +
                           kindName(b) + " is not supported");
  }

  const std::string &src;
  std::string &out;
  std::vector<std::map<std::string, Value>> scopes{1};
  size_t steps = 0, depth = 0;
};

} // namespace

bool renderChatTemplate(const std::string &source,
                        const ChatTemplateInput &input, std::string &out,
                        std::string &error) {
  out.clear();
  try {
    std::string src = preprocess(source);
    Lexer lexer(src);
    Parser parser(lexer.run(), src);
    Body body = parser.parseTemplate();
    Renderer r(src, out);
    List messages;
    for (const ChatMessage &m : input.messages)
      messages.push_back(
          Value::ofDict({{"role", Value::string(m.role)},
                         {"content", Value::string(m.content)}}));
    r.set("messages", Value::ofList(std::move(messages)));
    r.set("bos_token", Value::string(input.bosToken));
    r.set("eos_token", Value::string(input.eosToken));
    r.set("add_generation_prompt", Value::boolean(input.addGenerationPrompt));
    if (!input.variablesJson.empty()) {
      auto vars = nlohmann::ordered_json::parse(input.variablesJson, nullptr,
                                                /*allow_exceptions=*/false);
      if (!vars.is_object())
        throw TemplateError("the template variables are not a JSON object: " +
                            input.variablesJson.substr(0, 80));
      for (auto it = vars.begin(); it != vars.end(); ++it)
        r.set(it.key(), fromJson(it.value()));
    }
    r.render(body);
    return true;
  } catch (const TemplateError &e) {
    error = e.what();
  } catch (const std::bad_alloc &) {
    error = "out of memory rendering the template";
  } catch (const std::exception &e) {
    error = std::string("cannot render the template: ") + e.what();
  }
  out.clear();
  return false;
}

} // namespace kiln::rt
