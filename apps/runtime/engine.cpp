#include "engine.hpp"

#include <utility>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "keel/actors/catalog.hpp"
#include "keel/actors/messages.hpp"
#include "keel/actors/registry.hpp"
#include "keel/events/error.hpp"
#include "keel/storage/event_store.hpp"

namespace keel::runtime {

namespace {

using provider_lists
  = std::pair<std::vector<actors::provider_ptr>, std::vector<actors::provider_ptr>>;

/// The providers of `specs`: simulators seeded as actors::simulate_providers
/// seeds them (the same seed plans the same calls), HTTP providers started.
caf::expected<provider_lists> make_providers(const provider_specs& specs, std::uint64_t seed) {
  provider_lists out;
  auto next_seed = actors::first_simulator_seed(seed);
  auto make = [&](const std::vector<provider_spec>& from,
                  std::vector<actors::provider_ptr>& to) -> caf::error {
    for (const auto& spec : from) {
      if (spec.kind == provider_spec::kind_t::simulated) {
        to.push_back(std::make_shared<actors::simulated_provider>(
          spec.http.name, next_seed++, actors::pipeline_simulator_keys));
        continue;
      }
      auto p = actors::make_http_provider(spec.http);
      if (!p)
        return p.error();
      to.push_back(std::move(*p));
    }
    return caf::error{};
  };
  if (auto err = make(specs.gateways, out.first))
    return err;
  if (auto err = make(specs.carriers, out.second))
    return err;
  return out;
}

} // namespace

engine::engine(engine_config cfg) : cfg_(std::move(cfg)) {
}

engine::~engine() {
  stop();
}

caf::expected<std::unique_ptr<engine>> engine::open(engine_config cfg) {
  std::unique_ptr<engine> e{new engine(std::move(cfg))};
  auto opened = storage::event_store::open(e->cfg_.store);
  if (!opened)
    return opened.error();
  e->store_ = std::shared_ptr<storage::event_store>(std::move(*opened));
  if (!e->cfg_.currencies.empty()) {
    auto cat = actors::catalog::open(e->store_, e->cfg_.currencies);
    if (!cat)
      return cat.error();
    e->catalog_ = std::move(*cat);
  }
  e->metrics_ = e->cfg_.pipeline.metrics ? e->cfg_.pipeline.metrics
                                         : std::make_shared<actors::registry>();
  return e;
}

caf::error engine::start() {
  if (system_)
    return make_error(errc::invalid_argument, "engine: started twice");
  auto providers = make_providers(cfg_.providers, cfg_.pipeline.seed);
  if (!providers)
    return providers.error();
  caf_cfg_ = std::make_unique<caf::actor_system_config>();
  caf_cfg_->set("scheduler.max-threads", cfg_.threads);
  caf_cfg_->set("logger.verbosity", caf::atom("quiet"));
  actors::add_message_types(*caf_cfg_);
  if (cfg_.configure)
    cfg_.configure(*caf_cfg_);
  system_ = std::make_unique<caf::actor_system>(*caf_cfg_);
  auto pc = cfg_.pipeline;
  pc.store = store_;
  pc.catalog = catalog_;
  pc.metrics = metrics_;
  pc.gateways = std::move(providers->first);
  pc.carriers = std::move(providers->second);
  auto started = actors::pipeline::start(*system_, std::move(pc));
  if (!started) {
    system_.reset();
    return started.error();
  }
  pipeline_ = std::move(*started);
  return caf::error{};
}

void engine::stop() {
  if (pipeline_)
    pipeline_->stop();
  // The actors first (a saga finishing now still calls the hooks), the
  // pipeline object after them (review L1).
  system_.reset(); // waits for every actor
  pipeline_.reset();
}

} // namespace keel::runtime
