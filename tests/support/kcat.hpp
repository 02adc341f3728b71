#pragma once

// Reading Keel's topics with kcat, a separate process, as an operator would.

#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "child_process.hpp"

namespace keel::test {

inline const std::string kcat_path = "/usr/bin/kcat";

/// Every message of `topic`, read by kcat from the beginning to the end.
inline std::vector<nlohmann::json> kcat_read(const std::string& bootstrap,
                                             const std::string& topic) {
  using namespace std::chrono_literals;
  auto res = run_child(kcat_path,
                       {"-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q",
                        "-X", "fetch.wait.max.ms=10"},
                       30s);
  REQUIRE_FALSE(res.killed());
  REQUIRE(res.status == 0);
  std::vector<nlohmann::json> out;
  std::istringstream lines{res.out};
  for (std::string line; std::getline(lines, line);)
    if (!line.empty())
      out.push_back(nlohmann::json::parse(line));
  return out;
}

/// kcat's -J headers ["k1","v1","k2","v2",...] as a map.
inline std::map<std::string, std::string> headers_of(const nlohmann::json& msg) {
  std::map<std::string, std::string> out;
  if (!msg.contains("headers"))
    return out;
  auto& h = msg["headers"];
  for (std::size_t i = 0; i + 1 < h.size(); i += 2)
    out[h[i].get<std::string>()] = h[i + 1].get<std::string>();
  return out;
}

} // namespace keel::test
