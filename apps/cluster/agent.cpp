#include "agent.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "keel/events/error.hpp"

namespace keel::cluster {

using nlohmann::json;

const member_info* cluster_view::member(const std::string& id) const {
  for (auto& m : members)
    if (m.node_id == id)
      return &m;
  return nullptr;
}

const member_info* cluster_view::owner(std::uint32_t slot) const {
  if (slot >= holders.size() || holders[slot].node.empty())
    return nullptr;
  return member(holders[slot].node);
}

bool cluster_view::settled() const {
  for (std::uint32_t s = 0; s < slots; ++s) {
    auto& o = map.owners[s];
    if (o.empty() || !group_live(o) || (!holders[s].node.empty() && group_of(holders[s].node) == o))
      continue;
    // A move is under way - unless the group with the slot's data is lost:
    // then it waits for that group, and the others may move meanwhile.
    if (data_at[s].empty() || group_live(data_at[s]))
      return false;
  }
  return true;
}

std::string cluster_view::group_of(const std::string& node) const {
  auto* m = member(node);
  return m != nullptr ? m->group : std::string{};
}

bool cluster_view::group_live(const std::string& group) const {
  return std::any_of(members.begin(), members.end(), [&](auto& m) { return m.group == group; });
}

const member_info* cluster_view::primary(const std::string& group) const {
  auto g = groups.find(group);
  if (g == groups.end() || g->second.leader.node.empty())
    return nullptr;
  auto* m = member(g->second.leader.node);
  return m != nullptr && m->group == group ? m : nullptr;
}

std::vector<std::string> cluster_view::live_groups() const {
  std::set<std::string> out;
  for (auto& m : members)
    out.insert(m.group);
  return {out.begin(), out.end()};
}

std::size_t cluster_view::held_by(const std::string& node) const {
  return static_cast<std::size_t>(
    std::count_if(holders.begin(), holders.end(), [&](auto& h) { return h.node == node; }));
}

namespace {

std::optional<std::uint32_t> parse_slot(const std::string& text, std::uint32_t slots) {
  if (text.empty() || text.size() > 6 || text.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  auto n = std::stoul(text);
  if (n >= slots)
    return std::nullopt;
  return static_cast<std::uint32_t>(n);
}

/// Applies one key's put or delete to `v` (keys below the cluster's root).
void apply(cluster_view& v, const std::string& root, const etcd_kv& kv, bool deleted) {
  if (kv.key.compare(0, root.size(), root) != 0)
    return;
  auto rest = kv.key.substr(root.size());
  if (rest == "config") {
    auto j = json::parse(kv.value, nullptr, false);
    if (!deleted && j.is_object() && j.contains("slots") && j["slots"].is_number_unsigned()
        && v.slots == 0) {
      v.slots = j["slots"].get<std::uint32_t>();
      v.holders.resize(v.slots);
      v.data_at.resize(v.slots);
    }
  } else if (rest == "controller") {
    v.controller = deleted ? std::string{} : kv.value;
  } else if (rest == "map") {
    if (deleted)
      return;
    if (auto m = decode_map(kv.value); m && m->owners.size() == v.slots) {
      v.map = std::move(*m);
      v.map.revision = kv.mod_revision;
    } else {
      spdlog::error("component=cluster msg=\"not a slot map; the last one is kept\" key={} slots={}",
                    kv.key, v.slots);
    }
  } else if (rest.compare(0, 8, "members/") == 0) {
    auto id = rest.substr(8);
    v.members.erase(std::remove_if(v.members.begin(), v.members.end(),
                                   [&](auto& m) { return m.node_id == id; }),
                    v.members.end());
    if (!deleted)
      if (auto m = decode_member(kv.value)) {
        if (m->group.empty() || m->group == m->node_id)
          m->group = id;
        m->node_id = id;
        auto at = std::lower_bound(v.members.begin(), v.members.end(), id,
                                   [](auto& x, auto& k) { return x.node_id < k; });
        v.members.insert(at, std::move(*m));
      }
  } else if (rest.compare(0, 8, "leaving/") == 0) {
    if (deleted)
      v.leaving.erase(rest.substr(8));
    else
      v.leaving.insert(rest.substr(8));
  } else if (rest.compare(0, 5, "data/") == 0) {
    if (auto s = parse_slot(rest.substr(5), v.slots))
      v.data_at[*s] = deleted ? std::string{} : kv.value;
  } else if (rest.compare(0, 7, "groups/") == 0) {
    auto slash = rest.find('/', 7);
    if (slash == std::string::npos)
      return;
    auto name = rest.substr(7, slash - 7);
    auto what = rest.substr(slash + 1);
    auto& g = v.groups[name];
    if (what == "leader") {
      g.leader = deleted ? slot_holder{} : slot_holder{kv.value, kv.create_revision, kv.lease};
    } else if (what == "sync") {
      auto j = json::parse(kv.value, nullptr, false);
      g.sync_exists = !deleted && j.is_object();
      g.sync_primary = g.sync_exists ? j.value("primary", std::string{}) : std::string{};
      g.sync_standby = g.sync_exists ? j.value("standby", std::string{}) : std::string{};
      g.sync_revision = deleted ? 0 : kv.mod_revision;
    }
  } else if (rest.compare(0, 6, "slots/") == 0) {
    if (auto s = parse_slot(rest.substr(6), v.slots))
      v.holders[*s] = deleted ? slot_holder{} : slot_holder{kv.value, kv.create_revision, kv.lease};
  }
}

} // namespace

caf::expected<cluster_view> read_view(etcd_client& etcd, std::string_view cluster) {
  auto root = cluster_root(cluster);
  auto r = etcd.range(root);
  if (!r)
    return r.error();
  cluster_view v;
  v.revision = r->revision;
  // The config first: it sizes the slot vectors.
  for (auto& kv : r->kvs)
    if (kv.key == root + "config")
      apply(v, root, kv, false);
  if (v.slots == 0)
    return make_error(errc::not_found, "cluster " + std::string{cluster} + " has no config");
  v.map.owners.resize(v.slots);
  for (auto& kv : r->kvs)
    apply(v, root, kv, false);
  return v;
}

agent::agent(options o) : o_(std::move(o)) {
}

caf::expected<std::unique_ptr<agent>> agent::start(options o) {
  if (o.self.group.empty())
    o.self.group = o.self.node_id; // a group of its own
  std::unique_ptr<agent> a{new agent(std::move(o))};
  for (auto* c : {&a->watcher_, &a->writer_}) {
    auto etcd = etcd_client::connect(a->o_.etcd_url);
    if (!etcd)
      return etcd.error();
    *c = std::move(*etcd);
  }
  auto slots = ensure_config(*a->writer_, a->o_.cluster, a->o_.slots);
  if (!slots)
    return slots.error();
  a->slots_ = *slots;
  auto v = read_view(*a->writer_, a->o_.cluster);
  if (!v)
    return v.error();
  a->view_ = std::make_shared<cluster_view>(std::move(*v));
  a->members_changed_ = std::chrono::steady_clock::now();
  if (auto err = a->join())
    return err;
  a->watch_thread_ = std::thread{[p = a.get()] { p->watch_loop(); }};
  a->work_thread_ = std::thread{[p = a.get()] { p->work_loop(); }};
  return a;
}

caf::error agent::join() {
  membership::options mo;
  mo.etcd_url = o_.etcd_url;
  mo.cluster = o_.cluster;
  mo.self = o_.self;
  mo.ttl_seconds = o_.ttl_seconds;
  mo.on_lost = [this](const std::string& why) {
    live_ = false;
    spdlog::error("component=cluster msg=\"membership lost: its slots are not served until it joins "
                  "again\" node={} why=\"{}\"",
                  o_.self.node_id, why);
    if (o_.on_membership)
      o_.on_membership(false, why);
    std::lock_guard<std::mutex> guard{mtx_};
    dirty_ = true;
    cv_.notify_all();
  };
  auto m = membership::join(std::move(mo));
  if (!m)
    return m.error();
  {
    std::lock_guard<std::mutex> guard{mtx_};
    member_ = std::move(*m);
    lease_ = member_->lease();
  }
  leader_token_ = 0;
  live_ = true;
  return caf::error{};
}

bool agent::primary(std::int64_t* token) const {
  std::shared_ptr<const cluster_view> v;
  std::shared_ptr<membership> m;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    v = view_;
    m = member_;
  }
  auto mine = leader_token_.load(std::memory_order_acquire);
  if (!live_ || mine == 0 || !m || !m->valid())
    return false;
  // A view older than the write that took the key cannot contradict it;
  // a newer one must still show the key.
  auto g = v->groups.find(o_.self.group);
  if (v->revision >= mine
      && (g == v->groups.end() || g->second.leader.node != o_.self.node_id
          || g->second.leader.token != mine || g->second.leader.lease != lease_))
    return false;
  if (token)
    *token = mine;
  return true;
}

namespace {

std::string sync_value(const std::string& primary, const std::string& standby) {
  return json{{"primary", primary}, {"standby", standby}}.dump();
}

} // namespace

caf::expected<bool> agent::set_sync_standby(const std::string& standby) {
  auto token = leader_token_.load(std::memory_order_acquire);
  if (token == 0)
    return false;
  auto root = cluster_root(o_.cluster) + "groups/" + o_.self.group + "/";
  etcd_compare leader{root + "leader", etcd_compare::target::create, etcd_compare::result::equal,
                      token, {}};
  auto etcd = etcd_client::connect(o_.etcd_url); // the writer belongs to the work thread
  if (!etcd)
    return etcd.error();
  auto r = (*etcd)->txn({leader}, {etcd_op::put(root + "sync", sync_value(o_.self.node_id, standby))});
  if (!r)
    return r.error();
  if (r->succeeded)
    spdlog::info("component=cluster msg=\"synchronous standby set\" group={} primary={} "
                 "standby=\"{}\"",
                 o_.self.group, o_.self.node_id, standby);
  return r->succeeded;
}

void agent::elect(const cluster_view& v) {
  auto& me = o_.self.node_id;
  group_state g;
  if (auto i = v.groups.find(o_.self.group); i != v.groups.end())
    g = i->second;
  if (!g.leader.node.empty())
    return; // a primary (or, on a lease about to lapse, a lost one)
  // Only the last primary and its synchronous standby have every batch the
  // group acknowledged; a new group's first member takes it.
  if (g.sync_exists && g.sync_primary != me && g.sync_standby != me)
    return;
  // Named, but with a store that lacks part of the log (a wiped disk): it
  // waits for the last primary rather than lose what the group acknowledged.
  if (g.sync_exists && o_.may_lead && !o_.may_lead()) {
    if (!refused_told_.exchange(true))
      spdlog::error("component=cluster msg=\"etcd names this node for its group's primary role, "
                    "but its store lacks part of the group's log (new, wiped or seeded, not "
                    "caught up): it waits for the group's last primary\" group={} node={}",
                    o_.self.group, me);
    return;
  }
  auto root = cluster_root(o_.cluster) + "groups/" + o_.self.group + "/";
  std::vector<etcd_compare> unchanged{etcd_compare::absent(root + "leader"),
                                      g.sync_exists
                                        ? etcd_compare::modified_at(root + "sync", g.sync_revision)
                                        : etcd_compare::absent(root + "sync")};
  // The sync key names the new primary, without a synchronous standby
  // until it names one that caught up: what it acknowledges meanwhile is on
  // its disk alone, so no other member may take the role from it (the last
  // primary included, which lacks those writes).
  std::vector<etcd_op> take{etcd_op::put(root + "leader", me, lease_),
                            etcd_op::put(root + "sync", sync_value(me, ""))};
  auto r = writer_->txn(unchanged, take);
  if (!r) {
    spdlog::warn("component=cluster msg=\"taking the group's leader key failed\" group={} "
                 "error=\"{}\"",
                 o_.self.group, describe(r.error()));
    return;
  }
  if (!r->succeeded)
    return; // another took it, or the sync key changed: the watch brings it
  auto token = r->revision;
  spdlog::info("component=cluster msg=\"this node is its group's primary\" group={} node={} "
               "token={} was=\"{}\"",
               o_.self.group, me, token, g.sync_exists ? g.sync_primary : std::string{});
  leader_token_ = token; // primary() holds from here (the node prepares in on_promoted)
  if (o_.on_promoted && !o_.on_promoted(token)) {
    leader_token_ = 0;
    etcd_compare mine{root + "leader", etcd_compare::target::create, etcd_compare::result::equal,
                      token, {}};
    writer_->txn({mine}, {etcd_op::erase(root + "leader")});
    spdlog::error("component=cluster msg=\"the node cannot serve as its group's primary; the "
                  "leader key is given up\" group={} node={}",
                  o_.self.group, me);
    return;
  }
}

agent::~agent() {
  stop_threads();
}

std::shared_ptr<const cluster_view> agent::view() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return view_;
}

