// stats, verify, audit: whole-log scans.

#include <algorithm>
#include <cstdio>
#include <iostream>

#include "commands.hpp"
#include "keel/events/error.hpp"
#include "keel/events/json.hpp"
#include "keel/projections/audit.hpp"
#include "keel/projections/flat_map.hpp"
#include "keel/storage/verify.hpp"

namespace keel::inspect {

namespace {

/// Events per stream (exact stream ids, in the scans' arena map), and the
/// `n` streams with the most events, most first.
struct stream_count {
  std::uint64_t events = 0;
};

std::vector<std::pair<std::string, std::uint64_t>>
hottest(const projections::flat_map<stream_count>& streams, std::size_t n) {
  std::vector<std::pair<std::string_view, std::uint64_t>> all;
  all.reserve(streams.size());
  streams.for_each([&](std::string_view id, const stream_count& c) { all.emplace_back(id, c.events); });
  n = std::min(n, all.size());
  std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n), all.end(),
                    [](const auto& x, const auto& y) {
                      return x.second != y.second ? x.second > y.second : x.first < y.first;
                    });
  std::vector<std::pair<std::string, std::uint64_t>> result;
  for (std::size_t i = 0; i < n; ++i)
    result.emplace_back(std::string{all[i].first}, all[i].second);
  return result;
}

struct type_count {
  std::string type;
  std::uint64_t events = 0;
  std::uint64_t payload_bytes = 0;
};

/// Picks a round bucket width giving at most `max_buckets` over `span_us`.
std::int64_t bucket_width(std::int64_t span_us, std::int64_t max_buckets) {
  static const std::int64_t widths[] = {
    1000000, 5000000, 10000000, 30000000, 60000000, 300000000, 600000000, 1800000000,
    3600000000, 3 * 3600000000LL, 6 * 3600000000LL, 12 * 3600000000LL, 86400000000LL,
    7 * 86400000000LL, 30 * 86400000000LL};
  for (auto w : widths)
    if (span_us / w < max_buckets)
      return w;
  return 365 * 86400000000LL;
}

std::string with_commas(std::uint64_t n) {
  auto s = std::to_string(n);
  for (auto i = static_cast<std::ptrdiff_t>(s.size()) - 3; i > 0; i -= 3)
    s.insert(static_cast<std::size_t>(i), ",");
  return s;
}

std::string fixed(double x, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, x);
  return buf;
}

} // namespace

