#include "keel/actors/audit.hpp"

#include <unordered_map>

#include "keel/events/event.hpp"
#include "keel/storage/event_store.hpp"

namespace keel::actors {

namespace {

struct sku_ledger {
  std::int64_t on_hand = 0;
  std::int64_t reserved = 0;
  std::unordered_map<std::string, std::int64_t> holds;
};

struct order_ledger {
  std::string outcome = "in_flight";
  int authorizations = 0;
  int captures = 0;
  int voids_or_refunds = 0;
};

class auditor {
public:
  explicit auditor(audit_report& rep) : rep_(rep) {
  }

  void check_position(const events::record_view& rec) {
    if (rec.position != last_position_ + 1)
      fail("global log: position " + std::to_string(rec.position) + " follows "
           + std::to_string(last_position_));
    last_position_ = rec.position;
    auto& v = versions_[std::string{rec.stream}];
    if (rec.version != v + 1)
      fail(std::string{rec.stream} + ": version " + std::to_string(rec.version) + " follows "
           + std::to_string(v) + " (position " + std::to_string(rec.position) + ")");
    v = rec.version;
  }

  void apply(const events::event& ev, std::uint64_t pos) {
    using namespace events;
    if (auto* x = std::get_if<stock_adjusted>(&ev)) {
      skus_[x->sku].on_hand = x->on_hand;
    } else if (auto* x = std::get_if<stock_reserved>(&ev)) {
      auto& s = skus_[x->sku];
      s.reserved += x->quantity;
      s.holds[x->order_id] += x->quantity;
      if (s.reserved > s.on_hand)
        fail("oversell: " + x->sku + " reserved " + std::to_string(s.reserved) + " of "
             + std::to_string(s.on_hand) + " on hand at position " + std::to_string(pos));
    } else if (auto* x = std::get_if<stock_released>(&ev)) {
      settle(x->sku, x->order_id, x->quantity, false, pos);
    } else if (auto* x = std::get_if<stock_committed>(&ev)) {
      settle(x->sku, x->order_id, x->quantity, true, pos);
    } else if (auto* x = std::get_if<payment_authorized>(&ev)) {
      if (++orders_[x->order_id].authorizations > 1)
        fail("order " + x->order_id + " authorized twice (position " + std::to_string(pos) + ")");
    } else if (auto* x = std::get_if<payment_captured>(&ev)) {
      if (++orders_[x->order_id].captures > 1)
        fail("order " + x->order_id + " charged twice (position " + std::to_string(pos) + ")");
    } else if (auto* x = std::get_if<payment_voided>(&ev)) {
      orders_[x->order_id].voids_or_refunds++;
    } else if (auto* x = std::get_if<payment_refunded>(&ev)) {
      orders_[x->order_id].voids_or_refunds++;
    } else if (auto* x = std::get_if<order_placed>(&ev)) {
      orders_[x->order_id];
    } else if (auto* x = std::get_if<order_completed>(&ev)) {
      orders_[x->order_id].outcome = "completed";
    } else if (auto* x = std::get_if<order_rejected>(&ev)) {
      orders_[x->order_id].outcome = "rejected";
    } else if (auto* x = std::get_if<order_cancelled>(&ev)) {
      orders_[x->order_id].outcome = "cancelled";
    }
  }

  void finish(bool require_terminal) {
    for (auto& [id, o] : orders_) {
      rep_.orders++;
      rep_.outcomes[o.outcome]++;
      if (o.captures > 0 && o.outcome != "completed")
        fail("order " + id + " was charged but is " + o.outcome);
      if ((o.outcome == "cancelled" || o.outcome == "rejected") && o.authorizations > 0
          && o.voids_or_refunds == 0)
        fail("order " + id + " is " + o.outcome + " but its authorization was never voided");
      if (require_terminal && o.outcome == "in_flight")
        fail("order " + id + " never reached a terminal state");
    }
  }

private:
  void settle(const std::string& sku, const std::string& order, std::int64_t qty, bool commit,
              std::uint64_t pos) {
    auto& s = skus_[sku];
    auto i = s.holds.find(order);
    if (i == s.holds.end() || i->second < qty) {
      fail(sku + ": order " + order + " " + (commit ? "committed" : "released") + " "
           + std::to_string(qty) + " units it did not hold (position " + std::to_string(pos) + ")");
      return;
    }
    s.reserved -= qty;
    if (commit)
      s.on_hand -= qty;
    if ((i->second -= qty) == 0)
      s.holds.erase(i);
  }

  void fail(std::string what) {
    rep_.violations.push_back(std::move(what));
  }

  audit_report& rep_;
  std::uint64_t last_position_ = 0;
  std::unordered_map<std::string, std::uint64_t> versions_;
  std::unordered_map<std::string, sku_ledger> skus_;
  std::unordered_map<std::string, order_ledger> orders_;
};

} // namespace

caf::expected<audit_report> audit(const storage::event_store& store, bool require_terminal) {
  audit_report rep;
  auditor a{rep};
  auto reader = store.read_all();
  while (reader.next()) {
    auto& rec = reader.current();
    rep.events++;
    a.check_position(rec);
    auto ev = rec.decode_payload();
    if (!ev)
      return std::move(ev.error());
    a.apply(*ev, rec.position);
  }
  if (reader.error())
    return reader.error();
  a.finish(require_terminal);
  return rep;
}

} // namespace keel::actors
