// PrometheusText: writes the Prometheus text exposition format (version
// 0.0.4): a `# HELP` and `# TYPE` line per metric family, then its samples,
// label values escaped. A family's samples must be written right after its
// Family() call. Not thread-safe; header-only.
//
//   util::PrometheusText out;
//   out.Family("replicator_puts_total", "counter", "Puts answered, by outcome.");
//   out.Sample("replicator_puts_total", {{"outcome", "ok"}}, 12);
//   out.Histogram("replicator_put_duration_seconds", {}, histogram.Snapshot());
//   std::string body = out.Take();
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fmt/format.h"
#include "util/histogram.h"

namespace replicator::util {

using Labels = std::vector<std::pair<std::string, std::string>>;

class PrometheusText {
 public:
  static constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

  // `type`: counter, gauge or histogram. `help` is escaped.
  void Family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, EscapeHelp(help), name, type);
  }

  void Sample(std::string_view name, const Labels& labels, double value) {
    out_ += name;
    AppendLabels(labels, nullptr);
    out_ += ' ';
    out_ += FormatValue(value);
    out_ += '\n';
  }

  // The _bucket (cumulative, with le="+Inf"), _sum and _count samples of
  // histogram family `name`.
  void Histogram(std::string_view name, const Labels& labels, const HistogramSnapshot& h) {
    uint64_t cumulative = 0;
    const std::string bucket = std::string(name) + "_bucket";
    for (size_t i = 0; i < h.buckets.size(); ++i) {
      cumulative += h.buckets[i];
      std::string le = i < h.bounds.size() ? FormatValue(h.bounds[i]) : "+Inf";
      out_ += bucket;
      std::pair<std::string, std::string> le_label{"le", le};
      AppendLabels(labels, &le_label);
      out_ += fmt::format(" {}\n", cumulative);
    }
    out_ += std::string(name) + "_sum";
    AppendLabels(labels, nullptr);
    out_ += " " + FormatValue(h.sum) + "\n";
    out_ += std::string(name) + "_count";
    AppendLabels(labels, nullptr);
    out_ += fmt::format(" {}\n", h.count);
  }

  std::string Take() { return std::move(out_); }

  // Label values: backslash, double quote and newline escaped.
  static std::string EscapeLabel(std::string_view v) {
    std::string s;
    for (char c : v) {
      if (c == '\\') {
        s += "\\\\";
      } else if (c == '"') {
        s += "\\\"";
      } else if (c == '\n') {
        s += "\\n";
      } else {
        s += c;
      }
    }
    return s;
  }
  // HELP text: backslash and newline escaped.
  static std::string EscapeHelp(std::string_view v) {
    std::string s;
    for (char c : v) {
      if (c == '\\') {
        s += "\\\\";
      } else if (c == '\n') {
        s += "\\n";
      } else {
        s += c;
      }
    }
    return s;
  }
  // Integers without a fraction, others in shortest round-trip form.
  static std::string FormatValue(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    if (v == std::floor(v) && std::fabs(v) < 1e15)
      return fmt::format("{}", static_cast<int64_t>(v));
    return fmt::format("{}", v);
  }

 private:
  void AppendLabels(const Labels& labels, const std::pair<std::string, std::string>* extra) {
    if (labels.empty() && extra == nullptr) return;
    out_ += '{';
    bool first = true;
    auto add = [&](const std::pair<std::string, std::string>& l) {
      if (!first) out_ += ',';
      first = false;
      out_ += l.first;
      out_ += "=\"";
      out_ += EscapeLabel(l.second);
      out_ += '"';
    };
    for (const auto& l : labels) add(l);
    if (extra != nullptr) add(*extra);
    out_ += '}';
  }

  std::string out_;
};

}  // namespace replicator::util