bool agent::serves(std::uint32_t slot, std::int64_t* token) const {
  if (!live_)
    return false;
  auto v = view();
  if (slot >= v->holders.size())
    return false;
  auto& h = v->holders[slot];
  if (h.node != o_.self.node_id || h.lease != lease_)
    return false;
  if (token)
    *token = h.token;
  return true;
}

bool agent::wait_for(const std::function<bool(const cluster_view&)>& pred,
                     std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> guard{mtx_};
  return cv_.wait_for(guard, timeout, [&] { return pred(*view_); });
}

void agent::publish(std::shared_ptr<cluster_view> v) {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (view_->members.size() != v->members.size()
        || !std::equal(v->members.begin(), v->members.end(), view_->members.begin(),
                       [](auto& a, auto& b) { return a.node_id == b.node_id; }))
      members_changed_ = std::chrono::steady_clock::now();
    view_ = v;
    dirty_ = true;
  }
  cv_.notify_all();
  if (o_.on_change)
    o_.on_change(*v);
}

void agent::watch_loop() {
  watch_rounds();
  watch_done_ = true;
  cv_.notify_all();
}

void agent::watch_rounds() {
  auto root = cluster_root(o_.cluster);
  while (true) {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (stopping_)
        return;
    }
    auto v = read_view(*watcher_, o_.cluster);
    if (!v) {
      spdlog::warn("component=cluster msg=\"reading the cluster's keys failed\" error=\"{}\"",
                   describe(v.error()));
      std::unique_lock<std::mutex> guard{mtx_};
      cv_.wait_for(guard, std::chrono::milliseconds(250), [this] { return stopping_; });
      continue;
    }
    auto current = std::make_shared<cluster_view>(std::move(*v));
    publish(current);
    auto err = watcher_->watch(root, current->revision + 1, [&](const etcd_watch_batch& b) {
      {
        std::lock_guard<std::mutex> guard{mtx_};
        if (stopping_)
          return false;
      }
      if (b.compact_revision != 0)
        return false; // read the whole view afresh
      // The view's revision moves only with the events it applied: a
      // message without events (the watch's creation, a progress note)
      // can be newer than events still on their way, and a view that
      // claimed such a revision would contradict a write it lacks (a
      // node's own leader key, taken a moment before: it took itself for
      // demoted).
      if (b.events.empty())
        return true;
      auto next = std::make_shared<cluster_view>(*current);
      auto revision = current->revision;
      for (auto& ev : b.events) {
        apply(*next, root, ev.kv, ev.deleted);
        revision = std::max(revision, ev.kv.mod_revision);
      }
      next->revision = revision;
      current = next;
      publish(current);
      return true;
    });
    if (err) {
      std::lock_guard<std::mutex> guard{mtx_};
      if (!stopping_)
        spdlog::debug("component=cluster msg=\"watch ended; reading the keys afresh\" error=\"{}\"",
                      describe(err));
    }
  }
}

