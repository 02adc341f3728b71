#include "cli.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>

#include "keel/events/error.hpp"
#include "keel/events/json.hpp"

namespace keel::inspect {

namespace {

constexpr const char* usage_text = R"(usage: keel-inspect <command> --data DIR [options]

Looks into a Keel event store; read-only beside a running keel-node (a RocksDB
secondary instance), except `projection skip|rebuild`, which need the node stopped.

commands:
  streams [--prefix P] [--after S] [--limit N]
        streams with their event count and last write, in id order (page with --after)
  read <stream> [--from VERSION] [--limit N]
        the events of one stream
  get <position | event-id>
        one event, every field
  tail [--from POSITION | --from -N | --from end] [--limit N] [--follow] [--type T[,T...]]
       [--stream-prefix P] [--correlation ID | ORDER-ID] [--since TIME] [--until TIME]
        the global log (default: from position 1); --follow keeps printing new events
  stats [--since TIME] [--until TIME] [--top N] [--bucket DURATION]
        events per type, hottest streams, events over time
  verify
        checksums, gap-free positions and versions, both indexes against the log
  audit [--require-terminal] [--stuck-after DURATION] [--max N]
        the invariants of the domain: no oversell, no double charge, voided
        authorizations of cancelled orders, every saga ends, no gaps
  checkpoints
        projection and outbox checkpoints with their lag behind the log
  projection skip <name> --position P [--by WHO] [--note TEXT] [--node URL --token T]
  projection rebuild <name> | --all [--node URL --token T]
  projection skips <name>
        skip the event a stopped projection stopped at, rebuild read models, list
        recorded skips; on the store of a stopped node (--data), or through a running
        node's admin API (--node http://HOST:PORT, an admin token from --token or
        KEEL_TOKEN; the node records the token's subject as who skipped)
  cluster --etcd URL [--cluster NAME]
        a cluster as etcd records it (members, slot map, holders and their fencing
        tokens) and as each member sees it; exit 1 while a slot has no live holder

options:
  --data DIR   the store's data directory (not needed with --node or cluster)
  --json       one JSON object per line (NDJSON) instead of a table

TIME is RFC 3339 UTC (2026-11-22T03:00:00Z) or a duration back from now (90s, 15m, 2h, 1d).
exit codes: 0 ok, 1 findings (verify, audit), 2 usage or I/O error
)";

bool is_tty(int fd) {
  return ::isatty(fd) == 1;
}

} // namespace

[[noreturn]] void usage_error(const std::string& msg) {
  std::cerr << "keel-inspect: " << msg << "\n\n" << usage_text;
  throw exit_now{exit_error};
}

[[noreturn]] void fail(const std::string& msg) {
  std::cout.flush();
  std::cerr << "keel-inspect: " << msg << '\n';
  throw exit_now{exit_error};
}

int read_failed(const caf::error& err) {
  std::cout.flush();
  std::cerr << "keel-inspect: " << describe(err) << '\n';
  return code_of(err) == errc::corrupt_record ? exit_findings : exit_error;
}

std::string args::text(const std::string& name, const std::string& fallback) const {
  auto i = opts.find(name);
  return i == opts.end() ? fallback : i->second;
}

std::uint64_t args::number(const std::string& name, std::uint64_t fallback) const {
  auto i = opts.find(name);
  if (i == opts.end())
    return fallback;
  const auto& t = i->second;
  if (t.empty() || t.find_first_not_of("0123456789") != std::string::npos || t.size() > 19)
    usage_error(name + " must be a non-negative integer, got '" + t + "'");
  return std::stoull(t);
}

std::optional<std::int64_t> parse_duration_us(const std::string& text) {
  std::size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits])))
    ++digits;
  if (digits == 0 || digits > 12)
    return std::nullopt;
  auto n = std::stoll(text.substr(0, digits));
  auto unit = text.substr(digits);
  std::int64_t scale = 0;
  if (unit == "ms")
    scale = 1000;
  else if (unit == "s")
    scale = 1000000;
  else if (unit == "m" || unit == "min")
    scale = 60LL * 1000000;
  else if (unit == "h")
    scale = 3600LL * 1000000;
  else if (unit == "d")
    scale = 86400LL * 1000000;
  else
    return std::nullopt;
  return n * scale;
}

