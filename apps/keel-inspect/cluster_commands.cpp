// keel-inspect cluster: the cluster as etcd records it (members, slot map,
// holders with their fencing tokens) and as each member sees it (its
// /metrics).

#include <httplib.h>

#include <iostream>
#include <map>

#include "agent.hpp"
#include "commands.hpp"
#include "keel/events/error.hpp"

namespace keel::inspect {

namespace {

/// What one member's /metrics says of the cluster; empty when unreachable.
std::map<std::string, double> member_figures(const std::string& http) {
  std::map<std::string, double> out;
  auto colon = http.rfind(':');
  if (colon == std::string::npos)
    return out;
  httplib::Client c{http.substr(0, colon), std::atoi(http.c_str() + colon + 1)};
  c.set_connection_timeout(1, 0);
  c.set_read_timeout(2, 0);
  auto res = c.Get("/metrics");
  if (!res || res->status != 200)
    return out;
  for (auto* name : {"keel_cluster_member_live", "keel_cluster_members", "keel_cluster_slots_owned",
                     "keel_cluster_slots_without_owner", "keel_cluster_map_version",
                     "keel_cluster_peers_connected", "keel_ready", "keel_replication_lag_events",
                     "keel_replication_alone"}) {
    auto at = res->body.find(std::string{"\n"} + name + " ");
    if (at != std::string::npos)
      out[name] = std::atof(res->body.c_str() + at + std::strlen(name) + 2);
  }
  return out;
}

/// The slots of `node` as ranges: "0-3,7,9-12".
std::string slot_ranges(const cluster::cluster_view& v, const std::string& node) {
  std::string out;
  for (std::uint32_t s = 0; s < v.slots;) {
    if (v.holders[s].node != node) {
      ++s;
      continue;
    }
    auto first = s;
    while (s + 1 < v.slots && v.holders[s + 1].node == node)
      ++s;
    out += (out.empty() ? "" : ",") + std::to_string(first)
           + (s > first ? "-" + std::to_string(s) : std::string{});
    ++s;
  }
  return out.empty() ? "-" : out;
}

std::string figure(const std::map<std::string, double>& f, const char* name) {
  auto i = f.find(name);
  return i == f.end() ? "?" : std::to_string(static_cast<long long>(i->second));
}

/// "primary" or "standby" (of its group, by the leader key).
std::string role_of(const cluster::cluster_view& v, const cluster::member_info& m) {
  auto* p = v.primary(m.group);
  return p != nullptr && p->node_id == m.node_id ? "primary" : "standby";
}

nlohmann::json view_json(const cluster::cluster_view& v,
                         const std::map<std::string, std::map<std::string, double>>& seen) {
  nlohmann::json members = nlohmann::json::array();
  for (auto& m : v.members) {
    nlohmann::json j{{"node_id", m.node_id},
                     {"http", m.http},
                     {"cluster_listen", m.cluster_listen},
                     {"group", m.group},
                     {"role", role_of(v, m)},
                     {"slots_held", v.held_by(m.node_id)},
                     {"slots_mapped", v.map.owned_by(m.group)},
                     {"controller", v.controller == m.node_id}};
    auto& f = seen.at(m.node_id);
    j["reachable"] = !f.empty();
    for (auto& [k, x] : f)
      j["view"][k] = x;
    members.push_back(std::move(j));
  }
  nlohmann::json slots = nlohmann::json::array();
  for (std::uint32_t s = 0; s < v.slots; ++s)
    slots.push_back({{"slot", s},
                     {"mapped_to", v.map.owners[s]},
                     {"holder", v.holders[s].node.empty() ? nlohmann::json(nullptr)
                                                          : nlohmann::json(v.holders[s].node)},
                     {"token", v.holders[s].token},
                     {"served", v.owner(s) != nullptr}});
  nlohmann::json groups = nlohmann::json::array();
  for (auto& [name, g] : v.groups)
    groups.push_back({{"group", name},
                      {"primary", g.leader.node.empty() ? nlohmann::json(nullptr)
                                                        : nlohmann::json(g.leader.node)},
                      {"token", g.leader.token},
                      {"sync_primary", g.sync_primary},
                      {"sync_standby", g.sync_standby}});
  return {{"revision", v.revision},     {"slots", v.slots},     {"map_version", v.map.version},
          {"controller", v.controller}, {"members", members}, {"groups", groups},
          {"slot_table", slots}};
}

} // namespace

int cmd_cluster(const args& a) {
  if (!a.positional.empty())
    usage_error("cluster takes no arguments");
  if (!a.has("--etcd"))
    usage_error("cluster needs --etcd http://HOST:PORT");
  auto etcd = cluster::etcd_client::connect(a.text("--etcd"));
  if (!etcd)
    fail(describe(etcd.error()));
  auto name = a.text("--cluster", "keel");
  auto v = cluster::read_view(**etcd, name);
  if (!v)
    fail("cluster " + name + ": " + describe(v.error()));
  std::map<std::string, std::map<std::string, double>> seen;
  for (auto& m : v->members)
    seen[m.node_id] = member_figures(m.http);
  std::size_t unserved = 0;
  for (std::uint32_t s = 0; s < v->slots; ++s)
    unserved += v->owner(s) == nullptr;
  if (a.json) {
    print_json_line(view_json(*v, seen));
    return unserved == 0 ? exit_ok : exit_findings;
  }
  std::cout << "cluster " << name << ": " << v->members.size() << " members, " << v->slots
            << " slots, map version " << v->map.version << ", controller "
            << (v->controller.empty() ? "none" : v->controller) << ", etcd revision "
            << v->revision << "\n\n";
  {
    table t{{"NODE", "GROUP", "ROLE", "TOKEN", "LAG", "HTTP", "CLUSTER", "SLOTS", "HELD",
             "ITS VIEW: LIVE", "MEMBERS", "OWNED", "UNOWNED", "MAP", "PEERS", "READY"}};
    for (auto& m : v->members) {
      auto& f = seen[m.node_id];
      auto role = role_of(*v, m);
      auto g = v->groups.find(m.group);
      auto token = role == "primary" && g != v->groups.end() ? std::to_string(g->second.leader.token)
                                                              : std::string{"-"};
      if (role == "standby" && g != v->groups.end() && g->second.sync_standby == m.node_id)
        role = "standby (sync)";
      if (role == "primary" && f.count("keel_replication_alone") && f.at("keel_replication_alone") == 1)
        role = "primary (alone)";
      // A standby's lag in events (its reads are this stale); "-" without replication.
      auto lag = role.rfind("standby", 0) == 0 && f.count("keel_replication_lag_events")
                   ? figure(f, "keel_replication_lag_events")
                   : std::string{"-"};
      t.add({m.node_id + (v->controller == m.node_id ? " *" : ""), m.group, role, token, lag, m.http,
             m.cluster_listen, std::to_string(v->map.owned_by(m.group)),
             slot_ranges(*v, m.node_id),
             f.empty() ? "unreachable" : figure(f, "keel_cluster_member_live"),
             figure(f, "keel_cluster_members"), figure(f, "keel_cluster_slots_owned"),
             figure(f, "keel_cluster_slots_without_owner"), figure(f, "keel_cluster_map_version"),
             figure(f, "keel_cluster_peers_connected"), figure(f, "keel_ready")});
    }
  }
  std::cout << '\n';
  table t{{"SLOT", "MAPPED TO", "HOLDER", "TOKEN", "STATE"}};
  for (std::uint32_t s = 0; s < v->slots; ++s) {
    auto& h = v->holders[s];
    std::string state = v->owner(s) != nullptr ? "served"
                        : v->map.owners[s].empty() ? "unassigned"
                                                   : "no live holder: 503";
    if (!h.node.empty() && v->group_of(h.node) != v->map.owners[s])
      state += " (moving to " + v->map.owners[s] + ")";
    t.add({std::to_string(s), v->map.owners[s].empty() ? "-" : v->map.owners[s],
           h.node.empty() ? "-" : h.node, h.token == 0 ? "-" : std::to_string(h.token), state});
  }
  t.flush();
  if (unserved > 0)
    std::cout << '\n' << unserved << " slots have no live holder: their keys get 503\n";
  return unserved == 0 ? exit_ok : exit_findings;
}

} // namespace keel::inspect
