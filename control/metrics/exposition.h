#pragma once
// Prometheus text exposition format 0.0.4: families (HELP, TYPE) each
// followed by all of their samples, label values escaped as the format says.
// The writer keeps a family's samples together by construction: a sample is
// always written under the family started last.

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lopower::metrics {

using label = std::pair<std::string_view, std::string_view>;

class exposition {
 public:
  enum class kind { counter, gauge };

  // Starts a family; the samples that follow belong to it.
  void family(std::string_view name, kind type, std::string_view help);
  void sample(std::initializer_list<label> labels, double value) { sample(std::vector<label>(labels), value); }
  void sample(const std::vector<label>& labels, double value);
  // A family with a single unlabelled sample.
  void single(std::string_view name, kind type, std::string_view help, double value);

  const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::string current_;
};

// The content type a scraper expects for this format.
inline constexpr std::string_view content_type = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace lopower::metrics
