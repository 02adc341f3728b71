#include "derive.hpp"

#include <algorithm>
#include <map>

#include "codec.hpp"
#include "gather.hpp"

namespace keel::replay {

namespace {

using nlohmann::json;
using namespace keel::events;

/// The step whose command a service event answers: what the services
/// record for each command (their contract, not the saga's rules).
std::string service_step(const std::string& type) {
  static const std::map<std::string, std::string> table = {
    {"stock_reserved", "reserve_stock"},
    {"stock_reservation_refused", "reserve_stock"},
    {"payment_authorized", "authorize_payment"},
    {"payment_declined", "authorize_payment"},
    {"payment_unavailable", "authorize_payment"},
    {"shipment_scheduled", "schedule_shipment"},
    {"shipment_failed", "schedule_shipment"},
    {"payment_captured", "capture_payment+commit_stock"},
    {"stock_committed", "capture_payment+commit_stock"},
    {"shipment_cancelled", "cancel_shipment"},
    {"payment_voided", "void_payment"},
    {"stock_released", "release_stock"},
  };
  auto i = table.find(type);
  return i == table.end() ? std::string{} : i->second;
}

std::string where(const stored_event& e) {
  return e.type + " " + e.stream + "@" + std::to_string(e.version);
}

/// `{"sku": .., "quantity": ..}` per SKU of the stock events of type `T`.
template <class T>
json stock_lines(const order_records& o, const step_instance& s) {
  std::map<std::string, std::uint64_t> per_sku;
  for (auto i : s.services)
    if (auto* x = std::get_if<T>(&o.services[i].data)) {
      if constexpr (std::is_same_v<T, stock_reservation_refused>)
        per_sku[x->sku] += x->requested;
      else
        per_sku[x->sku] += x->quantity;
    }
  auto lines = json::array();
  for (auto& [sku, qty] : per_sku)
    lines.push_back({{"sku", sku}, {"quantity", qty}});
  return lines;
}

template <class T>
const T* last_service(const order_records& o, const step_instance& s) {
  const T* result = nullptr;
  for (auto i : s.services)
    if (auto* x = std::get_if<T>(&o.services[i].data))
      result = x;
  return result;
}

template <class T>
const T* outcome(const order_records& o, const step_instance& s) {
  for (auto v : {s.first_outcome, s.last_outcome})
    if (v)
      if (auto* x = std::get_if<T>(&o.order[*v].data))
        return x;
  return nullptr;
}

/// The commands of `s` as far as the store shows them.
std::vector<json> evidence(const order_records& o, const step_instance& s) {
  bool open = !s.last_outcome;
  auto named = [](const char* name) { return json{{"command", name}}; };
  if (s.name == "reserve_stock") {
    auto lines = stock_lines<stock_reserved>(o, s);
    for (auto& l : stock_lines<stock_reservation_refused>(o, s))
      lines.push_back(l);
    auto cmd = named("reserve_stock");
    cmd["lines"] = std::move(lines);
    if (open || last_service<stock_reservation_refused>(o, s) != nullptr)
      cmd["partial"] = true; // a refusal ends the reservation of the other lines
    return {cmd};
  }
  if (s.name == "authorize_payment") {
    auto cmd = named("authorize_payment");
    if (auto* x = last_service<payment_authorized>(o, s)) {
      cmd["amount_cents"] = x->amount_cents;
      cmd["currency"] = x->currency;
      cmd["idempotency_key"] = x->idempotency_key;
    }
    return {cmd};
  }
  if (s.name == "schedule_shipment")
    return {named("schedule_shipment")};
  if (s.name == "capture_payment+commit_stock") {
    auto cap = named("capture_payment");
    if (auto* x = last_service<payment_captured>(o, s))
      cap["payment_id"] = x->payment_id;
    auto com = named("commit_stock");
    com["lines"] = stock_lines<stock_committed>(o, s);
    if (open)
      com["partial"] = true;
    return {cap, com};
  }
  if (s.name == "cancel_shipment") {
    auto cmd = named("cancel_shipment");
    if (auto* x = outcome<order_shipment_cancelled>(o, s))
      cmd["tracking_id"] = x->tracking_id;
    else if (auto* y = last_service<shipment_cancelled>(o, s))
      cmd["tracking_id"] = y->tracking_id;
    return {cmd};
  }
  if (s.name == "void_payment") {
    auto cmd = named("void_payment");
    if (auto* x = outcome<order_payment_voided>(o, s))
      cmd["payment_id"] = x->payment_id;
    else if (auto* y = last_service<payment_voided>(o, s))
      cmd["payment_id"] = y->payment_id;
    return {cmd};
  }
  if (s.name == "release_stock") {
    auto cmd = named("release_stock");
    cmd["lines"] = stock_lines<stock_released>(o, s);
    cmd["partial"] = true; // lines that held nothing release nothing
    return {cmd};
  }
  if (s.name == "record_rejected") {
    auto cmd = named("record_rejected");
    if (auto* x = outcome<order_rejected>(o, s)) {
      cmd["reason"] = x->reason;
      cmd["code"] = to_string(x->code);
    }
    return {cmd};
  }
  if (s.name == "record_cancelled") {
    auto cmd = named("record_cancelled");
    if (auto* x = outcome<order_cancelled>(o, s)) {
      cmd["reason"] = x->reason;
      cmd["code"] = to_string(x->code);
    }
    return {cmd};
  }
  return {};
}

/// Where the event with id `id` is among the order's events.
struct located {
  const stored_event* event = nullptr;
  bool order = false;
  std::size_t index = 0;
};

located locate(const order_records& o, const event_id& id) {
  if (!id.valid())
    return {};
  for (std::size_t v = 0; v < o.order.size(); ++v)
    if (o.order[v].id == id)
      return {&o.order[v], true, v};
  for (std::size_t i = 0; i < o.services.size(); ++i)
    if (o.services[i].id == id)
      return {&o.services[i], false, i};
  return {};
}

std::string cause_text(const located& c) {
  return c.event ? where(*c.event) : std::string{"an event that is not this order's"};
}

/// The step today's decider issued after order event `v` ("capture_payment+commit_stock";
/// empty when it issued none, or only park_payment), and whether it parked the order.
struct issued {
  std::string name;
  bool parks = false;
};

std::vector<issued> issued_steps(const order_records& o, const actors::saga_policy& policy) {
  std::vector<history_event> evs;
  for (auto& e : o.order)
    evs.push_back({e.position, e.version, e.type, e.timestamp_us, e.data, {}});
  std::vector<issued> out;
  for (auto& x : replay_decisions(evs, policy)) {
    issued i;
    for (auto& c : x.commands) {
      if (std::holds_alternative<actors::park_payment>(c)) {
        i.parks = true;
        continue;
      }
      i.name += (i.name.empty() ? "" : "+") + std::string{actors::command_name(c)};
    }
    out.push_back(std::move(i));
  }
  return out;
}

/// What keel-replay says of an event without the causation id it needs.
const char* const uncaused
  = "carries no causation id (written before the pipeline recorded them): its step cannot be "
    "shown";

/// Puts the steps in the order of their drivers and renumbers the references.
void sort_steps(derivation& d) {
  std::vector<std::size_t> order(d.steps.size());
  for (std::size_t k = 0; k < order.size(); ++k)
    order[k] = k;
  std::stable_sort(order.begin(), order.end(),
                   [&](auto x, auto y) { return d.steps[x].driver < d.steps[y].driver; });
  std::vector<std::size_t> renumbered(order.size());
  std::vector<step_instance> sorted;
  for (std::size_t k = 0; k < order.size(); ++k) {
    renumbered[order[k]] = k;
    sorted.push_back(std::move(d.steps[order[k]]));
  }
  d.steps = std::move(sorted);
  for (auto* refs : {&d.caused_by, &d.answers})
    for (auto& r : *refs)
      if (r)
        r = renumbered[*r];
}

/// The steps from the stored causation ids: a service event joins the step
/// of the order event it names (if that step's commands cause its kind); an
/// outcome joins the step of the service event or order event it names.
/// Steps are named by today's decider's commands at their driver.
void link_steps(const order_records& o, derivation& d, const actors::saga_policy& policy) {
  auto steps = issued_steps(o, policy);
  std::map<std::size_t, std::size_t> by_driver;
  auto step_at = [&](std::size_t u) -> std::optional<std::size_t> {
    if (steps[u].name.empty())
      return std::nullopt;
    auto [i, fresh] = by_driver.emplace(u, d.steps.size());
    if (fresh)
      d.steps.push_back(step_instance{steps[u].name, u, {}, {}, {}});
    return i->second;
  };
  const auto* end = is_terminal_event(o.order.back().data) ? &o.order.back() : nullptr;
  for (std::size_t i = 0; i < o.services.size(); ++i) {
    auto& s = o.services[i];
    if (end && s.position > end->position) {
      d.unexplained.push_back({s, "after the order ended (" + end->type + ")"});
      continue;
    }
    if (!s.causation_id.valid()) {
      d.unexplained.push_back({s, uncaused});
      continue;
    }
    auto c = locate(o, s.causation_id);
    if (!c.order) {
      d.unexplained.push_back({s, "names no event of this order as its cause"});
      continue;
    }
    auto k = step_at(c.index);
    auto wanted = service_step(s.type);
    // service_step names capture_payment and commit_stock together.
    if (!k || wanted.empty() || steps[c.index].name != wanted) {
      d.unexplained.push_back({s, "not caused by " + (k ? d.steps[*k].name : std::string{"a step"})
                                    + " (issued by " + where(o.order[c.index]) + ")"});
      continue;
    }
    d.caused_by[i] = k;
    d.steps[*k].services.push_back(i);
  }
  for (std::size_t v = 0; v < o.order.size(); ++v) {
    if (steps[v].parks)
      d.parks.push_back(park_period{v, v + 1 < o.order.size() ? std::optional<std::size_t>{v + 1}
                                                              : std::nullopt});
    auto& type = o.order[v].type;
    if (type == "order_placed" || type == "order_cancel_requested")
      continue; // commands from outside answer no step
    if (!o.order[v].causation_id.valid()) {
      d.miscaused.push_back({o.order[v], uncaused});
      continue;
    }
    auto c = locate(o, o.order[v].causation_id);
    std::optional<std::size_t> k;
    if (c.event && c.order)
      k = step_at(c.index);
    else if (c.event)
      k = d.caused_by[c.index];
    if (!k)
      continue;
    auto& st = d.steps[*k];
    if (!st.first_outcome)
      st.first_outcome = v;
    st.last_outcome = v;
    d.answers[v] = k;
  }
  sort_steps(d);
}

/// Order events that name a cause but answer no step: order_placed or
/// order_cancel_requested naming anything, or an outcome whose cause is not
/// a step of this order. (The steps are built from the causes, so an event
/// that answers a step names it consistently: nothing else to check.)
void check_causation(const order_records& o, derivation& d) {
  for (std::size_t v = 0; v < o.order.size(); ++v) {
    auto& e = o.order[v];
    if (e.causation_id.valid() && !d.answers[v])
      d.miscaused.push_back(
        {e, "answers no step, yet names a cause: " + cause_text(locate(o, e.causation_id))});
  }
}

} // namespace

derivation derive(const order_records& o, const actors::saga_policy& policy) {
  derivation d;
  d.answers.resize(o.order.size());
  d.recorded.resize(o.order.size());
  d.caused_by.resize(o.services.size());
  link_steps(o, d, policy);
  check_causation(o, d);
  // Recorded commands per driver, in step order; a park first at its event.
  std::size_t next_park = 0;
  auto premium = false;
  if (auto* placed = std::get_if<order_placed>(&o.order.front().data))
    premium = placed->premium;
  auto add_parks_until = [&](std::size_t v) {
    for (; next_park < d.parks.size() && d.parks[next_park].pending <= v; ++next_park) {
      auto p = d.parks[next_park].pending;
      auto& x = std::get<order_payment_pending>(o.order[p].data);
      d.recorded[p].push_back(json{{"command", "park_payment"},
                                   {"retry_at_us", x.retry_at_us},
                                   {"attempt", x.attempt},
                                   {"premium", premium}});
    }
  };
  for (auto& st : d.steps) {
    add_parks_until(st.driver);
    for (auto& cmd : evidence(o, st))
      d.recorded[st.driver].push_back(std::move(cmd));
  }
  add_parks_until(o.order.size());
  return d;
}

history recorded_history(const order_records& o, const derivation& d,
                         const actors::saga_policy& policy) {
  history h;
  h.order_id = o.order_id;
  h.policy = policy;
  h.mode = match_mode::evidence;
  for (std::size_t v = 0; v < o.order.size(); ++v) {
    auto& e = o.order[v];
    h.events.push_back({e.position, e.version, e.type, e.timestamp_us, e.data, d.recorded[v]});
  }
  h.unexplained = d.unexplained;
  h.miscaused = d.miscaused;
  return h;
}

std::vector<decided> replay_decisions(const std::vector<history_event>& evs,
                                      const actors::saga_policy& policy) {
  std::vector<decided> result;
  actors::order_state st;
  for (std::size_t k = 0; k < evs.size(); ++k) {
    auto d = actors::decide(st, evs[k].data, evs[k].timestamp_us, policy);
    decided x;
    if (!d.anomaly.empty()) {
      x.anomaly = d.anomaly;
      x.awaiting = actors::resume(st);
    } else {
      st = std::move(d.state);
      x.commands = std::move(d.commands);
      if (st.status == actors::order_status::pending_payment && k + 1 < evs.size()
          && evs[k + 1].type != "order_cancel_requested")
        for (auto& c : actors::resume(st))
          x.commands.push_back(std::move(c));
    }
    x.status = st.status;
    result.push_back(std::move(x));
  }
  return result;
}

history decided_history(const order_records& o, const actors::saga_policy& policy) {
  history h;
  h.order_id = o.order_id;
  h.policy = policy;
  h.mode = match_mode::exact;
  for (auto& e : o.order)
    h.events.push_back({e.position, e.version, e.type, e.timestamp_us, e.data, {}});
  auto ds = replay_decisions(h.events, policy);
  for (std::size_t k = 0; k < ds.size(); ++k)
    for (auto& c : ds[k].commands)
      h.events[k].commands.push_back(command_json(c));
  return h;
}

} // namespace keel::replay
