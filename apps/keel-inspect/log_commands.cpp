// streams, read, get, tail: reading the log.

#include <csignal>
#include <cstdio>
#include <iostream>
#include <thread>

#include "commands.hpp"
#include "keel/events/correlation.hpp"
#include "keel/events/error.hpp"
#include "keel/events/event.hpp"
#include "keel/events/json.hpp"

namespace keel::inspect {

namespace {

volatile std::sig_atomic_t stop_requested = 0;

extern "C" void on_stop_signal(int) {
  stop_requested = 1;
}

/// Prints events as table rows or NDJSON.
class event_printer {
public:
  explicit event_printer(bool json) {
    if (!json)
      table_.emplace(event_headers());
  }

  void print(const events::record_view& v) {
    if (table_)
      table_->add(event_row(v));
    else
      print_json_line(event_json(v));
  }

  void flush() {
    if (table_)
      table_->flush();
    else
      std::fflush(stdout);
  }

private:
  std::optional<table> table_;
};

/// What `tail` prints: every condition must hold.
struct event_filter {
  std::vector<std::string> types;
  std::string stream_prefix;
  std::optional<events::event_id> correlation;
  std::optional<std::int64_t> since_us;
  std::optional<std::int64_t> until_us;

  bool matches(const events::record_view& v) const {
    if (!types.empty()
        && std::find(types.begin(), types.end(), v.type) == types.end())
      return false;
    if (!stream_prefix.empty() && v.stream.substr(0, stream_prefix.size()) != stream_prefix)
      return false;
    if (correlation && v.correlation_id != *correlation)
      return false;
    if (since_us && v.timestamp_us < *since_us)
      return false;
    if (until_us && v.timestamp_us > *until_us)
      return false;
    return true;
  }
};

event_filter filter_of(const args& a) {
  event_filter f;
  auto types = a.text("--type");
  std::size_t start = 0;
  while (start < types.size()) {
    auto comma = types.find(',', start);
    auto name = types.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!name.empty()) {
      if (events::find_event_type(name) == nullptr) {
        std::string known;
        for (const auto& t : events::event_types())
          known += (known.empty() ? "" : ", ") + std::string{t.name};
        usage_error("--type: unknown event type '" + name + "' (known: " + known + ")");
      }
      f.types.push_back(name);
    }
    if (comma == std::string::npos)
      break;
    start = comma + 1;
  }
  f.stream_prefix = a.text("--stream-prefix");
  if (a.has("--correlation")) {
    auto c = a.text("--correlation");
    if (c.empty())
      usage_error("--correlation needs an id or an order id");
    // An event id as printed by the tools, or an order id (every event of
    // an order's saga carries the id derived from it).
    f.correlation = events::event_id::parse(c);
    if (!f.correlation)
      f.correlation = events::correlation_of(c);
  }
  f.since_us = a.time("--since");
  f.until_us = a.time("--until");
  if (f.since_us && f.until_us && *f.since_us > *f.until_us)
    usage_error("--since is after --until");
  return f;
}

} // namespace

int cmd_streams(const args& a) {
  if (!a.positional.empty())
    usage_error("streams takes no arguments (use --prefix)");
  auto store = open_secondary(a);
  auto limit = a.number("--limit", 1000);
  if (limit == 0)
    usage_error("--limit must be at least 1");
  auto list = store->list_streams(a.text("--prefix"), limit, a.text("--after"));
  if (!list)
    fail(describe(list.error()));
  table t{{"STREAM", "EVENTS", "LAST WRITE", "LAST POSITION"}};
  for (const auto& s : *list) {
    // The last event tells when the stream was last written.
    auto r = store->read_stream(s.stream, s.last_version, 1);
    std::int64_t last_us = 0;
    std::uint64_t last_pos = 0;
    if (r.next()) {
      last_us = r.current().timestamp_us;
      last_pos = r.current().position;
    } else if (r.error()) {
      fail(describe(r.error()));
    }
    if (a.json)
      print_json_line({{"stream", s.stream},
                       {"events", s.last_version},
                       {"last_write", events::format_timestamp(last_us)},
                       {"last_position", last_pos}});
    else
      t.add({s.stream, std::to_string(s.last_version), events::format_timestamp(last_us),
             std::to_string(last_pos)});
  }
  if (!a.json) {
    t.flush();
    std::printf("%zu stream(s)", list->size());
    if (list->size() == limit)
      std::printf("; more may follow: --after %s", list->back().stream.c_str());
    std::printf("\n");
  }
  return exit_ok;
}

int cmd_read(const args& a) {
  if (a.positional.size() != 1)
    usage_error("read needs exactly one stream id");
  const auto& stream = a.positional[0];
  if (!events::valid_stream_id(stream))
    usage_error("'" + stream + "' is not a valid stream id");
  auto from = a.number("--from", 1);
  if (from == 0)
    usage_error("--from: versions start at 1");
  auto store = open_secondary(a);
  auto version = store->stream_version(stream);
  if (!version)
    fail(describe(version.error()));
  if (*version == 0)
    fail("no such stream: " + stream);
  auto reader = store->read_stream(stream, from, a.number("--limit", ~std::uint64_t{0}));
  event_printer out{a.json};
  while (reader.next())
    out.print(reader.current());
  out.flush();
  if (auto& err = reader.error())
    return read_failed(err);
  return exit_ok;
}

