// The network-namespace lab of the partition tests: hosts reach each other
// over the data bridge and etcd's side over the control bridge, a cut link
// drops exactly that path, and everything goes with the lab.

#include <catch2/catch.hpp>

#include "child_process.hpp"
#include "netns_lab.hpp"

using namespace keel::test;
using namespace std::chrono_literals;

namespace {

/// Whether host `from` of `lab` gets an answer from `to_ip` (one ping, 1 s).
bool reaches(const netns_lab& lab, const std::string& from, const std::string& to_ip) {
  auto args = lab.exec_prefix(from);
  args.erase(args.begin()); // the program is "ip"
  args.insert(args.end(), {"ping", "-c", "1", "-W", "1", to_ip});
  auto r = run_child("/usr/sbin/ip", args, 5s);
  return WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0;
}

} // namespace

TEST_CASE("a netns lab connects its hosts over two bridges and cuts one path at a time",
          "[netns]") {
  std::string why;
  std::string ns_of_b;
  {
    auto lab = netns_lab::create(why);
    INFO(why);
    REQUIRE(lab);
    REQUIRE(lab->add("a", why));
    REQUIRE(lab->add("b", why));
    auto& a = (*lab)["a"];
    auto& b = (*lab)["b"];
    ns_of_b = b.ns;
    CHECK(reaches(*lab, "a", b.data_ip));
    CHECK(reaches(*lab, "a", b.control_ip));
    CHECK(reaches(*lab, "b", lab->control_gateway())); // etcd's side
    // Cut b's data link: a still reaches b's control address, not its data one.
    REQUIRE(lab->cut_data("b"));
    CHECK_FALSE(reaches(*lab, "a", b.data_ip));
    CHECK(reaches(*lab, "a", b.control_ip));
    REQUIRE(lab->cut_data("b", false));
    CHECK(reaches(*lab, "a", b.data_ip));
    // Cut a from the control bridge (etcd): its data path stays.
    REQUIRE(lab->cut_control("a"));
    CHECK_FALSE(reaches(*lab, "a", lab->control_gateway()));
    CHECK(reaches(*lab, "a", b.data_ip));
    (void)a;
  }
  // Gone with the lab.
  CHECK_FALSE(ip({"netns", "exec", ns_of_b, "true"}));
}
