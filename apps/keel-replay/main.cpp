// keel-replay: the causal timeline of an order (show), the decider replayed
// over recorded histories (check), and history files (export). Read-only on
// the store (a RocksDB secondary instance beside a running node).
//
// Exit codes: 0 ok, 1 divergence found, 2 usage or I/O error.

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "check.hpp"
#include "codec.hpp"
#include "derive.hpp"
#include "gather.hpp"
#include "keel/events/error.hpp"
#include "keel/events/json.hpp"
#include "keel/storage/event_store.hpp"
#include "timeline.hpp"

namespace {

using namespace keel;
using namespace keel::replay;

constexpr const char* usage_text = R"(usage:
  keel-replay show <order-id> --data DIR [--json | --html FILE]
  keel-replay check <order-id> --data DIR [--json]
  keel-replay check --all --data DIR [--json] [--verbose]
  keel-replay check --history FILE [FILE ...] [--json]
  keel-replay export <order-id> --data DIR [--output FILE]
options:
  --data DIR                  the node's data directory (opened read-only, beside a running node)
  --max-payment-attempts N    saga policy of the node (default 10)
  --payment-deadline-s S      saga policy of the node (default 1800)
exit codes: 0 ok, 1 divergence found, 2 usage or I/O error
)";

/// A usage or I/O error: one line on stderr, exit 2.
struct failure {
  std::string message;
  bool usage = false;
};

[[noreturn]] void usage_error(const std::string& why) {
  throw failure{why, true};
}

[[noreturn]] void fail(const std::string& why) {
  throw failure{why, false};
}

struct args {
  std::string command;
  std::vector<std::string> positional;
  std::string data;
  std::string html;
  std::string output;
  std::vector<std::string> histories;
  bool json = false;
  bool all = false;
  bool verbose = false;
  actors::saga_policy policy;
};

std::uint64_t number(const std::string& flag, const std::string& text) {
  try {
    std::size_t used = 0;
    auto v = std::stoull(text, &used);
    if (used == text.size() && text.find('-') == std::string::npos)
      return v;
  } catch (const std::exception&) {
  }
  usage_error(flag + ": expected a non-negative integer, got \"" + text + "\"");
}

args parse(int argc, char** argv) {
  args a;
  if (argc < 2)
    usage_error("no command");
  a.command = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc)
        usage_error(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--data")
      a.data = value();
    else if (arg == "--html")
      a.html = value();
    else if (arg == "--output" || arg == "-o")
      a.output = value();
    else if (arg == "--history")
      a.histories.push_back(value());
    else if (arg == "--json")
      a.json = true;
    else if (arg == "--all")
      a.all = true;
    else if (arg == "--verbose" || arg == "-v")
      a.verbose = true;
    else if (arg == "--max-payment-attempts")
      a.policy.max_payment_attempts = static_cast<std::uint32_t>(number(arg, value()));
    else if (arg == "--payment-deadline-s")
      a.policy.payment_deadline_us = static_cast<std::int64_t>(number(arg, value())) * 1'000'000;
    else if (arg.rfind("-", 0) == 0)
      usage_error("unknown option " + arg);
    else
      a.positional.push_back(arg);
  }
  // `check --history a.json b.json ...` (a shell glob): every file a history.
  if (!a.histories.empty()) {
    a.histories.insert(a.histories.end(), a.positional.begin(), a.positional.end());
    a.positional.clear();
  }
  return a;
}

std::unique_ptr<storage::event_store> open_store(const args& a) {
  if (a.data.empty())
    usage_error("--data DIR is required");
  auto store = storage::event_store::open_beside(a.data);
  if (!store)
    fail(describe(store.error()));
  return std::move(*store);
}

std::string one_order(const args& a) {
  if (a.positional.size() != 1)
    usage_error(a.command + " needs exactly one <order-id>");
  return a.positional.front();
}

order_records read_or_fail(const storage::event_store& store, const std::string& id,
                           bool breakers) {
  auto o = read_order(store, id, breakers);
  if (!o)
    fail(code_of(o.error()) == errc::not_found ? "no such order: " + id : describe(o.error()));
  return std::move(*o);
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out)
    fail("cannot write " + path);
}

int show(const args& a) {
  auto id = one_order(a);
  if (a.json && !a.html.empty())
    usage_error("show: --json and --html exclude each other");
  auto store = open_store(a);
  auto o = read_or_fail(*store, id, true);
  auto t = build_timeline(o, derive(o, a.policy), a.policy);
  if (!a.html.empty()) {
    write_file(a.html, render_html(t));
    std::cout << "wrote " << a.html << " (" << t.rows.size() << " events, " << t.steps.size()
              << " steps)\n";
  } else if (a.json) {
    std::cout << events::dump_json(render_json(t)) << "\n";
  } else {
    std::cout << render_text(t);
  }
  return 0;
}

