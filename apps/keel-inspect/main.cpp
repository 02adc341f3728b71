// keel-inspect: look into an event store, read-only, beside a running node.
//
// Exit codes: 0 healthy / done, 1 findings (verify), 2 usage or I/O error.

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "keel/events/error.hpp"
#include "keel/events/json.hpp"
#include "keel/storage/event_store.hpp"
#include "keel/storage/verify.hpp"

namespace {

using namespace keel;

constexpr const char* usage_text = R"(usage: keel-inspect <command> --data DIR [options]

commands:
  streams [--prefix P] [--limit N]         list streams and their last version
  read <stream> [--from V] [--limit N]     the events of one stream
  tail [--from POSITION] [--limit N]       the global log from a position
  verify                                   check checksums, versions, positions and indexes

options:
  --data DIR   the store's data directory (opened read-only, beside a running writer)
  --json       one JSON object per line (NDJSON) instead of a table

exit codes: 0 ok, 1 findings (verify found problems), 2 usage or I/O error
)";

struct args {
  std::string command;
  std::vector<std::string> positional;
  std::map<std::string, std::string> opts;
  bool json = false;
};

[[noreturn]] void usage_error(const std::string& msg) {
  std::cerr << "keel-inspect: " << msg << "\n\n" << usage_text;
  std::exit(2);
}

args parse(int argc, char** argv) {
  args a;
  static const std::map<std::string, bool> known = {
    {"--data", true}, {"--prefix", true}, {"--limit", true}, {"--from", true}, {"--json", false}};
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::cout << usage_text;
      std::exit(0);
    }
    if (arg.rfind("--", 0) == 0) {
      auto eq = arg.find('=');
      std::string name = arg.substr(0, eq);
      auto k = known.find(name);
      if (k == known.end())
        usage_error("unknown option " + name);
      if (!k->second) {
        a.json = true;
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
  if (a.command.empty())
    usage_error("no command given");
  return a;
}

std::uint64_t number(const args& a, const std::string& name, std::uint64_t fallback) {
  auto i = a.opts.find(name);
  if (i == a.opts.end())
    return fallback;
  const auto& text = i->second;
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos
      || text.size() > 19)
    usage_error(name + " must be a non-negative integer, got '" + text + "'");
  return std::stoull(text);
}

/// Prints rows as aligned columns.
void print_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths;
  for (const auto& row : rows)
    for (std::size_t i = 0; i < row.size(); ++i) {
      if (widths.size() <= i)
        widths.push_back(0);
      widths[i] = std::max(widths[i], row[i].size());
    }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size())
        line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    std::cout << line << '\n';
  }
}

std::unique_ptr<storage::event_store> open_store(const args& a) {
  auto i = a.opts.find("--data");
  if (i == a.opts.end())
    usage_error("--data DIR is required");
  storage::options opts;
  opts.path = i->second;
  opts.mode = storage::open_mode::secondary;
  opts.create_if_missing = false;
  opts.block_cache_bytes = 8u << 20;
  auto store = storage::event_store::open(opts);
  if (!store) {
    std::cerr << "keel-inspect: " << describe(store.error()) << '\n';
    std::exit(2);
  }
  if (auto err = (*store)->refresh()) {
    std::cerr << "keel-inspect: " << describe(err) << '\n';
    std::exit(2);
  }
  return std::move(*store);
}

std::vector<std::string> record_row(const events::record_view& v) {
  std::string data;
  if (auto ev = v.decode_payload())
    data = events::to_json(*ev);
  else
    data = "<" + describe(ev.error()) + ">";
  return {std::to_string(v.position), events::format_timestamp(v.timestamp_us),
          std::string{v.stream} + "@" + std::to_string(v.version), std::string{v.type}, data};
}

