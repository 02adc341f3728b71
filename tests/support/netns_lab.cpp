#include "netns_lab.hpp"

#include <csignal>
#include <cstdio>
#include <stdexcept>

#include <sys/wait.h>
#include <unistd.h>

namespace keel::test {

namespace {

/// Runs `argv`, collecting its output; returns the exit code (-1: no start).
int run(const std::vector<std::string>& argv, std::string& output) {
  std::string cmd;
  for (auto& a : argv)
    cmd += "'" + a + "' ";
  cmd += "2>&1";
  auto* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr)
    return -1;
  char buf[512];
  while (auto n = std::fread(buf, 1, sizeof buf, p))
    output.append(buf, n);
  auto status = ::pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool alive(int pid) {
  return ::kill(pid, 0) == 0 || errno != ESRCH;
}

} // namespace

bool ip(const std::vector<std::string>& args, std::string* why) {
  std::vector<std::string> argv{"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string out;
  auto rc = run(argv, out);
  if (rc != 0 && why != nullptr) {
    *why = "ip";
    for (auto& a : args)
      *why += " " + a;
    *why += ": " + out;
  }
  return rc == 0;
}

void netns_lab::remove_leftovers() {
  // Namespaces "keel-<pid>-..." and links "kd<pid>", "kc<pid>", "kv<pid>..."
  // of processes that are gone.
  std::string out;
  run({"ip", "netns", "list"}, out);
  std::size_t at = 0;
  while ((at = out.find("keel-", at)) != std::string::npos) {
    auto end = out.find_first_of(" \n", at);
    auto name = out.substr(at, end - at);
    at = end;
    auto pid = std::atoi(name.c_str() + 5);
    if (pid > 0 && !alive(pid))
      ip({"netns", "delete", name});
  }
  out.clear();
  run({"ip", "-o", "link", "show"}, out);
  at = 0;
  while ((at = out.find(": k", at)) != std::string::npos) {
    auto start = at + 2;
    auto end = out.find_first_of(":@", start);
    auto name = out.substr(start, end - start);
    at = end;
    if (name.size() < 3 || (name[1] != 'd' && name[1] != 'c' && name[1] != 'v'))
      continue;
    auto pid = std::atoi(name.c_str() + 2);
    if (pid > 0 && !alive(pid))
      ip({"link", "delete", name});
  }
}

std::unique_ptr<netns_lab> netns_lab::create(std::string& why) {
  if (::geteuid() != 0) {
    why = "network namespaces need root";
    return nullptr;
  }
  remove_leftovers();
  std::unique_ptr<netns_lab> lab{new netns_lab()};
  // Interface names have at most 15 bytes: "kd" + pid (<= 7 digits).
  lab->tag_ = std::to_string(::getpid());
  lab->subnet_ = 100 + ::getpid() % 100;
  lab->data_bridge_ = "kd" + lab->tag_;
  lab->control_bridge_ = "kc" + lab->tag_;
  auto prefix = "10." + std::to_string(lab->subnet_);
  lab->data_gw_ = prefix + ".1.254";
  lab->control_gw_ = prefix + ".2.254";
  for (auto [bridge, gw] : {std::pair{lab->data_bridge_, lab->data_gw_},
                            std::pair{lab->control_bridge_, lab->control_gw_}}) {
    if (!ip({"link", "add", bridge, "type", "bridge"}, &why)
        || !ip({"addr", "add", gw + "/24", "dev", bridge}, &why)
        || !ip({"link", "set", bridge, "up"}, &why))
      return nullptr;
  }
  return lab;
}

netns_lab::~netns_lab() {
  for (auto& [name, h] : hosts_) {
    ip({"netns", "delete", h.ns});
    ip({"link", "delete", h.data_link});
    ip({"link", "delete", h.control_link});
  }
  ip({"link", "delete", data_bridge_});
  ip({"link", "delete", control_bridge_});
}

const netns_lab::host* netns_lab::add(const std::string& name, std::string& why) {
  auto n = hosts_.size() + 1;
  if (n > 250) {
    why = "at most 250 hosts";
    return nullptr;
  }
  host h;
  h.name = name;
  h.ns = "keel-" + tag_ + "-" + name;
  auto num = std::to_string(n);
  h.data_link = "kv" + tag_ + "d" + num;
  h.control_link = "kv" + tag_ + "c" + num;
  auto prefix = "10." + std::to_string(subnet_);
  h.data_ip = prefix + ".1." + num;
  h.control_ip = prefix + ".2." + num;
  hosts_[name] = h; // removed with the lab even when a step below fails
  const std::string inner_data = "eth-data";
  const std::string inner_control = "eth-ctl";
  auto in_ns = [&](std::vector<std::string> args) {
    std::vector<std::string> full{"-n", h.ns};
    full.insert(full.end(), args.begin(), args.end());
    return ip(full, &why);
  };
  bool ok = ip({"netns", "add", h.ns}, &why) && in_ns({"link", "set", "lo", "up"});
  for (auto [outer, inner, bridge, addr] :
       {std::tuple{h.data_link, inner_data, data_bridge_, h.data_ip},
        std::tuple{h.control_link, inner_control, control_bridge_, h.control_ip}}) {
    ok = ok && ip({"link", "add", outer, "type", "veth", "peer", "name", inner, "netns", h.ns}, &why)
         && ip({"link", "set", outer, "master", bridge}, &why)
         && ip({"link", "set", outer, "up"}, &why)
         && in_ns({"addr", "add", addr + "/24", "dev", inner})
         && in_ns({"link", "set", inner, "up"});
  }
  if (!ok)
    return nullptr;
  return &hosts_.at(name);
}

const netns_lab::host& netns_lab::operator[](const std::string& name) const {
  auto i = hosts_.find(name);
  if (i == hosts_.end())
    throw std::out_of_range("no host " + name + " in the lab");
  return i->second;
}

const netns_lab::host* netns_lab::find(const std::string& name) const {
  auto i = hosts_.find(name);
  return i == hosts_.end() ? nullptr : &i->second;
}

bool netns_lab::cut_data(const std::string& name, bool cut) {
  return ip({"link", "set", (*this)[name].data_link, cut ? "down" : "up"});
}

bool netns_lab::cut_control(const std::string& name, bool cut) {
  return ip({"link", "set", (*this)[name].control_link, cut ? "down" : "up"});
}

std::vector<std::string> netns_lab::exec_prefix(const std::string& name) const {
  return {"ip", "netns", "exec", (*this)[name].ns};
}

} // namespace keel::test
