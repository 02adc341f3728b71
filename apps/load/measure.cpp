#include "measure.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>

namespace keel::bench {

namespace {

[[noreturn]] void fail(const std::string& msg) {
  std::cerr << "keel-bench: " << msg << '\n';
  std::exit(2);
}

} // namespace

std::uint64_t arguments::number(const std::string& name, std::uint64_t fallback) const {
  auto i = values.find(name);
  if (i == values.end())
    return fallback;
  const auto& t = i->second;
  if (t.empty() || t.size() > 19 || t.find_first_not_of("0123456789") != std::string::npos)
    fail(name + " must be a non-negative integer, got '" + t + "'");
  return std::stoull(t);
}

std::string arguments::text(const std::string& name, const std::string& fallback) const {
  auto i = values.find(name);
  return i == values.end() ? fallback : i->second;
}

bool arguments::flag(const std::string& name) const {
  return flags.count(name) > 0;
}

arguments parse(int argc, char** argv, int first, const std::vector<std::string>& options,
                const std::vector<std::string>& flags) {
  arguments a;
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (std::find(flags.begin(), flags.end(), arg) != flags.end()) {
      a.flags[arg] = true;
    } else if (std::find(options.begin(), options.end(), arg) != options.end()) {
      if (i + 1 >= argc)
        fail(arg + " needs a value");
      a.values[arg] = argv[++i];
    } else {
      fail("unknown argument '" + arg + "'");
    }
  }
  return a;
}

double sorted_percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty())
    return 0;
  auto rank = static_cast<std::size_t>(p / 100.0 * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(rank, sorted.size() - 1)];
}

double percentile(std::vector<double>& values, double p) {
  std::sort(values.begin(), values.end());
  return sorted_percentile(values, p);
}

double median(std::vector<double>& values) {
  return percentile(values, 50);
}

double seconds_now() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

} // namespace keel::bench