template <class Reader>
int print_records(const args& a, Reader& reader) {
  std::vector<std::vector<std::string>> rows;
  if (!a.json)
    rows.push_back({"POSITION", "TIME", "STREAM@VERSION", "TYPE", "DATA"});
  while (reader.next()) {
    if (a.json)
      std::cout << events::dump_json(events::to_json_value(reader.current().to_record())) << '\n';
    else
      rows.push_back(record_row(reader.current()));
  }
  if (!a.json)
    print_table(rows);
  if (auto& err = reader.error()) {
    std::cout.flush();
    std::cerr << "keel-inspect: " << describe(err) << '\n';
    return code_of(err) == errc::corrupt_record ? 1 : 2;
  }
  return 0;
}

int cmd_streams(const args& a) {
  auto store = open_store(a);
  auto prefix = a.opts.count("--prefix") ? a.opts.at("--prefix") : std::string{};
  auto limit = number(a, "--limit", 1000);
  auto list = store->list_streams(prefix, limit);
  if (!list) {
    std::cerr << "keel-inspect: " << describe(list.error()) << '\n';
    return 2;
  }
  if (a.json) {
    for (const auto& s : *list)
      std::cout << events::dump_json({{"stream", s.stream}, {"version", s.last_version}})
                << '\n';
    return 0;
  }
  std::vector<std::vector<std::string>> rows{{"STREAM", "VERSION"}};
  for (const auto& s : *list)
    rows.push_back({s.stream, std::to_string(s.last_version)});
  print_table(rows);
  return 0;
}

int cmd_read(const args& a) {
  if (a.positional.size() != 1)
    usage_error("read needs exactly one stream id");
  auto store = open_store(a);
  auto reader = store->read_stream(a.positional[0], number(a, "--from", 1),
                                   number(a, "--limit", ~std::uint64_t{0}));
  return print_records(a, reader);
}

int cmd_tail(const args& a) {
  auto store = open_store(a);
  auto reader = store->read_all(number(a, "--from", 1), number(a, "--limit", ~std::uint64_t{0}));
  return print_records(a, reader);
}

int cmd_verify(const args& a) {
  auto store = open_store(a);
  storage::verify_options vo;
  if (isatty(STDERR_FILENO))
    vo.progress = [](std::uint64_t n) { std::fprintf(stderr, "\rverified %llu events", static_cast<unsigned long long>(n)); };
  auto rep = storage::verify(*store, vo);
  if (vo.progress)
    std::fprintf(stderr, "\r\033[K");
  if (!rep) {
    std::cerr << "keel-inspect: " << describe(rep.error()) << '\n';
    return 2;
  }
  if (a.json) {
    for (const auto& f : rep->findings)
      std::cout << events::dump_json({{"kind", f.kind}, {"position", f.position},
                                      {"stream", f.stream}, {"version", f.version},
                                      {"detail", f.detail}})
                << '\n';
    std::cout << nlohmann::json{{"events", rep->events}, {"streams", rep->streams},
                                {"index_entries", rep->index_entries},
                                {"last_position", rep->last_position},
                                {"findings", rep->findings.size()},
                                {"truncated", rep->truncated},
                                {"healthy", rep->findings.empty()}}.dump()
              << '\n';
  } else {
    if (!rep->findings.empty()) {
      std::vector<std::vector<std::string>> rows{{"KIND", "POSITION", "STREAM@VERSION", "DETAIL"}};
      for (const auto& f : rep->findings)
        rows.push_back({f.kind, f.position ? std::to_string(f.position) : "-",
                        f.stream.empty() ? "-" : f.stream + "@" + std::to_string(f.version),
                        f.detail});
      print_table(rows);
      if (rep->truncated)
        std::cout << "(more findings not listed)\n";
    }
    std::cout << rep->events << " events in " << rep->streams << " streams, last position "
              << rep->last_position << ": "
              << (rep->findings.empty() ? "healthy"
                                        : std::to_string(rep->findings.size()) + " finding(s)")
              << '\n';
  }
  return rep->findings.empty() ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
  auto a = parse(argc, argv);
  if (a.command == "streams")
    return cmd_streams(a);
  if (a.command == "read")
    return cmd_read(a);
  if (a.command == "tail")
    return cmd_tail(a);
  if (a.command == "verify")
    return cmd_verify(a);
  usage_error("unknown command '" + a.command + "'");
}
