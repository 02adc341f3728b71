#include "check.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include "codec.hpp"
#include "derive.hpp"
#include "keel/events/json.hpp"
#include "keel/events/streams.hpp"
#include "timeline.hpp"

namespace keel::replay {

namespace {

using nlohmann::json;

/// The fields in which two commands of the same name differ.
std::vector<std::string> differing_fields(const json& expected, const json& recorded,
                                          match_mode mode) {
  std::vector<std::string> result;
  bool partial = recorded.value("partial", false);
  std::set<std::string> keys;
  for (auto& [k, v] : recorded.items())
    keys.insert(k);
  if (mode == match_mode::exact)
    for (auto& [k, v] : expected.items())
      keys.insert(k);
  keys.erase("command");
  keys.erase("partial");
  for (auto& k : keys) {
    if (!expected.contains(k) || !recorded.contains(k)) {
      result.push_back(k);
      continue;
    }
    bool same = mode == match_mode::evidence && k == "lines"
                  ? lines_match(expected[k], recorded[k], partial)
                  : expected[k] == recorded[k];
    if (!same)
      result.push_back(k);
  }
  return result;
}

std::string names(const std::vector<json>& cmds) {
  std::string result;
  for (auto& c : cmds) {
    if (!result.empty())
      result += ", ";
    result += c.value("command", std::string{"?"});
  }
  return "[" + result + "]";
}


std::string describe_difference(const std::vector<json>& e, const std::vector<json>& r,
                                match_mode mode) {
  if (e.size() == r.size()) {
    for (std::size_t i = 0; i < e.size(); ++i) {
      if (e[i].value("command", "") != r[i].value("command", ""))
        break;
      auto diff = differing_fields(e[i], r[i], mode);
      if (!diff.empty()) {
        std::string fields;
        for (auto& f : diff)
          fields += (fields.empty() ? "" : ", ") + f;
        return e[i].value("command", std::string{}) + " differs in " + fields;
      }
    }
  }
  return "the decider issues " + names(e) + ", recorded " + names(r);
}

json event_entry(const std::string& type, const events::event& data) {
  auto fields = events::to_json_value(data);
  fields.erase("order_id");
  return json{{"event", type}, {"data", fields}};
}

/// Whether a later event of an evidence history records commands (else the
/// saga may still be waiting for services to write evidence of this one).
bool in_flight(const history& h, std::size_t k, const std::vector<decided>& ds) {
  if (actors::is_terminal(ds.back().status))
    return false;
  for (auto i = k + 1; i < h.events.size(); ++i)
    if (!h.events[i].commands.empty())
      return false;
  return true;
}

std::string scalar(const json& v) {
  if (v.is_string()) {
    auto s = v.get<std::string>();
    if (s.empty() || s.find(' ') != std::string::npos)
      return events::dump_json(v);
    return s;
  }
  return events::dump_json(v);
}

} // namespace

bool command_matches(const json& expected, const json& recorded, match_mode mode) {
  if (expected.value("command", "") != recorded.value("command", ""))
    return false;
  return differing_fields(expected, recorded, mode).empty();
}

std::string command_line(const json& cmd) {
  std::string out;
  if (cmd.contains("event")) {
    out = cmd["event"].get<std::string>();
    if (cmd.contains("data"))
      for (auto& [k, v] : cmd["data"].items())
        out += " " + k + "=" + scalar(v);
    return out;
  }
  out = cmd.value("command", std::string{"?"});
  for (auto& [k, v] : cmd.items()) {
    if (k == "command" || k == "partial")
      continue;
    out += " " + k + "=";
    if (k == "lines" && v.is_array()) {
      std::string ls;
      for (auto& l : v) {
        ls += (ls.empty() ? "" : ", ") + l.value("sku", std::string{"?"}) + " x"
              + std::to_string(l.value("quantity", 0u));
        if (l.contains("unit_price_cents"))
          ls += " @" + scalar(l["unit_price_cents"]);
      }
      out += "[" + ls + "]";
    } else if (v.is_object()) {
      std::string fs;
      for (auto& [fk, fv] : v.items())
        fs += (fs.empty() ? "" : ", ") + (fv.is_string() ? fv.get<std::string>() : scalar(fv));
      out += "{" + fs + "}";
    } else {
      out += scalar(v);
    }
  }
  if (cmd.value("partial", false))
    out += " (partial evidence)";
  return out;
}

check_report check(const history& h) {
  check_report r;
  r.order_id = h.order_id;
  r.events = h.events.size();
  r.mode = h.mode;
  if (h.events.empty())
    return r;
  r.placed_us = h.events.front().timestamp_us;
  auto ds = replay_decisions(h.events, h.policy);
  r.status = events::to_string(ds.back().status);
  auto stream = events::order_stream(h.order_id);
  for (std::size_t k = 0; k < h.events.size(); ++k) {
    auto& e = h.events[k];
    divergence d{{}, e.position, stream, e.version, e.type, e.timestamp_us, {}, {}, {}};
    if (!ds[k].anomaly.empty()) {
      d.kind = "unexpected_event";
      d.detail = "the decider did not expect it: " + ds[k].anomaly;
      for (auto& c : ds[k].awaiting)
        d.expected.push_back(command_json(c));
      d.recorded.push_back(event_entry(e.type, e.data));
      r.divergences.push_back(std::move(d));
      continue;
    }
    auto& cmds = ds[k].commands;
    bool same = cmds.size() == e.commands.size();
    for (std::size_t i = 0; same && i < cmds.size(); ++i)
      same = command_equals(cmds[i], e.commands[i], h.mode);
    if (same)
      continue;
    std::vector<json> expected;
    for (auto& c : cmds)
      expected.push_back(command_json(c));
    if (h.mode == match_mode::evidence && e.commands.empty() && in_flight(h, k, ds))
      continue;
    d.kind = "commands";
    d.detail = describe_difference(expected, e.commands, h.mode);
    d.expected = std::move(expected);
    d.recorded = e.commands;
    r.divergences.push_back(std::move(d));
  }
  for (auto* list : {&h.unexplained, &h.miscaused})
    for (auto& u : *list) {
      auto& s = u.event;
      divergence d{list == &h.unexplained ? "unexplained_service_event" : "causation",
                   s.position, s.stream, s.version, s.type, s.timestamp_us, u.why, {},
                   {event_entry(s.type, s.data)}};
      r.divergences.push_back(std::move(d));
    }
  std::stable_sort(r.divergences.begin(), r.divergences.end(),
                   [](auto& x, auto& y) { return x.position < y.position; });
  return r;
}

std::string render_text(const check_report& r, bool verbose) {
  if (r.divergences.empty() && !verbose)
    return {};
  std::string out = "order " + r.order_id + ": " + std::to_string(r.events) + " events, "
                    + r.status + ", ";
  if (r.divergences.empty())
    return out + "replays clean\n";
  out += std::to_string(r.divergences.size())
         + (r.divergences.size() == 1 ? " divergence\n" : " divergences\n");
  for (auto& d : r.divergences) {
    out += "  " + d.stream + "@" + std::to_string(d.version) + " position "
           + std::to_string(d.position) + " (" + relative_time(d.timestamp_us - r.placed_us)
           + ") " + d.type + ": " + d.detail + "\n";
    // A unified diff: commands both sides agree on, then what differs.
    std::size_t common = 0;
    while (d.kind == "commands" && common < d.expected.size() && common < d.recorded.size()
           && command_matches(d.expected[common], d.recorded[common], r.mode))
      ++common;
    for (std::size_t i = 0; i < common; ++i)
      out += "      " + command_line(d.recorded[i]) + "\n";
    for (auto i = common; i < d.expected.size(); ++i)
      out += "    - " + command_line(d.expected[i]) + "\n";
    if (d.expected.empty() && d.kind != "commands")
      out += "    - (nothing)\n";
    for (auto i = common; i < d.recorded.size(); ++i)
      out += "    + " + command_line(d.recorded[i]) + "\n";
    if (d.recorded.size() == common && d.kind == "commands")
      out += "    + (nothing recorded)\n";
  }
  return out;
}

json render_json(const check_report& r) {
  auto divs = json::array();
  for (auto& d : r.divergences)
    divs.push_back({{"kind", d.kind},
                    {"position", d.position},
                    {"stream", d.stream},
                    {"version", d.version},
                    {"type", d.type},
                    {"timestamp_us", d.timestamp_us},
                    {"relative_us", d.timestamp_us - r.placed_us},
                    {"detail", d.detail},
                    {"expected", d.expected},
                    {"recorded", d.recorded}});
  return json{{"order_id", r.order_id},
              {"events", r.events},
              {"status", r.status},
              {"clean", r.divergences.empty()},
              {"divergences", std::move(divs)}};
}

} // namespace keel::replay
