// The real keel-replay binary on a store the real pipeline recorded (every
// saga path, virtual clock): golden output of show, check and export, the
// HTML page, bad input, and the corpus recorder.

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include "child_process.hpp"
#include "keel/events/correlation.hpp"
#include "scenarios.hpp"

using namespace keel;
using namespace keel::test;
using namespace std::chrono_literals;

namespace {

struct outcome {
  std::string out;
  int code = -1;
};

std::string quoted(const std::string& s) {
  std::string r = "'";
  for (char c : s)
    r += c == '\'' ? std::string{"'\\''"} : std::string(1, c);
  return r + "'";
}

/// Runs keel-replay with `args`; with `merge_stderr`, stderr is part of `out`.
outcome replay(const std::vector<std::string>& args, bool merge_stderr = false) {
  std::string line = quoted(KEEL_REPLAY);
  for (auto& a : args)
    line += " " + quoted(a);
  line += merge_stderr ? " 2>&1" : " 2>/dev/null";
  auto r = run_child("/bin/sh", {"-c", line}, 120s);
  REQUIRE_FALSE(r.killed());
  REQUIRE(WIFEXITED(r.status));
  return {r.out, WEXITSTATUS(r.status)};
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

/// Event ids are random; everything else on the scenario store is fixed.
std::string normalise(std::string text, const std::string& dir) {
  text = std::regex_replace(text, std::regex{"\"(event|causation)_id\":\"[0-9a-f]{32}\""},
                            "\"$1_id\":\"<random>\"");
  for (auto at = text.find(dir); at != std::string::npos; at = text.find(dir))
    text.replace(at, dir.size(), "<dir>");
  return text;
}

/// Compares `out` with tests/replay/golden/<name>.txt (KEEL_UPDATE_GOLDEN=1 rewrites it).
void golden(const std::string& name, const std::string& out) {
  auto path = std::string{KEEL_REPLAY_GOLDEN} + "/" + name + ".txt";
  if (std::getenv("KEEL_UPDATE_GOLDEN") != nullptr) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << out;
    return;
  }
  INFO("golden file " << path << " (KEEL_UPDATE_GOLDEN=1 rewrites it)");
  CHECK(out == read_file(path));
}

const std::string attempts = std::to_string(scenario_max_payment_attempts);

std::vector<std::string> on_store(std::vector<std::string> args, const std::string& data) {
  args.insert(args.end(), {"--data", data, "--max-payment-attempts", attempts});
  return args;
}

} // namespace

TEST_CASE_METHOD(pipeline_fixture, "show, check and export on a recorded store match their golden output", "[golden]") {
  auto data = record_scenarios(*this);
  auto norm = [&](const outcome& r) { return normalise(r.out, data); };
  for (auto* id : {"completed", "partial-rejected", "cancel-in-flight", "pending-resumed",
                   "pending-given-up"}) {
    auto r = replay(on_store({"show", id}, data));
    CHECK(r.code == 0);
    golden(std::string{"show-"} + id, norm(r));
  }
  auto json = replay(on_store({"show", "shipping-failed", "--json"}, data));
  CHECK(json.code == 0);
  CHECK(nlohmann::json::parse(json.out)["order_id"] == "shipping-failed");
  golden("show-shipping-failed-json", norm(json));

  auto one = replay(on_store({"check", "declined"}, data));
  CHECK(one.code == 0);
  golden("check-declined", norm(one));
  auto all = replay(on_store({"check", "--all", "--verbose"}, data));
  CHECK(all.code == 0);
  golden("check-all", norm(all));
  auto all_json = replay(on_store({"check", "--all", "--json"}, data));
  CHECK(all_json.code == 0);
  golden("check-all-json", norm(all_json));

  // Export writes exactly the corpus file recorded from the same scenario.
  for (auto& id : scenario_orders()) {
    auto r = replay(on_store({"export", id}, data));
    CHECK(r.code == 0);
    INFO("export " << id << " vs corpus/" << id << ".json");
    CHECK(r.out == read_file(std::string{KEEL_REPLAY_CORPUS} + "/" + id + ".json"));
  }
}

TEST_CASE_METHOD(pipeline_fixture, "the html timeline is one self-contained page with every step of the order", "[integration]") {
  auto data = record_scenarios(*this);
  auto file = dir.sub("pending-resumed.html");
  auto r = replay(on_store({"show", "pending-resumed", "--html", file}, data));
  REQUIRE(r.code == 0);
  CHECK(r.out.find("wrote " + file) == 0);
  auto html = read_file(file);
  CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(html.find("</html>") != std::string::npos);
  for (auto* external : {"http://", "https://", "src=", "<script", "@import", "url("})
    CHECK(html.find(external) == std::string::npos);
  CHECK(html.find("order pending-resumed") != std::string::npos);
  for (auto* step : {"reserve_stock", "authorize_payment", "parked (retry queue)",
                     "schedule_shipment", "capture_payment+commit_stock", "order_completed"})
    CHECK(html.find(step) != std::string::npos);
  auto count = [&](const std::string& s) {
    std::size_t n = 0;
    for (auto at = html.find(s); at != std::string::npos; at = html.find(s, at + 1))
      ++n;
    return n;
  };
  CHECK(count("<div") == count("</div>"));
  CHECK(count("<tr>") == count("</tr>"));
  CHECK(count("class=\"bar ") >= 5);
}

