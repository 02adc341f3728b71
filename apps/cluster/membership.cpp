#include "membership.hpp"

#include <nlohmann/json.hpp>

#include "keel/events/correlation.hpp"
#include "keel/events/error.hpp"

namespace keel::cluster {

using nlohmann::json;

std::uint32_t slot_of(std::string_view key, std::uint32_t slots) noexcept {
  return static_cast<std::uint32_t>(events::stable_hash(key) % slots);
}

std::string cluster_root(std::string_view cluster) {
  return "/keel/" + std::string{cluster} + "/";
}

namespace {

std::string members_prefix(std::string_view cluster) {
  return cluster_root(cluster) + "members/";
}

bool valid_name(const std::string& x) {
  if (x.empty() || x.size() > 64)
    return false;
  for (char c : x)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'
          || c == '_' || c == '.'))
      return false;
  return true;
}

} // namespace

std::string encode_member(const member_info& m) {
  return json{{"node_id", m.node_id},
              {"http", m.http},
              {"cluster_listen", m.cluster_listen},
              {"group", m.group.empty() ? m.node_id : m.group}}
    .dump();
}

std::optional<member_info> decode_member(const std::string& text) {
  auto j = json::parse(text, nullptr, false);
  if (!j.is_object())
    return std::nullopt;
  member_info m{j.value("node_id", std::string{}), j.value("http", std::string{}),
                j.value("cluster_listen", std::string{}), j.value("group", std::string{})};
  if (m.group.empty())
    m.group = m.node_id; // a member of a cluster without groups
  return m;
}

namespace {

std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           std::chrono::steady_clock::now().time_since_epoch())
    .count();
}

} // namespace

bool membership::valid() const noexcept {
  return live_ && steady_ns() < valid_until_.load(std::memory_order_acquire);
}

caf::expected<std::vector<member_info>> list_members(etcd_client& etcd,
                                                     std::string_view cluster) {
  auto r = etcd.range(members_prefix(cluster));
  if (!r)
    return r.error();
  std::vector<member_info> out;
  for (auto& kv : r->kvs) {
    auto m = decode_member(kv.value);
    if (!m)
      return make_error(errc::corrupt_record, "etcd key " + kv.key + " is not a member record");
    out.push_back(std::move(*m));
  }
  return out;
}

membership::membership(options o) : o_(std::move(o)) {
}

caf::expected<std::unique_ptr<membership>> membership::join(options o) {
  if (!valid_name(o.self.node_id))
    return make_error(errc::invalid_argument,
                      "node id '" + o.self.node_id
                        + "': 1-64 letters, digits, '-', '_' or '.'");
  if (!valid_name(o.cluster))
    return make_error(errc::invalid_argument,
                      "cluster name '" + o.cluster + "': 1-64 letters, digits, '-', '_' or '.'");
  if (o.self.group.empty())
    o.self.group = o.self.node_id;
  if (!valid_name(o.self.group))
    return make_error(errc::invalid_argument,
                      "group name '" + o.self.group + "': 1-64 letters, digits, '-', '_' or '.'");
  std::unique_ptr<membership> m{new membership(std::move(o))};
  auto etcd = etcd_client::connect(m->o_.etcd_url);
  if (!etcd)
    return etcd.error();
  m->etcd_ = std::move(*etcd);
  auto granting = steady_ns();
  auto lease = m->etcd_->grant(m->o_.ttl_seconds);
  if (!lease)
    return lease.error();
  m->lease_ = lease->id;
  m->ttl_ = std::chrono::seconds(lease->ttl);
  auto key = members_prefix(m->o_.cluster) + m->o_.self.node_id;
  auto created = m->etcd_->txn({etcd_compare::absent(key)},
                               {etcd_op::put(key, encode_member(m->o_.self), m->lease_)});
  if (!created || !created->succeeded) {
    m->etcd_->revoke(m->lease_);
    if (!created)
      return created.error();
    return make_error(errc::invalid_argument,
                      "node id " + m->o_.self.node_id + " is held by a live member of cluster "
                        + m->o_.cluster + " (" + key + "); two processes never share one");
  }
  m->revision_ = created->revision;
  m->valid_until_ = granting + std::chrono::nanoseconds(m->ttl_ * 2 / 3).count();
  m->live_ = true;
  m->renewer_ = std::thread{[p = m.get()] { p->renew_loop(); }};
  return m;
}

void membership::lose(const std::string& why) {
  if (live_.exchange(false) && o_.on_lost)
    o_.on_lost(why);
}

void membership::renew_loop() {
  auto interval = ttl_ / 3;
  // A renewal etcd confirmed was sent at `confirmed`: the lease lives at
  // least until `confirmed + ttl`. Give up at two thirds of that.
  auto confirmed = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> guard{mtx_};
  while (!stopping_) {
    cv_.wait_for(guard, interval, [this] { return stopping_; });
    if (stopping_)
      return;
    guard.unlock();
    auto sent = std::chrono::steady_clock::now();
    auto ttl = etcd_->keepalive(lease_);
    guard.lock();
    if (ttl && *ttl) {
      confirmed = sent;
      valid_until_ = std::chrono::duration_cast<std::chrono::nanoseconds>(
                       (sent + ttl_ * 2 / 3).time_since_epoch())
                       .count();
      interval = ttl_ / 3;
      continue;
    }
    if (ttl) { // etcd says the lease is gone
      guard.unlock();
      lose("etcd no longer knows lease " + std::to_string(lease_) + " (revoked or expired)");
      return;
    }
    if (std::chrono::steady_clock::now() - confirmed >= ttl_ * 2 / 3) {
      guard.unlock();
      lose("no renewal of lease " + std::to_string(lease_) + " confirmed for two thirds of its "
           + std::to_string(ttl_.count()) + " ms TTL: " + describe(ttl.error()));
      return;
    }
    interval = ttl_ / 10; // retry sooner while etcd does not answer
  }
}

caf::error membership::leave() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (stopping_)
      return caf::error{};
    stopping_ = true;
  }
  cv_.notify_all();
  if (renewer_.joinable() && renewer_.get_id() != std::this_thread::get_id())
    renewer_.join();
  bool was_live = live_.exchange(false);
  if (!was_live)
    return caf::error{};
  return etcd_->revoke(lease_);
}

membership::~membership() {
  leave();
}

} // namespace keel::cluster