int cmd_stats(const args& a) {
  if (!a.positional.empty())
    usage_error("stats takes no arguments");
  auto since = a.time("--since");
  auto until = a.time("--until");
  auto top_n = a.number("--top", 10);
  auto forced_bucket = a.duration("--bucket", 0);
  auto store = open_secondary(a);
  auto last = store->last_position();

  // The time range: the first and last events (or the filter's bounds).
  std::int64_t t0 = 0;
  std::int64_t t1 = 0;
  if (last > 0) {
    auto first = store->read_event(1);
    auto end = store->read_event(last);
    if (!first || !end)
      fail(describe(first ? end.error() : first.error()));
    t0 = since ? std::max(*since, first->timestamp_us) : first->timestamp_us;
    t1 = until ? std::min(*until, end->timestamp_us) : end->timestamp_us;
    if (t1 < t0)
      t1 = t0;
  }
  auto width = forced_bucket > 0 ? forced_bucket : bucket_width(t1 - t0, 30);
  auto bucket0 = t0 - (t0 % width);
  std::vector<std::uint64_t> buckets(static_cast<std::size_t>((t1 - bucket0) / width + 1), 0);
  if (buckets.size() > 100000)
    usage_error("--bucket gives " + std::to_string(buckets.size()) + " buckets; choose a wider one");

  std::vector<type_count> types;
  projections::flat_map<stream_count> streams;
  std::uint64_t scanned = 0;
  std::uint64_t matched = 0;
  std::uint64_t first_pos = 0;
  std::uint64_t last_pos = 0;
  std::int64_t min_us = 0;
  std::int64_t max_us = 0;
  progress prog{"stats", last};
  auto reader = store->read_all(1);
  while (reader.next()) {
    const auto& v = reader.current();
    if ((++scanned & 0xffff) == 0)
      prog.update(scanned);
    if ((since && v.timestamp_us < *since) || (until && v.timestamp_us > *until))
      continue;
    if (matched++ == 0) {
      first_pos = v.position;
      min_us = max_us = v.timestamp_us;
    }
    last_pos = v.position;
    min_us = std::min(min_us, v.timestamp_us);
    max_us = std::max(max_us, v.timestamp_us);
    auto t = std::find_if(types.begin(), types.end(),
                          [&](const type_count& x) { return x.type == v.type; });
    if (t == types.end()) {
      types.push_back({std::string{v.type}, 0, 0});
      t = types.end() - 1;
    }
    ++t->events;
    t->payload_bytes += v.payload.size();
    ++streams[v.stream].events;
    auto b = (std::clamp(v.timestamp_us, t0, t1) - bucket0) / width;
    ++buckets[static_cast<std::size_t>(b)];
  }
  prog.done();
  if (auto& err = reader.error())
    return read_failed(err);
  std::sort(types.begin(), types.end(), [](const type_count& x, const type_count& y) {
    return x.events != y.events ? x.events > y.events : x.type < y.type;
  });
  auto hot = hottest(streams, top_n);
  double span_s = static_cast<double>(max_us - min_us) / 1e6;
  double mean = span_s > 0 ? static_cast<double>(matched) / span_s : 0;

  if (a.json) {
    print_json_line({{"kind", "summary"},
                     {"events", matched},
                     {"streams", streams.size()},
                     {"first_position", first_pos},
                     {"last_position", last_pos},
                     {"first_time", events::format_timestamp(min_us)},
                     {"last_time", events::format_timestamp(max_us)},
                     {"events_per_s", mean},
                     {"bucket_s", static_cast<double>(width) / 1e6}});
    for (const auto& t : types)
      print_json_line({{"kind", "type"},
                       {"type", t.type},
                       {"events", t.events},
                       {"share", matched ? static_cast<double>(t.events) / static_cast<double>(matched) : 0.0},
                       {"payload_bytes", t.payload_bytes}});
    for (const auto& [stream, events] : hot)
      print_json_line({{"kind", "stream"}, {"stream", stream}, {"events", events}});
    for (std::size_t i = 0; i < buckets.size(); ++i)
      print_json_line({{"kind", "rate"},
                       {"from", events::format_timestamp(bucket0 + static_cast<std::int64_t>(i) * width)},
                       {"events", buckets[i]},
                       {"events_per_s", static_cast<double>(buckets[i]) * 1e6 / static_cast<double>(width)}});
    return exit_ok;
  }
  std::printf("%s events (positions %llu..%llu) in %s streams, %s .. %s (%s), mean %s events/s\n\n",
              with_commas(matched).c_str(), static_cast<unsigned long long>(first_pos),
              static_cast<unsigned long long>(last_pos), with_commas(streams.size()).c_str(),
              events::format_timestamp(min_us).c_str(), events::format_timestamp(max_us).c_str(),
              human_duration(max_us - min_us).c_str(), fixed(mean, 1).c_str());
  {
    table t{{"TYPE", "EVENTS", "SHARE", "AVG PAYLOAD"}};
    for (const auto& x : types)
      t.add({x.type, with_commas(x.events),
             fixed(100.0 * static_cast<double>(x.events) / static_cast<double>(matched), 1) + "%",
             std::to_string(x.payload_bytes / std::max<std::uint64_t>(1, x.events)) + " B"});
  }
  std::printf("\n");
  {
    table t{{"HOTTEST STREAM", "EVENTS"}};
    for (const auto& [stream, events] : hot)
      t.add({stream, with_commas(events)});
  }
  std::printf("\n");
  {
    auto peak = buckets.empty() ? 0 : *std::max_element(buckets.begin(), buckets.end());
    table t{{"FROM (" + human_duration(width) + " buckets)", "EVENTS", "EVENTS/S", ""}};
    for (std::size_t i = 0; i < buckets.size(); ++i) {
      auto bar = peak == 0 ? 0 : static_cast<std::size_t>(40 * buckets[i] / peak);
      t.add({events::format_timestamp(bucket0 + static_cast<std::int64_t>(i) * width),
             with_commas(buckets[i]),
             fixed(static_cast<double>(buckets[i]) * 1e6 / static_cast<double>(width), 1),
             std::string(bar, '#')});
    }
  }
  return exit_ok;
}

