// The invariant audit: a fold of the global log that knows the domain's
// events but none of the code that wrote them.

#include "keel/projections/audit.hpp"
#include "keel/events/streams.hpp"
#include "keel/projections/flat_map.hpp"

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <string_view>
#include <unordered_map>

#include "keel/events/error.hpp"
#include "keel/events/event.hpp"
#include "keel/storage/event_store.hpp"
#include "keel/storage/readers.hpp"

namespace keel::projections {

std::string audit_violation::to_string() const {
  std::string out = kind;
  if (position != 0)
    out += " at position " + std::to_string(position);
  if (!stream.empty())
    out += " (" + stream + "@" + std::to_string(version) + ")";
  out += ": " + detail;
  return out;
}

std::ostream& operator<<(std::ostream& out, const audit_violation& x) {
  return out << x.to_string();
}

namespace {

using namespace std::string_view_literals;

struct sku_ledger {
  std::int64_t on_hand = 0;
  std::int64_t reserved = 0;
  /// Units held per order.
  std::unordered_map<std::string, std::int64_t> holds;
};

struct authorization {
  std::string order_id;
  std::int64_t amount_cents = 0;
  std::int64_t captured_cents = 0;
  bool authorized = false;
  bool released = false; ///< voided or refunded
};

struct order_ledger {
  /// The status the order's last event implies (see `status_after`).
  const char* status = "unknown";
  bool placed = false;
  bool terminal = false;
  bool completed = false;
  int captures = 0;
  std::uint64_t last_position = 0;
  std::uint64_t last_version = 0;
  std::int64_t last_us = 0;
};

/// The status an order is in after an event of `type` in its own stream:
/// the domain's state names, read off the event types (no decider involved).
const char* status_after(std::string_view type) {
  static const std::pair<std::string_view, const char*> table[] = {
    {"order_placed"sv, "placed"},
    {"order_stock_reserved"sv, "stock_reserved"},
    {"order_stock_refused"sv, "compensating"},
    {"order_payment_authorized"sv, "payment_authorized"},
    {"order_payment_pending"sv, "pending_payment"},
    {"order_payment_declined"sv, "compensating"},
    {"order_shipment_scheduled"sv, "shipment_scheduled"},
    {"order_shipment_failed"sv, "compensating"},
    {"order_cancel_requested"sv, "cancel_requested"},
    {"order_payment_voided"sv, "compensating"},
    {"order_payment_refunded"sv, "compensating"},
    {"order_payment_captured"sv, "shipment_scheduled"},
    {"order_stock_released"sv, "compensating"},
    {"order_shipment_cancelled"sv, "compensating"},
    {"order_completed"sv, "completed"},
    {"order_rejected"sv, "rejected"},
    {"order_cancelled"sv, "cancelled"},
  };
  for (const auto& [name, status] : table)
    if (name == type)
      return status;
  return "unknown";
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

class auditor {
public:
  auditor(const audit_options& opts, audit_report& rep) : opts_(opts), rep_(rep) {
  }

  void add(const events::record_view& rec) {
    ++rep_.events;
    check_sequence(rec);
    log_end_us_ = std::max(log_end_us_, rec.timestamp_us);
    auto type = rec.type;
    if (events::kind_of_stream(rec.stream) == events::stream_kind::order) {
      order_event(rec);
    } else if (starts_with(type, "stock_"sv) || starts_with(type, "payment_"sv)) {
      if (type == "stock_reservation_refused"sv || type == "payment_declined"sv
          || type == "payment_unavailable"sv)
        return;
      auto ev = rec.decode_payload();
      if (!ev) {
        fail("unreadable", rec, {}, "payload does not decode: " + describe(ev.error()));
        return;
      }
      std::visit([&](const auto& x) { apply(x, rec); }, *ev);
    }
  }

  /// The scan stopped at the position after the last one read: a hole in
  /// the log (nothing stored there) or a record that cannot be read.
  void stopped(const caf::error& err, const storage::event_store& store) {
    audit_violation v;
    auto what = describe(err);
    v.position = last_position_ + 1;
    auto there = store.read_event(v.position);
    v.kind = !there && code_of(there.error()) == errc::not_found ? "position_gap" : "unreadable";
    v.detail = what + " (the scan stopped here; keel-inspect verify lists every damaged record)";
    add_violation(std::move(v));
  }

  void finish() {
    rep_.streams = versions_.size();
    rep_.last_position = last_position_;
    rep_.skus = skus_.size();
    orders_.for_each([&](std::string_view key, const order_ledger& o) {
      if (!o.placed && o.last_position == 0)
        return; // only payment events: judged below through its captures
      std::string id{key};
      ++rep_.orders;
      rep_.outcomes[o.terminal ? o.status : "in_flight"]++;
      if (!o.terminal) {
        auto age = log_end_us_ - o.last_us;
        if (opts_.require_terminal || age > opts_.stuck_after_us)
          end_violation("non_terminal", id, o,
                        std::string{"order "} + id + " never ended: its last event leaves it "
                          + o.status + ", " + std::to_string(age / 1000000)
                          + " s before the newest event of the log");
      }
    });
    auths_.for_each([&](std::string_view key, const authorization& a) {
      std::string payment_id{key};
      const order_ledger* o = orders_.find(a.order_id);
      bool given_up = o != nullptr && o->terminal && !o->completed;
      if (given_up && !a.released)
        end_violation("authorization_not_voided", a.order_id, *o,
                      "order " + a.order_id + " is " + o->status + " but its authorization "
                        + payment_id + " (" + std::to_string(a.amount_cents)
                        + " cents) was never voided or refunded");
      if (a.captured_cents > 0 && (o == nullptr || !o->completed)) {
        static const order_ledger none;
        end_violation("capture_without_completion", a.order_id, o != nullptr ? *o : none,
                      "payment " + payment_id + " of order " + a.order_id + " was captured but "
                        + "the order is " + (o != nullptr ? (o->terminal ? o->status : "not ended") : "unknown"));
      }
    });
  }

private:
  void check_sequence(const events::record_view& rec) {
    // The global reader yields gap-free positions in order or stops with an
    // error, which `stopped` reports as a violation.
    last_position_ = rec.position;
    auto& version = versions_[rec.stream];
    if (rec.version != version + 1)
      fail("version_gap", rec, std::string{rec.stream},
           "version " + std::to_string(rec.version) + " follows " + std::to_string(version));
    version = rec.version;
  }

  void order_event(const events::record_view& rec) {
    auto& o = orders_[rec.stream.substr(6)];
    o.status = status_after(rec.type);
    o.placed = o.placed || rec.type == "order_placed"sv;
    o.terminal = o.status == std::string_view{"completed"} || o.status == std::string_view{"rejected"}
                 || o.status == std::string_view{"cancelled"};
    o.completed = o.status == std::string_view{"completed"};
    o.last_position = rec.position;
    o.last_version = rec.version;
    o.last_us = rec.timestamp_us;
  }

  template <class T>
  void apply(const T&, const events::record_view&) {
  }

  void apply(const events::stock_adjusted& x, const events::record_view&) {
    skus_[x.sku].on_hand = x.on_hand;
  }

  void apply(const events::stock_reserved& x, const events::record_view& rec) {
    auto& s = skus_[x.sku];
    s.reserved += x.quantity;
    s.holds[x.order_id] += x.quantity;
    if (s.reserved > s.on_hand)
      fail("oversell", rec, x.sku,
           x.sku + ": order " + x.order_id + " reserved " + std::to_string(x.quantity)
             + ", so " + std::to_string(s.reserved) + " units are reserved of "
             + std::to_string(s.on_hand) + " on hand");
  }

  void apply(const events::stock_released& x, const events::record_view& rec) {
    settle(x.sku, x.order_id, x.quantity, false, rec);
  }

  void apply(const events::stock_committed& x, const events::record_view& rec) {
    settle(x.sku, x.order_id, x.quantity, true, rec);
  }

  void apply(const events::payment_authorized& x, const events::record_view& rec) {
    auto& a = auths_[x.payment_id];
    if (!a.order_id.empty() && a.order_id != x.order_id)
      fail("foreign_capture", rec, x.order_id,
           "payment " + x.payment_id + " was authorized for order " + a.order_id
             + " and again for order " + x.order_id);
    a.order_id = x.order_id;
    a.amount_cents = x.amount_cents;
    a.authorized = true;
  }

  void apply(const events::payment_captured& x, const events::record_view& rec) {
    ++rep_.captures;
    auto& o = orders_[x.order_id];
    if (++o.captures > 1)
      fail("double_charge", rec, x.order_id,
           "order " + x.order_id + " captured " + std::to_string(o.captures)
             + " times (this capture: payment " + x.payment_id + ", "
             + std::to_string(x.amount_cents) + " cents)");
    auto& a = auths_[x.payment_id];
    if (!a.authorized) {
      fail("foreign_capture", rec, x.order_id,
           "payment " + x.payment_id + " captured for order " + x.order_id
             + " was never authorized");
      a.order_id = x.order_id;
      a.captured_cents += x.amount_cents;
      return;
    }
    if (a.order_id != x.order_id)
      fail("foreign_capture", rec, x.order_id,
           "payment " + x.payment_id + " of order " + a.order_id + " was captured for order "
             + x.order_id);
    a.captured_cents += x.amount_cents;
    if (a.captured_cents > a.amount_cents)
      fail("capture_exceeds_authorization", rec, x.order_id,
           "payment " + x.payment_id + " captured " + std::to_string(a.captured_cents)
             + " cents of " + std::to_string(a.amount_cents) + " authorized");
  }

  void apply(const events::payment_voided& x, const events::record_view&) {
    auths_[x.payment_id].released = true;
  }

  void apply(const events::payment_refunded& x, const events::record_view&) {
    auths_[x.payment_id].released = true;
  }

  void settle(const std::string& sku, const std::string& order, std::int64_t qty, bool commit,
              const events::record_view& rec) {
    auto& s = skus_[sku];
    auto i = s.holds.find(order);
    if (i == s.holds.end() || i->second < qty) {
      fail("stock_accounting", rec, sku,
           sku + ": order " + order + " " + (commit ? "committed " : "released ")
             + std::to_string(qty) + " units but held "
             + std::to_string(i == s.holds.end() ? 0 : i->second));
      return;
    }
    s.reserved -= qty;
    if (commit)
      s.on_hand -= qty;
    if ((i->second -= qty) == 0)
      s.holds.erase(i);
  }

  void fail(const char* kind, const events::record_view& rec, std::string subject,
            std::string detail) {
    audit_violation v;
    v.kind = kind;
    v.position = rec.position;
    v.stream = std::string{rec.stream};
    v.version = rec.version;
    v.subject = std::move(subject);
    v.detail = std::move(detail);
    add_violation(std::move(v));
  }

  void end_violation(const char* kind, const std::string& order, const order_ledger& o,
                     std::string detail) {
    audit_violation v;
    v.kind = kind;
    v.position = o.last_position;
    if (o.last_position != 0) {
      v.stream = events::order_stream(order);
      v.version = o.last_version;
    }
    v.subject = order;
    v.detail = std::move(detail);
    add_violation(std::move(v));
  }

  void add_violation(audit_violation v) {
    rep_.counts[v.kind]++;
    if (rep_.violations.size() >= opts_.max_violations) {
      rep_.truncated = true;
      return;
    }
    rep_.violations.push_back(std::move(v));
  }

  const audit_options& opts_;
  audit_report& rep_;
  std::uint64_t last_position_ = 0;
  std::int64_t log_end_us_ = 0;
  flat_map<std::uint64_t> versions_;
  std::unordered_map<std::string, sku_ledger> skus_;
  flat_map<authorization> auths_;
  flat_map<order_ledger> orders_;
};

} // namespace

caf::expected<audit_report> audit(const storage::event_store& store, const audit_options& opts) {
  audit_report rep;
  auditor a{opts, rep};
  // Two cores: one thread reads the log (RocksDB, decompression, record
  // checksums) into batches, this one folds them. A few batches circulate.
  struct pipe {
    std::mutex mtx;
    std::condition_variable cv;
    std::deque<std::unique_ptr<storage::record_batch>> full;
    std::vector<std::unique_ptr<storage::record_batch>> spare;
    bool done = false;
    caf::error err;
  } p;
  constexpr std::size_t batch_records = 4096;
  for (int i = 0; i < 4; ++i)
    p.spare.push_back(std::make_unique<storage::record_batch>());
  std::thread reader_thread{[&] {
    auto reader = store.read_all();
    std::unique_ptr<storage::record_batch> cur;
    auto take = [&] {
      std::unique_lock<std::mutex> lock{p.mtx};
      p.cv.wait(lock, [&] { return !p.spare.empty(); });
      cur = std::move(p.spare.back());
      p.spare.pop_back();
      cur->clear();
    };
    auto hand_over = [&] {
      std::lock_guard<std::mutex> lock{p.mtx};
      p.full.push_back(std::move(cur));
      p.cv.notify_all();
    };
    take();
    while (reader.next()) {
      cur->add(reader.current());
      if (cur->size() == batch_records) {
        hand_over();
        take();
      }
    }
    hand_over();
    std::lock_guard<std::mutex> lock{p.mtx};
    p.err = reader.error();
    p.done = true;
    p.cv.notify_all();
  }};
  for (;;) {
    std::unique_ptr<storage::record_batch> batch;
    {
      std::unique_lock<std::mutex> lock{p.mtx};
      p.cv.wait(lock, [&] { return !p.full.empty() || p.done; });
      if (p.full.empty())
        break;
      batch = std::move(p.full.front());
      p.full.pop_front();
    }
    for (const auto& v : batch->views()) {
      a.add(v);
      if (opts.progress && (rep.events & 0x3ffff) == 0)
        opts.progress(rep.events);
    }
    std::lock_guard<std::mutex> lock{p.mtx};
    p.spare.push_back(std::move(batch));
    p.cv.notify_all();
  }
  reader_thread.join();
  if (p.err) {
    if (code_of(p.err) != errc::corrupt_record)
      return p.err;
    a.stopped(p.err, store);
  }
  a.finish();
  return rep;
}

} // namespace keel::projections