void agent::work_loop() {
  std::unique_lock<std::mutex> guard{mtx_};
  while (!stopping_) {
    // Woken by every change; also every 250 ms to retry what failed and to
    // see the first map's settle time pass.
    cv_.wait_for(guard, std::chrono::milliseconds(250), [this] { return stopping_ || dirty_; });
    if (stopping_)
      return;
    dirty_ = false;
    guard.unlock();
    reconcile();
    guard.lock();
  }
}

void agent::reconcile() {
  if (!live_) {
    // Join again once etcd let the old lease (and its keys) go.
    std::shared_ptr<membership> old;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      old = member_;
    }
    if (old) {
      old->leave();
      writer_->revoke(old->lease()); // if etcd still has it (renewals only lagged)
    }
    if (auto err = join()) {
      spdlog::debug("component=cluster msg=\"joining again failed\" error=\"{}\"", describe(err));
      return;
    }
    spdlog::info("component=cluster msg=\"joined again\" node={} lease={}", o_.self.node_id,
                 lease_.load());
    if (o_.on_membership)
      o_.on_membership(true, "joined again");
  }
  auto v = view();
  if (live_)
    elect(*v);
  control(*v);
  if (live_ && primary())
    claim(*v);
}

void agent::control(const cluster_view& v) {
  if (v.controller.empty()) {
    auto won = campaign(*writer_, o_.cluster, o_.self.node_id, lease_);
    if (!won) {
      spdlog::warn("component=cluster msg=\"campaign failed\" error=\"{}\"", describe(won.error()));
      return;
    }
    if (*won)
      spdlog::info("component=cluster msg=\"this node is the controller\" node={}", o_.self.node_id);
    return; // the watch brings the new controller key and another round
  }
  if (v.controller != o_.self.node_id || v.members.empty())
    return;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (v.map.version == 0 && std::chrono::steady_clock::now() - members_changed_ < o_.settle)
      return; // the first map waits for the nodes started together
  }
  // One round of moves at a time: the next map once every move of the last
  // one is done (the new owners hold their slots).
  if (!v.settled())
    return;
  // Slots go to groups; a group leaves when every live member of it leaves.
  auto ids = v.live_groups();
  std::vector<std::string> leaving;
  for (auto& g : ids)
    if (std::all_of(v.members.begin(), v.members.end(), [&](auto& m) {
          return m.group != g || v.leaving.count(m.node_id) != 0;
        }))
      leaving.push_back(g);
  auto max_moves = o_.max_moves != 0 ? o_.max_moves : std::max<std::size_t>(1, v.slots / 10);
  auto next = plan_map(v.map, ids, leaving, v.map.version == 0 ? 0 : max_moves);
  if (next.owners == v.map.owners)
    return;
  auto moves = v.map.version == 0 ? 0 : moved_slots(v.map, next).size();
  auto wrote = write_map(*writer_, o_.cluster, next);
  if (!wrote)
    spdlog::warn("component=cluster msg=\"writing the slot map failed\" error=\"{}\"",
                 describe(wrote.error()));
  else if (*wrote)
    spdlog::info("component=cluster msg=\"slot map written\" version={} controller={} "
                 "moves={}",
                 next.version, o_.self.node_id, moves);
}