int cmd_verify(const args& a) {
  if (!a.positional.empty())
    usage_error("verify takes no arguments");
  auto store = open_secondary(a);
  progress prog{"verify", store->last_position()};
  storage::verify_options vo;
  vo.progress = [&](std::uint64_t n) { prog.update(n); };
  auto rep = storage::verify(*store, vo);
  prog.done();
  if (!rep)
    fail(describe(rep.error()));
  if (a.json) {
    for (const auto& f : rep->findings)
      print_json_line({{"kind", f.kind},
                       {"position", f.position},
                       {"stream", f.stream},
                       {"version", f.version},
                       {"detail", f.detail}});
    print_json_line({{"events", rep->events},
                     {"streams", rep->streams},
                     {"index_entries", rep->index_entries},
                     {"last_position", rep->last_position},
                     {"findings", rep->findings.size()},
                     {"truncated", rep->truncated},
                     {"healthy", rep->findings.empty()}});
  } else {
    if (!rep->findings.empty()) {
      table t{{"KIND", "POSITION", "STREAM@VERSION", "DETAIL"}};
      for (const auto& f : rep->findings)
        t.add({f.kind, f.position ? std::to_string(f.position) : "-",
               f.stream.empty() ? "-" : f.stream + "@" + std::to_string(f.version), f.detail});
      t.flush();
      if (rep->truncated)
        std::printf("(more findings not listed)\n");
    }
    std::printf("%llu events in %llu streams, last position %llu: %s\n",
                static_cast<unsigned long long>(rep->events),
                static_cast<unsigned long long>(rep->streams),
                static_cast<unsigned long long>(rep->last_position),
                rep->findings.empty()
                  ? "healthy"
                  : (std::to_string(rep->findings.size()) + " finding(s)").c_str());
  }
  return rep->findings.empty() ? exit_ok : exit_findings;
}

int cmd_audit(const args& a) {
  if (!a.positional.empty())
    usage_error("audit takes no arguments");
  projections::audit_options o;
  o.require_terminal = a.has("--require-terminal");
  o.stuck_after_us = a.duration("--stuck-after", o.stuck_after_us);
  o.max_violations = a.number("--max", 1000);
  auto store = open_secondary(a);
  progress prog{"audit", store->last_position()};
  o.progress = [&](std::uint64_t n) { prog.update(n); };
  auto rep = projections::audit(*store, o);
  prog.done();
  if (!rep)
    fail(describe(rep.error()));
  std::string outcomes;
  for (const auto& [k, n] : rep->outcomes)
    outcomes += (outcomes.empty() ? "" : ", ") + k + " " + std::to_string(n);
  std::string kinds;
  for (const auto& [k, n] : rep->counts)
    kinds += (kinds.empty() ? "" : ", ") + k + " " + std::to_string(n);
  if (a.json) {
    for (const auto& v : rep->violations)
      print_json_line({{"kind", v.kind},
                       {"position", v.position},
                       {"stream", v.stream},
                       {"version", v.version},
                       {"subject", v.subject},
                       {"detail", v.detail}});
    print_json_line({{"events", rep->events},
                     {"streams", rep->streams},
                     {"last_position", rep->last_position},
                     {"orders", rep->orders},
                     {"outcomes", rep->outcomes},
                     {"skus", rep->skus},
                     {"captures", rep->captures},
                     {"violations", rep->violation_count()},
                     {"by_kind", rep->counts},
                     {"truncated", rep->truncated},
                     {"ok", rep->ok()}});
  } else {
    if (!rep->violations.empty()) {
      table t{{"VIOLATION", "POSITION", "STREAM@VERSION", "SUBJECT", "DETAIL"}};
      for (const auto& v : rep->violations)
        t.add({v.kind, v.position ? std::to_string(v.position) : "-",
               v.stream.empty() ? "-" : v.stream + "@" + std::to_string(v.version),
               v.subject.empty() ? "-" : v.subject, v.detail});
      t.flush();
      if (rep->truncated)
        std::printf("(%llu more not listed; --max N lists more)\n",
                    static_cast<unsigned long long>(rep->violation_count()
                                                    - rep->violations.size()));
      std::printf("\n");
    }
    std::printf("%s events in %s streams, %s orders (%s), %s SKUs, %s captures: %s\n",
                with_commas(rep->events).c_str(), with_commas(rep->streams).c_str(),
                with_commas(rep->orders).c_str(), outcomes.empty() ? "none" : outcomes.c_str(),
                with_commas(rep->skus).c_str(), with_commas(rep->captures).c_str(),
                rep->ok() ? "every invariant holds"
                          : (std::to_string(rep->violation_count()) + " violation(s): " + kinds)
                              .c_str());
  }
  return rep->ok() ? exit_ok : exit_findings;
}

} // namespace keel::inspect
