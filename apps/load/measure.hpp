#pragma once

// What the load programs share: argument access, percentiles, medians,
// temporary directories, a steady clock in seconds.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "temp_dir.hpp"

namespace keel::bench {

/// Parsed `--name value` options and flags of one subcommand.
struct arguments {
  std::map<std::string, std::string> values;
  std::map<std::string, bool> flags;

  /// Returns the option's value, or `fallback`; exits 2 on a bad number.
  std::uint64_t number(const std::string& name, std::uint64_t fallback) const;
  std::string text(const std::string& name, const std::string& fallback) const;
  bool flag(const std::string& name) const;
};

/// Parses argv[first..] against the allowed option and flag names; exits 2
/// with a message on anything else.
arguments parse(int argc, char** argv, int first, const std::vector<std::string>& options,
                const std::vector<std::string>& flags);

/// Returns the p-th percentile (0..100) of `values` (sorted in place).
double percentile(std::vector<double>& values, double p);

/// Returns the p-th percentile (0..100) of `sorted` (ascending), 0 when empty.
double sorted_percentile(const std::vector<double>& sorted, double p);

/// Seconds since an arbitrary epoch (steady clock).
double seconds_now();

/// Median of `values` (sorted in place).
double median(std::vector<double>& values);

} // namespace keel::bench
