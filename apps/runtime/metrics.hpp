#pragma once

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace keel::runtime {

/// A cumulative histogram with fixed upper bounds, for Prometheus.
/// Thread-safe: `observe` is lock-free; a reader may see a sample in the
/// count before the sum (harmless for monitoring).
class histogram {
public:
  /// `bounds`: increasing upper bounds (the +Inf bucket is implicit).
  explicit histogram(std::vector<double> bounds);

  void observe(double value);

  const std::vector<double>& bounds() const noexcept {
    return bounds_;
  }
  /// Count of the bucket `i` (not cumulative); `i == bounds().size()` is +Inf.
  std::uint64_t bucket(std::size_t i) const noexcept {
    return counts_[i].load(std::memory_order_relaxed);
  }
  std::uint64_t count() const noexcept {
    return count_.load(std::memory_order_relaxed);
  }
  double sum() const noexcept;

  /// The value below which `q` (0..1) of the samples fall, interpolated
  /// within its bucket (0 without samples).
  double quantile(double q) const;

private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::int64_t> sum_micros_{0};
};

/// Latency buckets in seconds, 0.5 ms .. 60 s.
std::vector<double> latency_buckets();

using label_list = std::vector<std::pair<std::string, std::string>>;

/// Writes the Prometheus text exposition format (version 0.0.4): one
/// `family` header, then its samples, for each metric family in turn.
class exposition {
public:
  /// Starts family `name` of `type` ("counter", "gauge", "histogram").
  void family(std::string_view name, std::string_view type, std::string_view help);

  /// A sample of the current family (`suffix` for histograms: "_bucket", ...).
  void sample(std::string_view name, const label_list& labels, double value);

  /// The samples of `h` under the current family.
  void samples(std::string_view name, const label_list& labels, const histogram& h);

  /// One gauge or counter family with a single unlabelled sample.
  void single(std::string_view name, std::string_view type, std::string_view help, double value);

  std::string take() {
    return std::move(out_);
  }

private:
  std::string out_;
};

} // namespace keel::runtime
