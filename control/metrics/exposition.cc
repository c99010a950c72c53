#include "control/metrics/exposition.h"

#include <charconv>
#include <cmath>

namespace lopower::metrics {
namespace {

// Label values: backslash, double quote and line feed are escaped.
void append_label_value(std::string& out, std::string_view v) {
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
}

// HELP text: backslash and line feed are escaped.
void append_help(std::string& out, std::string_view v) {
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
}

// Integers print as integers (counters of bytes exceed a double's exact range
// only past 2^53, years away); everything else in the shortest exact form.
void append_value(std::string& out, double v) {
  if (std::isnan(v)) return void(out += "NaN");
  if (std::isinf(v)) return void(out += v > 0 ? "+Inf" : "-Inf");
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

}  // namespace

void exposition::family(std::string_view name, kind type, std::string_view help) {
  current_ = name;
  text_ += "# HELP ";
  text_ += name;
  text_ += ' ';
  append_help(text_, help);
  text_ += "\n# TYPE ";
  text_ += name;
  text_ += type == kind::counter ? " counter\n" : " gauge\n";
}

void exposition::sample(const std::vector<label>& labels, double value) {
  text_ += current_;
  if (!labels.empty()) {
    text_ += '{';
    for (std::size_t i = 0; i < labels.size(); ++i) {
      if (i) text_ += ',';
      text_ += labels[i].first;
      text_ += "=\"";
      append_label_value(text_, labels[i].second);
      text_ += '"';
    }
    text_ += '}';
  }
  text_ += ' ';
  append_value(text_, value);
  text_ += '\n';
}

void exposition::single(std::string_view name, kind type, std::string_view help, double value) {
  family(name, type, help);
  sample({}, value);
}

}  // namespace lopower::metrics
