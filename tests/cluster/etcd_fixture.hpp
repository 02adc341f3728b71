#pragma once

// What the cluster tests share: their own etcd, and clients of it.

#include <memory>
#include <string>

#include <catch2/catch.hpp>

#include "etcd_client.hpp"
#include "etcd_process.hpp"
#include "keel/events/error.hpp"

namespace keel::test {

/// A fresh single-member etcd (REQUIREs that it starts).
inline std::unique_ptr<bench::etcd_process> start_etcd() {
  std::string why;
  auto e = bench::etcd_process::start(why);
  INFO(why);
  REQUIRE(e);
  return e;
}

inline std::unique_ptr<cluster::etcd_client> client_of(const bench::etcd_process& e) {
  auto c = cluster::etcd_client::connect(e.url());
  INFO((c ? std::string{} : describe(c.error())));
  REQUIRE(c);
  return std::move(*c);
}

} // namespace keel::test