void agent::claim(const cluster_view& v) {
  auto root = cluster_root(o_.cluster);
  std::size_t claimed = 0;
  auto& me = o_.self.node_id;
  auto& group = o_.self.group;
  // Only the group's primary claims, while it holds the leader key.
  etcd_compare leading{root + "groups/" + group + "/leader", etcd_compare::target::create,
                       etcd_compare::result::equal, leader_token_.load(), {}};
  for (std::uint32_t s = 0; s < v.slots; ++s) {
    // Only the group with the slot's data claims it: the one data/<s> names
    // (a slot moving here once its copy is complete; a slot of this group's
    // own, whatever the map says: it hands it over once it serves again),
    // or for a slot never held, the group the map gives it to.
    auto& data = v.data_at[s];
    bool mine = data == group || (data.empty() && v.map.owners[s] == group);
    if (!mine || !v.holders[s].node.empty())
      continue;
    auto key = root + "slots/" + std::to_string(s);
    auto data_key = root + "data/" + std::to_string(s);
    auto r = data.empty()
               ? writer_->txn({etcd_compare::absent(key), etcd_compare::absent(data_key), leading},
                              {etcd_op::put(key, me, lease_), etcd_op::put(data_key, group)})
               : writer_->txn({etcd_compare::absent(key), etcd_compare::holds(data_key, group),
                               leading},
                              {etcd_op::put(key, me, lease_)});
    if (!r) {
      spdlog::warn("component=cluster msg=\"claiming a slot failed\" slot={} error=\"{}\"", s,
                   describe(r.error()));
      return;
    }
    claimed += r->succeeded ? 1 : 0;
  }
  if (claimed > 0)
    spdlog::info("component=cluster msg=\"slots claimed\" node={} slots={} lease={}",
                 o_.self.node_id, claimed, lease_.load());
}