/// Prints one report; returns whether it diverged.
bool print_report(const check_report& r, const args& a, bool verbose) {
  if (a.json) {
    if (verbose || !r.divergences.empty())
      std::cout << events::dump_json(render_json(r)) << "\n";
  } else {
    std::cout << render_text(r, verbose);
  }
  return !r.divergences.empty();
}

void print_summary(const args& a, std::uint64_t orders, std::uint64_t events,
                   std::uint64_t divergent) {
  if (a.json)
    std::cout << events::dump_json({{"summary",
                                     {{"orders", orders},
                                      {"events", events},
                                      {"divergent_orders", divergent}}}})
              << "\n";
  else
    std::cout << "checked " << orders << (orders == 1 ? " order (" : " orders (") << events
              << " events): " << divergent << " divergent\n";
}

int check_histories(const args& a) {
  std::uint64_t events = 0;
  std::uint64_t divergent = 0;
  for (auto& path : a.histories) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
      fail("cannot read " + path);
    std::stringstream buf;
    buf << in.rdbuf();
    auto h = parse_history(buf.str());
    if (!h) {
      auto why = describe(h.error());
      const std::string code = "invalid_argument: ";
      fail(path + ": " + (why.rfind(code, 0) == 0 ? why.substr(code.size()) : why));
    }
    auto r = check(*h);
    events += r.events;
    divergent += print_report(r, a, true) ? 1 : 0;
  }
  print_summary(a, a.histories.size(), events, divergent);
  return divergent > 0 ? 1 : 0;
}

int check_all(const args& a, const storage::event_store& store) {
  std::uint64_t divergent = 0;
  std::uint64_t order_events = 0;
  auto start = std::chrono::steady_clock::now();
  auto stats = scan_orders(store, [&](order_records& o) {
    check_report r;
    if (o.order.empty()) { // service events with no order, or after its end
      r.order_id = o.order_id;
      for (auto& s : o.services)
        r.divergences.push_back({"unexplained_service_event", s.position, s.stream, s.version,
                                 s.type, s.timestamp_us,
                                 "no order stream holds order " + o.order_id + " at this point",
                                 {}, {}});
    } else {
      auto d = derive(o, a.policy);
      r = check(recorded_history(o, d, a.policy));
      order_events += o.order.size();
    }
    divergent += print_report(r, a, a.verbose) ? 1 : 0;
  });
  if (!stats)
    fail(describe(stats.error()));
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  print_summary(a, stats->orders, order_events, divergent);
  std::fprintf(stderr,
               "keel-replay: read %llu events of the global log in %.3f s: %.0f events/s, "
               "%.0f orders/s\n",
               static_cast<unsigned long long>(stats->events), secs,
               static_cast<double>(stats->events) / std::max(secs, 1e-9),
               static_cast<double>(stats->orders) / std::max(secs, 1e-9));
  return divergent > 0 ? 1 : 0;
}

int check_cmd(const args& a) {
  int modes = (a.all ? 1 : 0) + (a.histories.empty() ? 0 : 1) + (a.positional.empty() ? 0 : 1);
  if (modes != 1)
    usage_error("check needs one of <order-id>, --all or --history FILE");
  if (!a.histories.empty()) {
    if (!a.data.empty())
      usage_error("check --history reads files, not a store: drop --data");
    return check_histories(a);
  }
  auto store = open_store(a);
  if (a.all)
    return check_all(a, *store);
  auto o = read_or_fail(*store, one_order(a), false);
  auto r = check(recorded_history(o, derive(o, a.policy), a.policy));
  auto diverged = print_report(r, a, true);
  return diverged ? 1 : 0;
}

int export_cmd(const args& a) {
  auto id = one_order(a);
  auto store = open_store(a);
  auto o = read_or_fail(*store, id, false);
  auto r = check(recorded_history(o, derive(o, a.policy), a.policy));
  nlohmann::json extra = {{"exported_by", "keel-replay export"},
                          {"store_check",
                           {{"clean", r.divergences.empty()},
                            {"divergences", r.divergences.size()}}}};
  auto doc = history_json(decided_history(o, a.policy), extra);
  auto text = doc.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  if (a.output.empty())
    std::cout << text;
  else
    write_file(a.output, text);
  if (!r.divergences.empty()) {
    std::cerr << "keel-replay: order " << id << " diverges from today's decider in the store ("
              << r.divergences.size() << " divergences; see keel-replay check " << id
              << "): the file records today's decisions\n";
    return 1;
  }
  if (!a.output.empty())
    std::cout << "wrote " << a.output << " (" << o.order.size() << " events)\n";
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  try {
    auto a = parse(argc, argv);
    if (a.command == "show")
      return show(a);
    if (a.command == "check")
      return check_cmd(a);
    if (a.command == "export")
      return export_cmd(a);
    if (a.command == "help" || a.command == "--help" || a.command == "-h") {
      std::cout << usage_text;
      return 0;
    }
    usage_error("unknown command \"" + a.command + "\"");
  } catch (const failure& f) {
    std::cerr << "keel-replay: " << f.message << "\n";
    if (f.usage)
      std::cerr << usage_text;
    return 2;
  }
}
