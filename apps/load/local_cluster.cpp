#include "local_cluster.hpp"

#include <algorithm>
#include <csignal>
#include <thread>

#include "http_client.hpp"
#include "keel/events/error.hpp"

namespace keel::bench {

std::unique_ptr<local_cluster> local_cluster::start(options o, std::string& why) {
  std::unique_ptr<local_cluster> c{new local_cluster()};
  c->o_ = std::move(o);
  c->secret_ = random_secret();
  c->etcd_ = etcd_process::start(why);
  if (!c->etcd_)
    return nullptr;
  c->dir_ = std::make_unique<temp_dir>("keel-cluster");
  return c;
}

local_cluster::~local_cluster() {
  // Nodes first (they leave etcd), then etcd.
  for (auto& kv : nodes_)
    if (kv.second && kv.second->running())
      kv.second->stop(std::chrono::seconds(30));
  nodes_.clear();
}

std::vector<std::string> local_cluster::args_of(const std::string& id) const {
  std::vector<std::string> args{"run",
                                "--data",
                                dir_->path() + "/" + id,
                                "--http",
                                "127.0.0.1:0",
                                "--etcd",
                                etcd_->url(),
                                "--node-id",
                                id,
                                "--cluster",
                                o_.cluster,
                                "--cluster-listen",
                                "127.0.0.1:0",
                                "--slots",
                                std::to_string(o_.slots),
                                "--settle-ms",
                                std::to_string(o_.settle.count())};
  args.insert(args.end(), o_.node_args.begin(), o_.node_args.end());
  return args;
}

bool local_cluster::add(const std::string& id, std::string& why, std::vector<std::string> extra) {
  server_process::options po;
  po.program = executable_dir() + "/keel-node";
  po.args = args_of(id);
  po.args.insert(po.args.end(), extra.begin(), extra.end());
  po.base = dir_->path() + "/" + id;
  po.ready_path = "/ready";
  po.env = {{"KEEL_JWT_SECRET", secret_}};
  auto p = server_process::start(po, why);
  if (!p)
    return false;
  nodes_[id] = std::move(p);
  return true;
}

bool local_cluster::add_all(const std::vector<std::string>& ids, std::string& why) {
  // One after the other (a node is ready in well under the settle time).
  for (auto& id : ids)
    if (!add(id, why)) {
      why = id + ": " + why;
      return false;
    }
  return true;
}

void local_cluster::kill(const std::string& id) {
  nodes_.at(id)->signal_and_wait(SIGKILL, std::chrono::seconds(10));
}

int local_cluster::stop(const std::string& id, std::chrono::seconds timeout) {
  return nodes_.at(id)->stop(timeout);
}

bool local_cluster::restart(const std::string& id, std::string& why) {
  return nodes_.at(id)->restart({}, {}, why);
}

std::string local_cluster::url(const std::string& id) const {
  return "http://127.0.0.1:" + std::to_string(nodes_.at(id)->port());
}

std::string local_cluster::data(const std::string& id) const {
  return dir_->path() + "/" + id;
}

bool local_cluster::running(const std::string& id) const {
  auto i = nodes_.find(id);
  return i != nodes_.end() && i->second->running();
}

std::vector<std::string> local_cluster::ids() const {
  std::vector<std::string> out;
  for (auto& kv : nodes_)
    out.push_back(kv.first);
  return out;
}

std::string local_cluster::etcd_url() const {
  return etcd_->url();
}

server_process& local_cluster::process(const std::string& id) {
  return *nodes_.at(id);
}

cluster::cluster_view local_cluster::view() const {
  auto etcd = cluster::etcd_client::connect(etcd_->url());
  if (!etcd)
    return {};
  auto v = cluster::read_view(**etcd, o_.cluster);
  return v ? *v : cluster::cluster_view{};
}

bool local_cluster::wait_balanced(std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto running_ids = std::vector<std::string>{};
  for (auto& kv : nodes_)
    if (kv.second->running())
      running_ids.push_back(kv.first);
  auto balanced = [&] {
    auto v = view();
    if (v.slots == 0 || !v.settled())
      return false;
    // A standby of a replicated group holds no slot of its own.
    std::vector<std::string> holders;
    for (auto& id : running_ids) {
      auto* p = v.primary(v.group_of(id));
      if (p == nullptr || p->node_id == id)
        holders.push_back(id);
    }
    std::size_t lo = v.slots, hi = 0, held = 0;
    for (auto& id : holders) {
      lo = std::min(lo, v.held_by(id));
      hi = std::max(hi, v.held_by(id));
      held += v.held_by(id);
    }
    if (hi > lo + 1 || held < v.slots)
      return false;
    for (auto& id : running_ids) {
      auto ep = parse_url(url(id));
      auto c = ep ? connect(*ep) : nullptr;
      auto m = c ? fetch_metrics(*c) : std::nullopt;
      if (!m || m->value("keel_cluster_peers_connected") + 1 < running_ids.size()
          || m->value("keel_cluster_slots_without_owner") != 0)
        return false;
    }
    return true;
  };
  while (!balanced()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  return true;
}

} // namespace keel::bench
