#include "timeline.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "keel/events/correlation.hpp"
#include "keel/events/json.hpp"
#include "keel/events/streams.hpp"

namespace keel::replay {

namespace {

using nlohmann::json;
using namespace keel::events;

std::string lane_of(const std::string& stream) {
  switch (kind_of_stream(stream)) {
    case stream_kind::order:
      return "saga";
    case stream_kind::stock:
      return "inventory";
    case stream_kind::payment:
      return "payment";
    case stream_kind::shipment:
      return "shipping";
    case stream_kind::breaker:
      return "breaker";
    default:
      return "system";
  }
}

/// The lane of a step: where its commands go.
std::string step_lane(const std::string& name) {
  if (name.find("stock") != std::string::npos && name.find("payment") == std::string::npos)
    return "inventory";
  if (name.find("payment") != std::string::npos)
    return "payment";
  if (name.find("shipment") != std::string::npos)
    return "shipping";
  return "saga";
}

std::string text_of(const json& v) {
  return v.is_string() ? v.get<std::string>() : dump_json(v);
}

/// The key fields of an event on one line.
std::string details_of(const event& ev, std::int64_t placed_us) {
  auto j = to_json_value(ev);
  std::string out;
  auto add = [&](const std::string& s) { out += (out.empty() ? "" : "  ") + s; };
  for (auto& [k, v] : j.items()) {
    if (k == "order_id" || k == "shipping_address")
      continue;
    if (k == "lines" && v.is_array()) {
      std::string ls;
      for (auto& l : v)
        ls += (ls.empty() ? "" : ", ") + text_of(l["sku"]) + " x" + text_of(l["quantity"]);
      add("lines=[" + ls + "]");
    } else if (k == "retry_at_us" && v.is_number_integer()) {
      add("retry_at=" + relative_time(v.get<std::int64_t>() - placed_us));
    } else if (k == "estimated_delivery_us" && v.is_number_integer()) {
      add("delivery=" + format_timestamp(v.get<std::int64_t>()).substr(0, 10));
    } else {
      auto s = text_of(v);
      add(k + "=" + (s.find(' ') != std::string::npos ? "\"" + s + "\"" : s));
    }
  }
  return out;
}

timeline_row row_of(const stored_event& e, std::int64_t placed_us) {
  timeline_row r;
  r.position = e.position;
  r.stream = e.stream;
  r.version = e.version;
  r.timestamp_us = e.timestamp_us;
  r.lane = lane_of(e.stream);
  r.type = e.type;
  r.details = details_of(e.data, placed_us);
  r.event_id = to_string(e.id);
  if (e.causation_id.valid())
    r.causation_id = to_string(e.causation_id);
  r.data = to_json_value(e.data);
  return r;
}

void set_cause(timeline_row& r, const order_records& o, const step_instance& s) {
  auto& drv = o.order[s.driver];
  r.caused_by = s.name + " by @" + std::to_string(drv.version) + " " + drv.type;
  r.cause_version = drv.version;
}

std::vector<breaker_span> spans_of(const order_records& o, std::int64_t end_us) {
  std::vector<breaker_span> result;
  std::map<std::string, std::pair<std::string, std::int64_t>> current;
  auto close = [&](const std::string& name, std::int64_t at) {
    auto i = current.find(name);
    if (i != current.end() && i->second.first != "closed")
      result.push_back({name, i->second.first, i->second.second, at});
  };
  for (auto& e : o.breakers) {
    auto& t = std::get<breaker_transitioned>(e.data);
    close(t.breaker, e.timestamp_us);
    current[t.breaker] = {to_string(t.to), e.timestamp_us};
  }
  for (auto& [name, st] : current)
    close(name, end_us);
  return result;
}

/// Renders `table` with aligned columns (right-aligned where `right` says).
std::string aligned(const std::vector<std::vector<std::string>>& table,
                    const std::vector<bool>& right) {
  std::vector<std::size_t> width(table.front().size(), 0);
  for (auto& row : table)
    for (std::size_t c = 0; c < row.size(); ++c)
      width[c] = std::max(width[c], row[c].size());
  std::string out;
  for (auto& row : table) {
    std::string line = " ";
    for (std::size_t c = 0; c < row.size(); ++c) {
      auto cell = row[c];
      if (c + 1 < row.size()) {
        auto pad = std::string(width[c] - cell.size(), ' ');
        cell = right[c] ? pad + cell : cell + pad;
        cell += "  ";
      }
      line += " " + cell;
    }
    while (!line.empty() && line.back() == ' ')
      line.pop_back();
    out += line + "\n";
  }
  return out;
}

std::string steps_table(const timeline& t) {
  std::vector<std::vector<std::string>> table{
    {"STEP", "ISSUED BY", "START", "END", "TOOK", "OUTCOME"}};
  for (auto& s : t.steps)
    table.push_back({s.name, "@" + std::to_string(s.driver_version) + " " + s.driver_type,
                     relative_time(s.start_us - t.placed_us), relative_time(s.end_us - t.placed_us),
                     relative_time(s.end_us - s.start_us).substr(1), s.outcome});
  for (auto& b : t.breakers)
    table.push_back({"breaker " + b.breaker + " " + b.state, "-",
                     relative_time(b.from_us - t.placed_us), relative_time(b.until_us - t.placed_us),
                     relative_time(b.until_us - b.from_us).substr(1), "-"});
  return aligned(table, {false, false, true, true, true, false});
}

} // namespace

std::string relative_time(std::int64_t us) {
  char buf[48];
  auto sign = us < 0 ? '-' : '+';
  auto a = static_cast<long long>(std::llabs(us));
  if (a < 1'000'000)
    std::snprintf(buf, sizeof buf, "%c%lld.%03lld ms", sign, a / 1000, a % 1000);
  else
    std::snprintf(buf, sizeof buf, "%c%lld.%03lld s", sign, a / 1'000'000, (a / 1000) % 1000);
  return buf;
}

namespace {

/// The parks as rows of the retry queue's lane (it is in memory, or Kafka in
/// a cluster: its entries are the parks).
void add_park_rows(timeline& t, const order_records& o, const derivation& d) {
  for (auto& p : d.parks) {
    auto& e = o.order[p.pending];
    auto& x = std::get<order_payment_pending>(e.data);
    timeline_row r;
    r.position = e.position;
    r.stream = "(retry queue)";
    r.timestamp_us = e.timestamp_us;
    r.lane = "retry-queue";
    r.type = "parked";
    r.details = "attempt=" + std::to_string(x.attempt) + "  due="
                + relative_time(x.retry_at_us - t.placed_us);
    if (p.until)
      r.details += "  left=" + relative_time(o.order[*p.until].timestamp_us - t.placed_us)
                   + " (" + o.order[*p.until].type + ")";
    else
      r.details += "  still parked";
    r.caused_by = "park_payment by @" + std::to_string(e.version) + " " + e.type;
    r.cause_version = e.version;
    r.data = json{{"attempt", x.attempt}, {"retry_at_us", x.retry_at_us}, {"reason", x.reason}};
    t.rows.push_back(std::move(r));
  }
}

/// The steps (waterfall bars): each from its driver to its last outcome, and
/// the parked periods.
void add_steps(timeline& t, const order_records& o, const derivation& d) {
  for (auto& s : d.steps) {
    timeline_step ts;
    ts.name = s.name;
    ts.lane = step_lane(s.name);
    auto& drv = o.order[s.driver];
    ts.driver_version = drv.version;
    ts.driver_type = drv.type;
    ts.start_us = drv.timestamp_us;
    ts.end_us = drv.timestamp_us;
    for (auto i : s.services) {
      ts.ticks.emplace_back(o.services[i].timestamp_us, o.services[i].type);
      ts.end_us = std::max(ts.end_us, o.services[i].timestamp_us);
    }
    if (s.last_outcome) {
      auto& out = o.order[*s.last_outcome];
      ts.end_us = std::max(ts.end_us, out.timestamp_us);
      ts.outcome = o.order[*s.first_outcome].type;
      if (*s.first_outcome != *s.last_outcome)
        ts.outcome += ", " + out.type;
      ts.outcome_version = out.version;
    } else {
      ts.open = true;
      ts.outcome = "(in flight)";
    }
    t.steps.push_back(std::move(ts));
  }
  for (auto& p : d.parks) {
    auto& e = o.order[p.pending];
    timeline_step ts;
    ts.name = "parked (retry queue)";
    ts.lane = "retry-queue";
    ts.driver_version = e.version;
    ts.driver_type = e.type;
    ts.start_us = e.timestamp_us;
    ts.end_us = p.until ? o.order[*p.until].timestamp_us : t.end_us;
    ts.open = !p.until;
    ts.outcome = p.until ? "re-driven: " + o.order[*p.until].type : "(still parked)";
    if (p.until)
      ts.outcome_version = o.order[*p.until].version;
    t.steps.push_back(std::move(ts));
  }
}

} // namespace

timeline build_timeline(const order_records& o, const derivation& d,
                        const actors::saga_policy& policy) {
  timeline t;
  t.order_id = o.order_id;
  t.correlation_id = to_string(events::correlation_of(o.order_id));
  t.placed_us = o.order.front().timestamp_us;
  t.order_events = o.order.size();
  t.service_events = o.services.size();
  t.breaker_events = o.breakers.size();
  actors::order_state st;
  for (auto& e : o.order) {
    auto x = actors::decide(st, e.data, e.timestamp_us, policy);
    if (x.anomaly.empty())
      st = std::move(x.state);
  }
  t.status = events::to_string(st.status);
  t.reason = actors::reason_of(st);
  for (std::size_t v = 0; v < o.order.size(); ++v) {
    auto r = row_of(o.order[v], t.placed_us);
    if (d.answers[v])
      set_cause(r, o, d.steps[*d.answers[v]]);
    t.rows.push_back(std::move(r));
  }
  for (std::size_t i = 0; i < o.services.size(); ++i) {
    auto r = row_of(o.services[i], t.placed_us);
    if (d.caused_by[i])
      set_cause(r, o, d.steps[*d.caused_by[i]]);
    t.rows.push_back(std::move(r));
  }
  for (auto& e : o.breakers)
    t.rows.push_back(row_of(e, t.placed_us));
  add_park_rows(t, o, d);
  std::stable_sort(t.rows.begin(), t.rows.end(), [](auto& x, auto& y) {
    return x.timestamp_us != y.timestamp_us ? x.timestamp_us < y.timestamp_us
                                            : x.position < y.position;
  });
  t.end_us = t.placed_us;
  for (auto& r : t.rows)
    t.end_us = std::max(t.end_us, r.timestamp_us);
  add_steps(t, o, d);
  std::stable_sort(t.steps.begin(), t.steps.end(),
                   [](auto& x, auto& y) { return x.start_us < y.start_us; });
  t.breakers = spans_of(o, t.end_us);
  return t;
}

std::string render_text(const timeline& t) {
  std::string out = "order " + t.order_id + "  " + t.status;
  if (!t.reason.empty())
    out += " (" + t.reason + ")";
  out += "\n  placed " + format_timestamp(t.placed_us) + ", last event "
         + relative_time(t.end_us - t.placed_us) + ", correlation " + t.correlation_id + "\n";
  out += "  " + std::to_string(t.order_events) + " saga events, "
         + std::to_string(t.service_events) + " service events, "
         + std::to_string(t.breaker_events) + " breaker transitions\n\n";
  std::vector<std::vector<std::string>> table{
    {"TIME", "LANE", "EVENT", "STREAM@VERSION", "POS", "CAUSED BY", "DETAILS"}};
  for (auto& r : t.rows)
    table.push_back({relative_time(r.timestamp_us - t.placed_us), r.lane, r.type,
                     r.version == 0 ? r.stream : r.stream + "@" + std::to_string(r.version),
                     std::to_string(r.position), r.caused_by.empty() ? "-" : r.caused_by,
                     r.details});
  out += aligned(table, {true, false, false, false, true, false, false});
  out += "\n" + steps_table(t);
  return out;
}

json render_json(const timeline& t) {
  auto rows = json::array();
  for (auto& r : t.rows) {
    json j = {{"position", r.position},
              {"stream", r.stream},
              {"version", r.version},
              {"timestamp_us", r.timestamp_us},
              {"relative_us", r.timestamp_us - t.placed_us},
              {"lane", r.lane},
              {"type", r.type},
              {"data", r.data}};
    if (!r.caused_by.empty())
      j["caused_by"] = {{"text", r.caused_by}, {"version", *r.cause_version}};
    if (!r.event_id.empty() && r.version != 0)
      j["event_id"] = r.event_id;
    if (!r.causation_id.empty())
      j["causation_id"] = r.causation_id;
    rows.push_back(std::move(j));
  }
  auto steps = json::array();
  for (auto& s : t.steps) {
    json j = {{"name", s.name},
              {"lane", s.lane},
              {"issued_by", {{"version", s.driver_version}, {"type", s.driver_type}}},
              {"start_us", s.start_us - t.placed_us},
              {"end_us", s.end_us - t.placed_us},
              {"open", s.open},
              {"outcome", s.outcome}};
    if (s.outcome_version)
      j["outcome_version"] = *s.outcome_version;
    steps.push_back(std::move(j));
  }
  auto spans = json::array();
  for (auto& b : t.breakers)
    spans.push_back({{"breaker", b.breaker},
                     {"state", b.state},
                     {"from_us", b.from_us - t.placed_us},
                     {"until_us", b.until_us - t.placed_us}});
  return json{{"order_id", t.order_id},
              {"correlation_id", t.correlation_id},
              {"status", t.status},
              {"reason", t.reason},
              {"placed_us", t.placed_us},
              {"placed", format_timestamp(t.placed_us)},
              {"duration_us", t.end_us - t.placed_us},
              {"rows", std::move(rows)},
              {"steps", std::move(steps)},
              {"breaker_spans", std::move(spans)}};
}

} // namespace keel::replay