std::optional<std::int64_t> parse_time_us(const std::string& text) {
  std::tm tm{};
  int consumed = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2d%*1[T ]%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon,
                  &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed)
        != 6
      || consumed < 19)
    return std::nullopt;
  if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23
      || tm.tm_min > 59 || tm.tm_sec > 60)
    return std::nullopt;
  std::string rest = text.substr(static_cast<std::size_t>(consumed));
  std::int64_t frac_us = 0;
  if (!rest.empty() && rest[0] == '.') {
    std::size_t i = 1;
    std::int64_t scale = 100000;
    while (i < rest.size() && std::isdigit(static_cast<unsigned char>(rest[i]))) {
      frac_us += (rest[i] - '0') * scale;
      scale /= 10;
      ++i;
    }
    if (i == 1)
      return std::nullopt;
    rest = rest.substr(i);
  }
  if (!(rest.empty() || rest == "Z" || rest == "+00:00"))
    return std::nullopt;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  auto secs = ::timegm(&tm);
  return static_cast<std::int64_t>(secs) * 1000000 + frac_us;
}

std::optional<std::int64_t> args::time(const std::string& name) const {
  auto i = opts.find(name);
  if (i == opts.end())
    return std::nullopt;
  if (auto t = parse_time_us(i->second))
    return t;
  if (auto d = parse_duration_us(i->second))
    return storage::now_us() - *d;
  usage_error(name + " must be an RFC 3339 UTC time (2026-11-22T03:00:00Z) or a duration "
              "back from now (90s, 15m, 2h, 1d), got '" + i->second + "'");
}

std::int64_t args::duration(const std::string& name, std::int64_t fallback_us) const {
  auto i = opts.find(name);
  if (i == opts.end())
    return fallback_us;
  if (auto d = parse_duration_us(i->second))
    return *d;
  usage_error(name + " must be a duration (500ms, 90s, 15m, 2h, 1d), got '" + i->second + "'");
}

std::string human_duration(std::int64_t us) {
  char buf[64];
  double s = static_cast<double>(us) / 1e6;
  if (us < 1000)
    std::snprintf(buf, sizeof buf, "%lld us", static_cast<long long>(us));
  else if (s < 1)
    std::snprintf(buf, sizeof buf, "%.1f ms", s * 1e3);
  else if (s < 120)
    std::snprintf(buf, sizeof buf, "%.1f s", s);
  else if (s < 7200)
    std::snprintf(buf, sizeof buf, "%.1f min", s / 60);
  else if (s < 172800)
    std::snprintf(buf, sizeof buf, "%.1f h", s / 3600);
  else
    std::snprintf(buf, sizeof buf, "%.1f d", s / 86400);
  return buf;
}

args parse_args(int argc, char** argv, const option_spec& spec) {
  args a;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::cout << usage_text;
      std::exit(exit_ok);
    }
    // "--from -5" is a value, not an option: only "--name" words are options.
    if (arg.rfind("--", 0) == 0 && arg.size() > 2) {
      auto eq = arg.find('=');
      std::string name = arg.substr(0, eq);
      if (name == "--json") {
        a.json = true;
        continue;
      }
      auto k = spec.find(name);
      if (k == spec.end())
        usage_error("unknown option " + name
                    + (a.command.empty() ? std::string{} : " for " + a.command));
      if (!k->second) {
        if (eq != std::string::npos)
          usage_error(name + " takes no value");
        a.flags.insert(name);
        continue;
      }
      if (eq != std::string::npos)
        a.opts[name] = arg.substr(eq + 1);
      else if (i + 1 < argc)
        a.opts[name] = argv[++i];
      else
        usage_error(name + " needs a value");
    } else if (a.command.empty()) {
      a.command = arg;
    } else {
      a.positional.push_back(arg);
    }
  }
  return a;
}

