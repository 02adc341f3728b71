#include "sim_server.hpp"

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "api_error.hpp"
#include "keel/events/error.hpp"
#include "faults.hpp"
#include "order_json.hpp"

namespace keel::sim {

using nlohmann::json;
using outcome = actors::provider_plan::outcome;

struct sim_server::impl {
  sim_config cfg;
  struct entry {
    bool gateway = true;
    std::shared_ptr<actors::simulated_provider> sim;
  };
  std::map<std::string, entry> providers;
  httplib::Server http;
  int port = 0;
  std::thread listener;
  std::mutex mtx;
  std::condition_variable cv;
  bool stopping = false;

  void send(httplib::Response& res, int status, const json& body) {
    res.status = status;
    res.set_content(body.dump(), "application/json");
  }

  bool authorized(const httplib::Request& req, httplib::Response& res) {
    if (cfg.api_key.empty() || req.get_header_value("Authorization") == "Bearer " + cfg.api_key)
      return true;
    send(res, 401, {{"error", "missing or wrong API key"}});
    return false;
  }

  /// Waits `d`, or until the server stops; returns false when it stopped.
  bool wait(actors::duration d) {
    std::unique_lock<std::mutex> lock{mtx};
    return !cv.wait_for(lock, d, [this] { return stopping; });
  }

  void call(const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req, res))
      return;
    auto name = req.matches[1].str();
    auto op = req.matches[2].str();
    auto i = providers.find(name);
    if (i == providers.end())
      return send(res, 404, {{"error", "no provider named " + name}});
    if (!(i->second.gateway ? actors::is_gateway_operation(op) : actors::is_carrier_operation(op)))
      return send(res, 404, {{"error", name + " has no operation " + op}});
    auto key = req.get_header_value("Idempotency-Key");
    auto body = json::parse(req.body, nullptr, false);
    if (key.empty() || !body.is_object() || !body.value("amount_cents", json{}).is_number_integer())
      return send(res, 400, {{"error", "an Idempotency-Key header and {\"amount_cents\": N} are "
                                       "required"}});
    auto plan = i->second.sim->plan({op, key, body["amount_cents"].get<std::int64_t>()},
                                    std::chrono::steady_clock::now());
    if (plan.result == outcome::hang) {
      wait(std::chrono::hours{24});
      return send(res, 503, {{"error", "stopping"}});
    }
    if (!wait(plan.latency))
      return send(res, 503, {{"error", "stopping"}});
    if (plan.result == outcome::failed)
      return send(res, 503, {{"error", plan.reason}});
    if (plan.result == outcome::declined)
      return send(res, 200, {{"status", "declined"}, {"reason", plan.reason}});
    json ok{{"status", "approved"}, {"reference", plan.reference}};
    if (plan.delivery_days > 0)
      ok["delivery_days"] = plan.delivery_days;
    send(res, 200, ok);
  }

  void faults(const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req, res))
      return;
    auto parsed = runtime::parse_faults(req.body);
    if (auto* err = std::get_if<runtime::api_error>(&parsed)) {
      res.status = err->status;
      return res.set_content(runtime::error_body(*err), "application/json");
    }
    auto& f = std::get<runtime::fault_request>(parsed);
    auto faults = runtime::to_faults(f, std::chrono::steady_clock::now());
    std::vector<std::string> targets;
    for (auto& [name, e] : providers)
      if (f.provider == "all" || f.provider == name
          || f.provider == (e.gateway ? "gateways" : "carriers")) {
        e.sim->faults(faults);
        targets.push_back(name);
      }
    if (targets.empty())
      return send(res, 400, {{"error", "unknown provider \"" + f.provider + "\""}});
    send(res, 200, {{"providers", targets}});
  }

  void stats(httplib::Response& res) {
    auto list = json::array();
    for (auto& [name, e] : providers)
      list.push_back({{"name", name},
                      {"kind", e.gateway ? "gateway" : "carrier"},
                      {"calls", e.sim->calls()},
                      {"distinct_successes", e.sim->distinct_successes()}});
    send(res, 200, {{"providers", list}});
  }

  void routes() {
    http.Post(R"(/providers/([A-Za-z0-9._-]+)/([a-z]+))",
              [this](const httplib::Request& req, httplib::Response& res) { call(req, res); });
    http.Post("/admin/faults",
              [this](const httplib::Request& req, httplib::Response& res) { faults(req, res); });
    http.Get("/stats", [this](const httplib::Request&, httplib::Response& res) { stats(res); });
    http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      send(res, 200, {{"status", "ok"}});
    });
  }
};

caf::expected<std::unique_ptr<sim_server>> sim_server::start(sim_config cfg) {
  auto s = std::make_unique<impl>();
  s->cfg = std::move(cfg);
  auto seed = actors::first_simulator_seed(s->cfg.seed);
  for (auto* list : {&s->cfg.gateways, &s->cfg.carriers})
    for (auto& name : *list) {
      auto sim = std::make_shared<actors::simulated_provider>(name, seed++, s->cfg.key_capacity);
      sim->faults(s->cfg.faults);
      if (!s->providers.emplace(name, impl::entry{list == &s->cfg.gateways, sim}).second)
        return make_error(errc::invalid_argument, "keel-sim: two providers are named " + name);
    }
  if (s->cfg.gateways.empty() || s->cfg.carriers.empty())
    return make_error(errc::invalid_argument, "keel-sim: at least one gateway and one carrier");
  auto threads = s->cfg.threads;
  s->http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  s->http.set_keep_alive_max_count(1u << 30);
  s->http.set_keep_alive_timeout(60);
  s->routes();
  s->port = s->cfg.port == 0 ? s->http.bind_to_any_port(s->cfg.host)
                             : (s->http.bind_to_port(s->cfg.host, s->cfg.port) ? s->cfg.port : -1);
  if (s->port <= 0)
    return make_error(errc::invalid_argument, "keel-sim: cannot listen on " + s->cfg.host + ":"
                                                + std::to_string(s->cfg.port));
  auto* raw = s.get();
  s->listener = std::thread{[raw] { raw->http.listen_after_bind(); }};
  // stop() before the listener runs would not stop it.
  while (!s->http.is_running())
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return std::unique_ptr<sim_server>{new sim_server(std::move(s))};
}

sim_server::sim_server(std::unique_ptr<impl> ptr) : impl_(std::move(ptr)) {
}

sim_server::~sim_server() {
  stop();
  if (impl_->listener.joinable())
    impl_->listener.join();
}

int sim_server::port() const noexcept {
  return impl_->port;
}

actors::simulated_provider* sim_server::provider(const std::string& name) const {
  auto i = impl_->providers.find(name);
  return i == impl_->providers.end() ? nullptr : i->second.sim.get();
}

void sim_server::wait() {
  std::unique_lock<std::mutex> lock{impl_->mtx};
  impl_->cv.wait(lock, [this] { return impl_->stopping; });
}

void sim_server::stop() {
  {
    std::lock_guard<std::mutex> guard{impl_->mtx};
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  impl_->http.stop();
}

} // namespace keel::sim
