#pragma once

// keel-inspect's command line, output and store access, shared by its
// commands. Exit codes: 0 ok, 1 findings, 2 usage or I/O error.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "keel/events/record.hpp"
#include "keel/storage/event_store.hpp"

namespace keel::inspect {

constexpr int exit_ok = 0;
constexpr int exit_findings = 1;
constexpr int exit_error = 2;

/// A parsed command line: the command, its positional words and options.
struct args {
  std::string command;
  std::vector<std::string> positional;
  std::map<std::string, std::string> opts;
  std::set<std::string> flags;
  bool json = false;

  bool has(const std::string& name) const {
    return opts.count(name) != 0 || flags.count(name) != 0;
  }
  std::string text(const std::string& name, const std::string& fallback = {}) const;
  /// A non-negative integer option (usage error otherwise).
  std::uint64_t number(const std::string& name, std::uint64_t fallback) const;
  /// A time option: RFC 3339 UTC ("2026-11-22T03:00:00Z", fractions and a
  /// space instead of T allowed) or a duration back from now ("90s", "15m",
  /// "2h", "1d"). Microseconds since the epoch.
  std::optional<std::int64_t> time(const std::string& name) const;
  /// A duration option ("500ms", "90s", "15m", "2h", "1d"), in microseconds.
  std::int64_t duration(const std::string& name, std::int64_t fallback_us) const;
};

/// Option names a command accepts: name -> takes a value.
using option_spec = std::map<std::string, bool>;

/// Parses argv for `command` (argv[1]); unknown options are usage errors.
args parse_args(int argc, char** argv, const option_spec& spec);

/// Thrown to end the process with `code` once the stack has unwound (so an
/// open store is closed: a secondary instance removes its directory).
struct exit_now {
  int code;
};

/// Prints `msg` and the usage to stderr and ends with exit code 2.
[[noreturn]] void usage_error(const std::string& msg);

/// Prints "keel-inspect: msg" to stderr and ends with exit code 2.
[[noreturn]] void fail(const std::string& msg);

/// Reports an error that ended a read (after what was printed) and returns
/// the exit code: 1 for a corrupt record (a finding), 2 otherwise.
int read_failed(const caf::error& err);

/// Parses a duration ("250ms", "90s", "15m", "2h", "1d"); nullopt if malformed.
std::optional<std::int64_t> parse_duration_us(const std::string& text);

/// Parses an RFC 3339 UTC time; nullopt if malformed.
std::optional<std::int64_t> parse_time_us(const std::string& text);

/// "1.5 s", "3 min", "2.1 h".
std::string human_duration(std::int64_t us);

/// Opens the store of `--data` read-only as a RocksDB secondary instance
/// (works beside a running node) and catches up with the writer.
std::unique_ptr<storage::event_store> open_secondary(const args& a);

/// Opens the store of `--data` as its writer (no node may be running).
std::unique_ptr<storage::event_store> open_writer(const args& a);

/// Prints rows as aligned columns; rows may be added in any number: they are
/// printed in chunks, each column as wide as the widest cell seen so far.
class table {
public:
  explicit table(std::vector<std::string> headers);
  ~table();
  void add(std::vector<std::string> row);
  /// Prints what is buffered (followers call it after each batch).
  void flush();

private:
  std::vector<std::vector<std::string>> rows_;
  std::vector<std::size_t> widths_;
  bool header_printed_ = false;
  std::vector<std::string> headers_;
};

/// Prints one JSON value as a line (NDJSON).
void print_json_line(const nlohmann::json& j);

/// A progress line on stderr for long scans, only when stderr is a
/// terminal; redrawn at most four times a second, erased by `done`.
class progress {
public:
  progress(std::string what, std::uint64_t total);
  ~progress();
  void update(std::uint64_t n);
  void done();

private:
  std::string what_;
  std::uint64_t total_;
  bool active_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_;
};

/// The columns of an event row: position, time, stream@version, type, data.
std::vector<std::string> event_row(const events::record_view& v);
const std::vector<std::string>& event_headers();

/// An event as one JSON object (the record's fields, payload under "data").
nlohmann::json event_json(const events::record_view& v);

} // namespace keel::inspect