TEST_CASE_METHOD(pipeline_fixture, "keel-replay answers bad input with exit 2 and one clear line", "[integration]") {
  auto data = record_scenarios(*this);
  auto missing = replay(on_store({"show", "o-404"}, data), true);
  CHECK(missing.code == 2);
  CHECK(missing.out == "keel-replay: no such order: o-404\n");
  CHECK(replay(on_store({"check", "o-404"}, data), true).out == "keel-replay: no such order: o-404\n");
  auto nostore = replay({"check", "--all", "--data", dir.sub("nothing-here")}, true);
  CHECK(nostore.code == 2);
  CHECK(nostore.out.rfind("keel-replay: ", 0) == 0);
  auto usage = replay({"check"}, true);
  CHECK(usage.code == 2);
  CHECK(usage.out.rfind("keel-replay: check needs one of <order-id>, --all or --history FILE\nusage:", 0) == 0);
  CHECK(replay({"frobnicate"}, true).code == 2);
  CHECK(replay({"show", "completed"}, true).out.rfind("keel-replay: --data DIR is required", 0) == 0);
  CHECK(replay({"check", "--all", "--data", data, "--max-payment-attempts", "x"}, true).code == 2);

  auto bad = dir.sub("bad.json");
  std::ofstream(bad) << "{\"format\": \"keel-replay-history\",\n \"format_version\": 1,,\n}";
  auto syntax = replay({"check", "--history", bad}, true);
  CHECK(syntax.code == 2);
  CHECK(syntax.out.find("keel-replay: " + bad + ": not JSON: parse error at line 2") == 0);
  auto corpus = nlohmann::json::parse(read_file(std::string{KEEL_REPLAY_CORPUS} + "/completed.json"));
  corpus["events"][2]["data"].erase("payment_id");
  std::ofstream(bad, std::ios::trunc) << corpus.dump();
  auto field = replay({"check", "--history", bad}, true);
  CHECK(field.code == 2);
  CHECK(field.out == "keel-replay: " + bad + ": .events[2].data.payment_id: missing\n");
  CHECK(replay({"check", "--history", dir.sub("absent.json")}, true).out
        == "keel-replay: cannot read " + dir.sub("absent.json") + "\n");
}

TEST_CASE_METHOD(pipeline_fixture, "every corpus file checks clean through the binary and a tampered one exits 1 with its diff", "[integration]") {
  std::vector<std::string> args{"check"};
  for (auto& id : scenario_orders())
    args.insert(args.end(), {"--history", std::string{KEEL_REPLAY_CORPUS} + "/" + id + ".json"});
  auto clean = replay(args);
  CHECK(clean.code == 0);
  CHECK(clean.out.find("checked 9 orders") != std::string::npos);
  CHECK(clean.out.find(" 0 divergent") != std::string::npos);

  auto doc = nlohmann::json::parse(read_file(std::string{KEEL_REPLAY_CORPUS} + "/completed.json"));
  doc["events"][0]["commands"][0]["lines"][0]["quantity"] = 3;
  auto file = dir.sub("tampered.json");
  std::ofstream(file) << doc.dump(1);
  auto r = replay({"check", "--history", file});
  CHECK(r.code == 1);
  auto position = std::to_string(doc["events"][0]["position"].get<std::uint64_t>());
  CHECK(r.out.find("  order-completed@1 position " + position
                   + " (+0.000 ms) order_placed: reserve_stock differs in lines\n"
                     "    - reserve_stock lines=[SKU-1 x2 @1250]\n"
                     "    + reserve_stock lines=[SKU-1 x3 @1250]\n")
        != std::string::npos);
  auto j = replay({"check", "--history", file, "--json"});
  CHECK(j.code == 1);
  auto first = nlohmann::json::parse(j.out.substr(0, j.out.find('\n')));
  CHECK(first["divergences"][0]["version"] == 1);
  CHECK(first["divergences"][0]["kind"] == "commands");
  CHECK(first["divergences"][0]["recorded"][0]["lines"][0]["quantity"] == 3);
}

// Rewrites tests/replay/corpus from a fresh recording (hidden: run with
// `replay_tests "[.record-corpus]"` after a deliberate saga change). With
// KEEL_REPLAY_KEEP_STORE=DIR it also copies the recorded store to DIR (docs).
TEST_CASE_METHOD(pipeline_fixture, "record the corpus", "[.record-corpus]") {
  auto data = record_scenarios(*this);
  if (auto* keep = std::getenv("KEEL_REPLAY_KEEP_STORE"))
    std::filesystem::copy(data, keep, std::filesystem::copy_options::recursive);
  for (auto& id : scenario_orders()) {
    auto path = std::string{KEEL_REPLAY_CORPUS} + "/" + id + ".json";
    auto r = replay(on_store({"export", id, "--output", path}, data));
    CHECK(r.code == 0);
  }
}

TEST_CASE_METHOD(pipeline_fixture, "inventory events carry their order's correlation id like payment and shipping events", "[integration]") {
  record_scenarios(*this);
  std::size_t checked = 0;
  auto r = store->read_stream("stock-SKU-1");
  while (r.next()) {
    auto ev = r.current().decode_payload();
    REQUIRE(ev);
    if (auto* x = std::get_if<events::stock_reserved>(&*ev)) {
      CHECK(r.current().correlation_id == events::correlation_of(x->order_id));
      ++checked;
    } else if (auto* y = std::get_if<events::stock_released>(&*ev)) {
      CHECK(r.current().correlation_id == events::correlation_of(y->order_id));
      ++checked;
    } else if (auto* z = std::get_if<events::stock_committed>(&*ev)) {
      CHECK(r.current().correlation_id == events::correlation_of(z->order_id));
      ++checked;
    }
  }
  REQUIRE_FALSE(r.error());
  CHECK(checked > 10);
}