caf::expected<bool> agent::release(std::uint32_t slot, const std::string& to) {
  std::int64_t token = 0;
  if (!serves(slot, &token))
    return false;
  auto key = cluster_root(o_.cluster) + "slots/" + std::to_string(slot);
  etcd_compare mine{key, etcd_compare::target::create, etcd_compare::result::equal, token, {}};
  auto etcd = etcd_client::connect(o_.etcd_url); // the writer belongs to the work thread
  if (!etcd)
    return etcd.error();
  auto data_key = cluster_root(o_.cluster) + "data/" + std::to_string(slot);
  auto r = (*etcd)->txn({mine}, {etcd_op::erase(key), etcd_op::put(data_key, to)});
  if (!r)
    return r.error();
  return r->succeeded;
}

caf::error agent::set_leaving() {
  auto etcd = etcd_client::connect(o_.etcd_url);
  if (!etcd)
    return etcd.error();
  auto r = (*etcd)->put(cluster_root(o_.cluster) + "leaving/" + o_.self.node_id, "1", lease_);
  return r ? caf::error{} : r.error();
}

void agent::stop_threads() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (stopping_)
      return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (work_thread_.joinable())
    work_thread_.join();
  // The watch blocks in etcd's stream: cut its connection until it notices.
  while (watch_thread_.joinable()) {
    watcher_->cancel();
    std::unique_lock<std::mutex> guard{mtx_};
    cv_.wait_for(guard, std::chrono::milliseconds(20));
    guard.unlock();
    if (watch_done_) {
      watch_thread_.join();
      break;
    }
  }
}

void agent::leave() {
  stop_threads();
  live_ = false;
  std::shared_ptr<membership> m;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    m = member_;
  }
  if (m)
    m->leave();
}

} // namespace keel::cluster
