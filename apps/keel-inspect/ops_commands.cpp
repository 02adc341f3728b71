// checkpoints and projection skip|rebuild|skips: the read side's positions.

#include <cstdio>
#include <iostream>
#include <thread>

#include <httplib.h>

#include "commands.hpp"
#include "keel/events/error.hpp"
#include "keel/events/json.hpp"
#include "keel/projections/runner.hpp"

namespace keel::inspect {

namespace {

/// What a checkpoint name says: "projection/<name>/g<generation hex>",
/// "outbox/kafka", or anything else.
struct checkpoint_kind {
  std::string kind;
  std::string owner;
  std::uint32_t generation = 0;
};

checkpoint_kind classify(const std::string& name) {
  const std::string p = "projection/";
  if (name.rfind(p, 0) == 0) {
    auto slash = name.rfind("/g");
    if (slash != std::string::npos && slash > p.size()) {
      checkpoint_kind k{"projection", name.substr(p.size(), slash - p.size()), 0};
      try {
        k.generation = static_cast<std::uint32_t>(std::stoul(name.substr(slash + 2), nullptr, 16));
      } catch (const std::exception&) {
        k.generation = 0;
      }
      return k;
    }
  }
  if (name.rfind("outbox/", 0) == 0)
    return {"outbox", name.substr(7), 0};
  return {"other", name, 0};
}

/// `projection skip|rebuild` through a running node's admin API.
int projection_via_node(const args& a, const std::string& action) {
  auto url = a.text("--node");
  auto token = a.text("--token", ::getenv("KEEL_TOKEN") != nullptr ? ::getenv("KEEL_TOKEN") : "");
  if (token.empty())
    usage_error("--node needs an admin token: --token T or KEEL_TOKEN (keel-node mint-token --role admin)");
  if (url.rfind("http://", 0) != 0)
    usage_error("--node must be an http:// URL, got '" + url + "'");
  httplib::Client cli{url};
  cli.set_connection_timeout(5, 0);
  cli.set_read_timeout(3600, 0); // a rebuild answers once swapped in
  httplib::Headers h{{"Authorization", "Bearer " + token}};
  bool all = a.has("--all");
  const std::string name = all ? "all" : a.positional[1];
  nlohmann::json request{{"position", a.number("--position", 0)}, {"note", a.text("--note")}};
  auto res = action == "skip"
               ? cli.Post(("/admin/projections/" + name + "/skip").c_str(), h, request.dump(),
                          "application/json")
               : cli.Post(("/admin/projections/" + name + "/rebuild").c_str(), h, std::string{},
                          "application/json");
  if (!res)
    fail("no answer from " + url + ": " + httplib::to_string(res.error()));
  auto body = nlohmann::json::parse(res->body, nullptr, false);
  if (res->status != 200) {
    std::string why = res->body;
    if (body.is_object() && body.contains("error"))
      why = body["error"].value("code", "") + ": " + body["error"].value("message", "");
    fail(url + " answered " + std::to_string(res->status) + " " + why);
  }
  if (a.json) {
    print_json_line(body);
    return exit_ok;
  }
  if (action == "skip")
    std::printf("%s: event at position %llu skipped by the node; the projection resumed\n",
                name.c_str(), static_cast<unsigned long long>(a.number("--position", 0)));
  else
    std::printf("%s: rebuilt by the node in %.1f s\n", name.c_str(), body.value("seconds", 0.0));
  for (const auto& p : body.value("projections", nlohmann::json::array()))
    std::printf("  %s: generation %u, %s at position %llu\n", p.value("name", "").c_str(),
                p.value("generation", 0u), p.value("state", "").c_str(),
                static_cast<unsigned long long>(p.value("position", std::uint64_t{0})));
  return exit_ok;
}

} // namespace

int cmd_checkpoints(const args& a) {
  if (!a.positional.empty())
    usage_error("checkpoints takes no arguments");
  auto store = open_secondary(a);
  auto list = store->list_checkpoints();
  if (!list)
    fail(describe(list.error()));
  auto last = store->last_position();
  std::int64_t last_us = 0;
  if (last > 0) {
    auto rec = store->read_event(last);
    if (!rec)
      fail(describe(rec.error()));
    last_us = rec->timestamp_us;
  }
  table t{{"CHECKPOINT", "KIND", "POSITION", "LAG EVENTS", "BEHIND", "UPDATED", "STATE"}};
  for (const auto& [name, cp] : *list) {
    auto k = classify(name);
    std::string state = "-";
    if (k.kind == "projection") {
      auto active = projections::active_generation(*store, k.owner);
      auto failure = projections::recorded_failure(*store, k.owner);
      if (active && *active != k.generation)
        state = *active < k.generation ? "rebuilding (shadow generation)" : "retired generation";
      else if (failure && *failure)
        state = "stopped at " + std::to_string((*failure)->position) + " ("
                + (*failure)->event_type + "): " + (*failure)->reason;
      else
        state = cp.position >= last ? "caught up" : "behind";
    } else {
      state = cp.position >= last ? "caught up" : "behind";
    }
    auto lag = last > cp.position ? last - cp.position : 0;
    // How far behind in event time: from the first event not yet applied
    // to the newest event of the log.
    std::int64_t behind_us = 0;
    if (lag > 0) {
      auto next = store->read_event(cp.position + 1);
      if (next)
        behind_us = std::max<std::int64_t>(0, last_us - next->timestamp_us);
    }
    if (a.json)
      print_json_line({{"checkpoint", name},
                       {"kind", k.kind},
                       {"owner", k.owner},
                       {"generation", k.generation},
                       {"position", cp.position},
                       {"last_position", last},
                       {"lag_events", lag},
                       {"behind_ms", static_cast<double>(behind_us) / 1000},
                       {"updated", events::format_timestamp(cp.updated_us)},
                       {"state", state}});
    else
      t.add({name, k.kind, std::to_string(cp.position), std::to_string(lag),
             lag == 0 ? "-" : behind_us < 1000 ? "<1 ms" : human_duration(behind_us),
             events::format_timestamp(cp.updated_us),
             state});
  }
  if (!a.json) {
    t.flush();
    std::printf("%zu checkpoint(s); the log ends at position %llu\n", list->size(),
                static_cast<unsigned long long>(last));
  }
  return exit_ok;
}

int cmd_projection(const args& a) {
  if (a.positional.empty())
    usage_error("projection needs skip, rebuild or skips");
  const auto& action = a.positional[0];
  if (action == "skips") {
    if (a.positional.size() != 2)
      usage_error("projection skips needs a projection name");
    auto store = open_secondary(a);
    auto list = projections::list_skips(*store, a.positional[1]);
    if (!list)
      fail(describe(list.error()));
    table t{{"POSITION", "TYPE", "STREAM", "REASON", "BY", "NOTE", "AT"}};
    for (const auto& s : *list) {
      if (a.json)
        print_json_line({{"position", s.position}, {"type", s.event_type}, {"stream", s.stream},
                         {"reason", s.reason}, {"by", s.skipped_by}, {"note", s.note},
                         {"at", events::format_timestamp(s.at_us)}});
      else
        t.add({std::to_string(s.position), s.event_type, s.stream, s.reason, s.skipped_by, s.note,
               events::format_timestamp(s.at_us)});
    }
    if (!a.json) {
      t.flush();
      std::printf("%zu skip(s) recorded for %s\n", list->size(), a.positional[1].c_str());
    }
    return exit_ok;
  }
  if (action == "skip") {
    if (a.positional.size() != 2)
      usage_error("projection skip needs a projection name");
    if (!a.has("--position"))
      usage_error("projection skip needs --position P (the event it stopped at)");
    if (a.has("--node"))
      return projection_via_node(a, action);
    auto position = a.number("--position", 0);
    auto by = a.text("--by", ::getenv("USER") != nullptr ? ::getenv("USER") : "keel-inspect");
    auto store = open_writer(a);
    if (auto err = projections::skip_event(*store, a.positional[1], position, by, a.text("--note")))
      fail(describe(err));
    if (a.json)
      print_json_line({{"projection", a.positional[1]}, {"skipped", position}, {"by", by}});
    else
      std::printf("%s: event at position %llu skipped (by %s); the projection resumes after it "
                  "when the node starts\n",
                  a.positional[1].c_str(), static_cast<unsigned long long>(position), by.c_str());
    return exit_ok;
  }
  if (action == "rebuild") {
    bool all = a.has("--all");
    if (all ? a.positional.size() != 1 : a.positional.size() != 2)
      usage_error("projection rebuild needs a projection name or --all");
    if (a.has("--node"))
      return projection_via_node(a, action);
    auto store = open_writer(a);
    projections::projection_runner runner{*store};
    runner.add_standard();
    if (auto err = runner.start())
      fail(describe(err));
    auto t0 = std::chrono::steady_clock::now();
    caf::error err;
    std::thread work{[&] { err = all ? runner.rebuild_all() : runner.rebuild(a.positional[1]); }};
    work.join();
    auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    auto status = runner.status();
    runner.stop();
    if (err)
      fail(describe(err));
    for (const auto& s : status) {
      if (!all && s.name != a.positional[1])
        continue;
      if (a.json)
        print_json_line({{"projection", s.name}, {"generation", s.generation},
                         {"position", s.position}, {"seconds", secs}});
      else
        std::printf("%s: rebuilt as generation %u up to position %llu in %.1f s\n", s.name.c_str(),
                    s.generation, static_cast<unsigned long long>(s.position), secs);
    }
    return exit_ok;
  }
  usage_error("unknown projection action '" + action + "' (skip, rebuild, skips)");
}

} // namespace keel::inspect
