#include "metrics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace keel::runtime {

histogram::histogram(std::vector<double> bounds)
  : bounds_(std::move(bounds)),
    counts_(new std::atomic<std::uint64_t>[bounds_.size() + 1]) {
  for (std::size_t i = 0; i <= bounds_.size(); ++i)
    counts_[i].store(0, std::memory_order_relaxed);
}

void histogram::observe(double value) {
  auto i = static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value)
                                    - bounds_.begin());
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_micros_.fetch_add(static_cast<std::int64_t>(std::llround(value * 1e6)),
                        std::memory_order_relaxed);
}

double histogram::sum() const noexcept {
  return static_cast<double>(sum_micros_.load(std::memory_order_relaxed)) / 1e6;
}

double histogram::quantile(double q) const {
  std::vector<std::uint64_t> counts(bounds_.size() + 1);
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < counts.size(); ++i)
    total += counts[i] = bucket(i);
  if (total == 0)
    return 0;
  auto rank = q * static_cast<double>(total);
  double seen = 0;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    if (seen + static_cast<double>(counts[i]) >= rank && counts[i] > 0) {
      if (i == bounds_.size())
        return bounds_.empty() ? 0 : bounds_.back();
      auto lo = i == 0 ? 0.0 : bounds_[i - 1];
      auto frac = (rank - seen) / static_cast<double>(counts[i]);
      return lo + (bounds_[i] - lo) * std::clamp(frac, 0.0, 1.0);
    }
    seen += static_cast<double>(counts[i]);
  }
  return bounds_.empty() ? 0 : bounds_.back();
}

std::vector<double> latency_buckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
          0.5,    1,     2.5,    5,     10,   30,    60};
}

namespace {

void append_number(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
    return;
  }
  if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
    return;
  }
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15)
    std::snprintf(buf, sizeof(buf), "%.0f", v);
  else
    std::snprintf(buf, sizeof(buf), "%.9g", v);
  out += buf;
}

void append_label_value(std::string& out, std::string_view v) {
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
}

void append_labels(std::string& out, const label_list& labels) {
  if (labels.empty())
    return;
  out += '{';
  bool first = true;
  for (auto& [k, v] : labels) {
    if (!first)
      out += ',';
    first = false;
    out += k;
    out += "=\"";
    append_label_value(out, v);
    out += '"';
  }
  out += '}';
}

} // namespace

void exposition::family(std::string_view name, std::string_view type, std::string_view help) {
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  out_ += help;
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type;
  out_ += '\n';
}

void exposition::sample(std::string_view name, const label_list& labels, double value) {
  out_ += name;
  append_labels(out_, labels);
  out_ += ' ';
  append_number(out_, value);
  out_ += '\n';
}

void exposition::samples(std::string_view name, const label_list& labels, const histogram& h) {
  std::string bucket{name};
  bucket += "_bucket";
  std::uint64_t cumulative = 0;
  auto with_le = labels;
  with_le.emplace_back("le", "");
  for (std::size_t i = 0; i <= h.bounds().size(); ++i) {
    cumulative += h.bucket(i);
    if (i < h.bounds().size()) {
      with_le.back().second.clear();
      append_number(with_le.back().second, h.bounds()[i]);
    } else {
      with_le.back().second = "+Inf";
    }
    sample(bucket, with_le, static_cast<double>(cumulative));
  }
  sample(std::string{name} + "_sum", labels, h.sum());
  sample(std::string{name} + "_count", labels, static_cast<double>(cumulative));
}

void exposition::single(std::string_view name, std::string_view type, std::string_view help,
                        double value) {
  family(name, type, help);
  sample(name, {}, value);
}

} // namespace keel::runtime