namespace {

std::string data_dir(const args& a) {
  auto dir = a.text("--data");
  if (dir.empty())
    usage_error("--data DIR is required");
  return dir;
}

} // namespace

std::unique_ptr<storage::event_store> open_secondary(const args& a) {
  auto store = storage::event_store::open_beside(data_dir(a));
  if (!store)
    fail(describe(store.error()));
  return std::move(*store);
}

std::unique_ptr<storage::event_store> open_writer(const args& a) {
  auto dir = data_dir(a);
  storage::options opts;
  opts.path = dir;
  opts.create_if_missing = false;
  auto store = storage::event_store::open(opts);
  if (!store) {
    auto why = describe(store.error());
    if (why.find("lock") != std::string::npos)
      fail(why + "\n  (a keel-node is running on " + dir
           + "; this command changes the store: stop the node first)");
    fail(why);
  }
  return std::move(*store);
}

table::table(std::vector<std::string> headers) : headers_(std::move(headers)) {
  for (const auto& h : headers_)
    widths_.push_back(h.size());
}

table::~table() {
  // Rows still buffered are printed; a table never used prints nothing (in
  // --json mode commands build one but only call `flush` for tables).
  if (!rows_.empty())
    flush();
}

void table::add(std::vector<std::string> row) {
  rows_.push_back(std::move(row));
  if (rows_.size() >= 1000)
    flush();
}

void table::flush() {
  auto print = [&](const std::vector<std::string>& row) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size() && i < widths_.size())
        line.append(widths_[i] - std::min(widths_[i], row[i].size()) + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ')
      line.pop_back();
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stdout);
  };
  if (rows_.empty() && header_printed_)
    return;
  for (const auto& row : rows_)
    for (std::size_t i = 0; i < row.size(); ++i) {
      if (widths_.size() <= i)
        widths_.push_back(0);
      widths_[i] = std::max(widths_[i], row[i].size());
    }
  if (!header_printed_) {
    print(headers_);
    header_printed_ = true;
  }
  for (const auto& row : rows_)
    print(row);
  rows_.clear();
  std::fflush(stdout);
}

void print_json_line(const nlohmann::json& j) {
  auto line = events::dump_json(j);
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stdout);
}

progress::progress(std::string what, std::uint64_t total)
  : what_(std::move(what)), total_(total), active_(is_tty(STDERR_FILENO)),
    start_(std::chrono::steady_clock::now()), last_(start_) {
}

progress::~progress() {
  done();
}

void progress::update(std::uint64_t n) {
  if (!active_)
    return;
  auto now = std::chrono::steady_clock::now();
  if (now - last_ < std::chrono::milliseconds{250})
    return;
  last_ = now;
  double s = std::chrono::duration<double>(now - start_).count();
  if (total_ > 0)
    std::fprintf(stderr, "\r\033[K%s: %llu of %llu events (%.0f%%), %.0fk events/s", what_.c_str(),
                 static_cast<unsigned long long>(n), static_cast<unsigned long long>(total_),
                 100.0 * static_cast<double>(n) / static_cast<double>(total_),
                 static_cast<double>(n) / s / 1000);
  else
    std::fprintf(stderr, "\r\033[K%s: %llu events", what_.c_str(),
                 static_cast<unsigned long long>(n));
  std::fflush(stderr);
}

void progress::done() {
  if (!active_)
    return;
  std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
  active_ = false;
}

const std::vector<std::string>& event_headers() {
  static const std::vector<std::string> h{"POSITION", "TIME", "STREAM@VERSION", "TYPE", "DATA"};
  return h;
}

std::vector<std::string> event_row(const events::record_view& v) {
  std::string data;
  if (auto ev = v.decode_payload())
    data = events::to_json(*ev);
  else
    data = "<" + describe(ev.error()) + ">";
  std::string where{v.stream};
  where += '@';
  where += std::to_string(v.version);
  return {std::to_string(v.position), events::format_timestamp(v.timestamp_us), std::move(where),
          std::string{v.type}, std::move(data)};
}

nlohmann::json event_json(const events::record_view& v) {
  return events::to_json_value(v.to_record());
}

} // namespace keel::inspect
