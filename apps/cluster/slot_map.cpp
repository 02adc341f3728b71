#include "slot_map.hpp"

#include <algorithm>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "keel/events/error.hpp"
#include "membership.hpp"

namespace keel::cluster {

using nlohmann::json;

std::size_t slot_map::owned_by(std::string_view node) const {
  return static_cast<std::size_t>(std::count(owners.begin(), owners.end(), node));
}

std::string encode_map(const slot_map& m) {
  return json{{"version", m.version}, {"owners", m.owners}}.dump();
}

caf::expected<slot_map> decode_map(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return make_error(errc::corrupt_record, "slot map: " + why);
  };
  auto j = json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("version") || !j["version"].is_number_integer()
      || !j.contains("owners") || !j["owners"].is_array())
    return bad("not {\"version\":N,\"owners\":[...]}");
  slot_map m;
  m.version = j["version"].get<std::int64_t>();
  for (auto& o : j["owners"]) {
    if (!o.is_string())
      return bad("an owner is not a string");
    m.owners.push_back(o.get<std::string>());
  }
  if (m.version <= 0 || m.owners.empty())
    return bad("no version or no slots");
  return m;
}

slot_map plan_map(const slot_map& current, std::vector<std::string> members,
                  const std::vector<std::string>& leaving, std::size_t max_moves) {
  slot_map next = current;
  std::set<std::string> gone(leaving.begin(), leaving.end());
  std::map<std::string, std::size_t> load; // live members that may take slots
  for (auto& m : members)
    if (gone.count(m) == 0)
      load[m] = 0;
  if (load.empty())
    return next;
  for (auto& o : next.owners)
    if (auto it = load.find(o); it != load.end())
      ++it->second;
  auto emptiest = [&] {
    return std::min_element(load.begin(), load.end(), [](auto& a, auto& b) {
      return a.second < b.second; // ties: the first, the smaller id
    });
  };
  auto give = [&](std::string& owner) {
    auto to = emptiest();
    if (auto it = load.find(owner); it != load.end())
      --it->second;
    owner = to->first;
    ++to->second;
  };
  std::size_t moves = 0;
  for (auto& o : next.owners)
    if (gone.count(o) != 0 && moves < max_moves) {
      give(o);
      ++moves;
    }
  for (auto& o : next.owners)
    if (o.empty())
      give(o);
  while (moves < max_moves) {
    auto full = std::max_element(load.begin(), load.end(), [](auto& a, auto& b) {
      return a.second < b.second; // ties: the first, the smaller id
    });
    auto empty = emptiest();
    if (full->second < empty->second + 2)
      break;
    auto slot = std::find(next.owners.begin(), next.owners.end(), full->first);
    give(*slot);
    ++moves;
  }
  return next;
}

std::vector<std::uint32_t> moved_slots(const slot_map& a, const slot_map& b) {
  std::vector<std::uint32_t> out;
  for (std::size_t i = 0; i < a.owners.size() && i < b.owners.size(); ++i)
    if (a.owners[i] != b.owners[i])
      out.push_back(static_cast<std::uint32_t>(i));
  return out;
}

namespace {

std::string key_of(std::string_view cluster, const char* what) {
  return cluster_root(cluster) + what;
}

} // namespace

caf::expected<std::uint32_t> ensure_config(etcd_client& etcd, std::string_view cluster,
                                           std::uint32_t slots) {
  if (slots == 0 || slots > 65536)
    return make_error(errc::invalid_argument,
                      "slots: " + std::to_string(slots) + " is not in 1..65536");
  auto key = key_of(cluster, "config");
  auto created = etcd.txn({etcd_compare::absent(key)},
                          {etcd_op::put(key, json{{"slots", slots}}.dump())});
  if (!created)
    return created.error();
  if (created->succeeded)
    return slots;
  auto kv = etcd.get(key);
  if (!kv)
    return kv.error();
  auto j = *kv ? json::parse((*kv)->value, nullptr, false) : json{};
  if (!j.is_object() || !j.contains("slots") || !j["slots"].is_number_unsigned()
      || j["slots"].get<std::uint64_t>() == 0 || j["slots"].get<std::uint64_t>() > 65536)
    return make_error(errc::corrupt_record, "etcd key " + key + " is not a cluster config");
  return j["slots"].get<std::uint32_t>();
}

caf::expected<slot_map> read_map(etcd_client& etcd, std::string_view cluster,
                                 std::uint32_t slots) {
  auto key = key_of(cluster, "map");
  auto kv = etcd.get(key);
  if (!kv)
    return kv.error();
  if (!*kv) {
    slot_map empty;
    empty.owners.resize(slots);
    return empty;
  }
  auto m = decode_map((*kv)->value);
  if (!m)
    return make_error(errc::corrupt_record, "etcd key " + key + ": " + describe(m.error()));
  if (m->owners.size() != slots)
    return make_error(errc::corrupt_record, "etcd key " + key + " maps "
                                              + std::to_string(m->owners.size())
                                              + " slots; the cluster has "
                                              + std::to_string(slots));
  m->revision = (*kv)->mod_revision;
  return m;
}

caf::expected<bool> write_map(etcd_client& etcd, std::string_view cluster, slot_map& next) {
  auto key = key_of(cluster, "map");
  auto stored = next;
  ++stored.version;
  auto unchanged = next.revision == 0 ? etcd_compare::absent(key)
                                      : etcd_compare::modified_at(key, next.revision);
  auto r = etcd.txn({unchanged}, {etcd_op::put(key, encode_map(stored))});
  if (!r)
    return r.error();
  if (!r->succeeded)
    return false;
  next.version = stored.version;
  next.revision = r->revision;
  return true;
}

caf::expected<bool> campaign(etcd_client& etcd, std::string_view cluster, const std::string& node,
                             std::int64_t lease) {
  auto key = key_of(cluster, "controller");
  auto r = etcd.txn({etcd_compare::absent(key)}, {etcd_op::put(key, node, lease)});
  if (!r)
    return r.error();
  if (r->succeeded)
    return true;
  auto holder = controller_of(etcd, cluster);
  if (!holder)
    return holder.error();
  return *holder && **holder == node;
}

caf::expected<std::optional<std::string>> controller_of(etcd_client& etcd,
                                                        std::string_view cluster) {
  auto kv = etcd.get(key_of(cluster, "controller"));
  if (!kv)
    return kv.error();
  if (!*kv)
    return std::optional<std::string>{};
  return std::optional<std::string>{(*kv)->value};
}

} // namespace keel::cluster