int cmd_get(const args& a) {
  if (a.positional.size() != 1)
    usage_error("get needs a global position or an event id");
  const auto& what = a.positional[0];
  auto store = open_secondary(a);
  std::uint64_t position = 0;
  if (!what.empty() && what.size() <= 19 && what.find_first_not_of("0123456789") == std::string::npos) {
    position = std::stoull(what);
  } else if (auto id = events::event_id::parse(what)) {
    auto found = store->find_event(*id);
    if (!found)
      fail(code_of(found.error()) == errc::not_found ? "no event with id " + what
                                                     : describe(found.error()));
    position = *found;
  } else {
    usage_error("'" + what + "' is neither a global position nor an event id");
  }
  auto rec = store->read_event(position);
  if (!rec) {
    if (code_of(rec.error()) == errc::not_found)
      fail("no event at position " + std::to_string(position) + " (the log ends at "
           + std::to_string(store->last_position()) + ")");
    return read_failed(rec.error());
  }
  auto j = events::to_json_value(*rec);
  // The event that caused it, resolved in the same log.
  if (rec->causation_id.valid()) {
    auto at = store->find_event(rec->causation_id);
    auto cause = at ? store->read_event(*at) : caf::expected<events::record>{at.error()};
    if (cause)
      j["caused_by"] = {{"position", cause->position}, {"stream", cause->stream},
                        {"version", cause->version}, {"type", cause->type}};
    else
      j["caused_by"] = {{"error", describe(cause.error())}};
  }
  if (a.json) {
    print_json_line(j);
    return exit_ok;
  }
  table t{{"FIELD", "VALUE"}};
  for (const char* k : {"position", "stream", "version", "type", "schema_version", "event_id",
                        "correlation_id", "causation_id", "time", "timestamp_us"})
    t.add({k, j[k].is_string() ? j[k].get<std::string>() : j[k].dump()});
  if (j.contains("caused_by")) {
    auto& c = j["caused_by"];
    t.add({"caused_by", c.contains("error")
                          ? c["error"].get<std::string>()
                          : c["stream"].get<std::string>() + "@" + c["version"].dump() + " "
                              + c["type"].get<std::string>() + " (position "
                              + c["position"].dump() + ")"});
  }
  t.flush();
  std::printf("data:\n%s\n", j.contains("data") ? j["data"].dump(2).c_str()
                                                : j["error"].get<std::string>().c_str());
  return exit_ok;
}

int cmd_tail(const args& a) {
  if (!a.positional.empty())
    usage_error("tail takes no arguments");
  auto filter = filter_of(a);
  bool follow = a.has("--follow");
  auto limit = a.number("--limit", ~std::uint64_t{0});
  auto poll = std::chrono::microseconds{a.duration("--poll", 20000)};
  auto store = open_secondary(a);
  auto last = store->last_position();
  std::uint64_t next = 1;
  auto from = a.text("--from", "1");
  if (from == "end") {
    next = last + 1;
  } else if (!from.empty() && from[0] == '-') {
    auto n = from.substr(1);
    if (n.empty() || n.size() > 19 || n.find_first_not_of("0123456789") != std::string::npos)
      usage_error("--from must be a position, -N (the last N events) or 'end', got '" + from + "'");
    auto back = std::stoull(n);
    next = back >= last ? 1 : last - back + 1;
  } else {
    next = a.number("--from", 1);
    if (next == 0)
      usage_error("--from: positions start at 1");
  }
  if (follow) {
    std::signal(SIGINT, on_stop_signal);
    std::signal(SIGTERM, on_stop_signal);
  }
  event_printer out{a.json};
  std::uint64_t printed = 0;
  progress prog{"scanning", follow ? 0 : (last >= next ? last - next + 1 : 0)};
  std::uint64_t scanned = 0;
  while (printed < limit && stop_requested == 0) {
    auto reader = store->read_all(next);
    while (printed < limit && reader.next()) {
      const auto& v = reader.current();
      next = v.position + 1;
      if ((++scanned & 0xffff) == 0)
        prog.update(scanned);
      if (!filter.matches(v))
        continue;
      out.print(v);
      ++printed;
    }
    if (auto& err = reader.error()) {
      prog.done();
      out.flush();
      return read_failed(err);
    }
    out.flush();
    if (!follow)
      break;
    prog.done();
    // Wait for the writer: catch up with its WAL every poll interval.
    while (stop_requested == 0) {
      std::this_thread::sleep_for(poll);
      if (auto err = store->refresh()) {
        std::cerr << "keel-inspect: " << describe(err) << '\n';
        return exit_error;
      }
      if (store->last_position() >= next)
        break;
    }
  }
  prog.done();
  out.flush();
  return exit_ok;
}

} // namespace keel::inspect
