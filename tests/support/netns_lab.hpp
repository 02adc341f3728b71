#pragma once

// Network namespaces for partition tests (tests run as root): each host of
// a lab gets a namespace of its own with two links, one to a "data" bridge
// (node-to-node traffic, clients) and one to a "control" bridge (etcd), so a
// test cuts exactly one path by taking one link down. The bridges carry
// addresses in the root namespace, where the test, its clients and etcd
// run. Everything a lab creates is named after the creating process and
// removed when the lab goes, also when the test fails; leftovers of a
// process that died are removed when the next lab is made.

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace keel::test {

class netns_lab {
public:
  struct host {
    std::string name;
    /// The namespace (`ip netns exec <ns> ...`).
    std::string ns;
    std::string data_ip;
    std::string control_ip;
    /// The root-namespace ends of its two links.
    std::string data_link;
    std::string control_link;
  };

  /// Creates the two bridges; nullptr with the reason in `why` when the
  /// machine cannot (not root, no `ip`).
  static std::unique_ptr<netns_lab> create(std::string& why);
  ~netns_lab();
  netns_lab(const netns_lab&) = delete;
  netns_lab& operator=(const netns_lab&) = delete;

  /// Adds host `name` (up to 250 hosts): its namespace, links and addresses.
  /// Returns nullptr (with `why`) when a command failed.
  const host* add(const std::string& name, std::string& why);
  const host& operator[](const std::string& name) const;
  /// Host `name`, or nullptr.
  const host* find(const std::string& name) const;

  /// The root namespace's addresses on the bridges (etcd listens on the
  /// control one; clients reach the hosts through the data one).
  const std::string& data_gateway() const noexcept {
    return data_gw_;
  }
  const std::string& control_gateway() const noexcept {
    return control_gw_;
  }

  /// Takes a host's data or control link down (packets to and from it are
  /// dropped: a partition), and brings it up again.
  bool cut_data(const std::string& name, bool cut = true);
  bool cut_control(const std::string& name, bool cut = true);

  /// The command prefix that runs a program in host `name`'s namespace.
  std::vector<std::string> exec_prefix(const std::string& name) const;

private:
  netns_lab() = default;
  static void remove_leftovers();

  std::string tag_;
  int subnet_ = 0;
  std::string data_bridge_;
  std::string control_bridge_;
  std::string data_gw_;
  std::string control_gw_;
  std::map<std::string, host> hosts_;
};

/// Runs `ip args...`; true on exit code 0 (stderr goes to `why`).
bool ip(const std::vector<std::string>& args, std::string* why = nullptr);

} // namespace keel::test
