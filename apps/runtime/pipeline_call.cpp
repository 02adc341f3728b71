#include "pipeline_call.hpp"

#include <memory>

namespace keel::runtime {

namespace {

struct thread_caller {
  std::unique_ptr<caf::scoped_actor> self;
  caf::actor_system* owner = nullptr;
};

thread_caller& slot() {
  thread_local thread_caller x;
  return x;
}

} // namespace

caf::scoped_actor& caller(caf::actor_system& sys) {
  auto& x = slot();
  if (!x.self || x.owner != &sys) {
    x.self.reset();
    x.self = std::make_unique<caf::scoped_actor>(sys);
    x.owner = &sys;
  }
  return *x.self;
}

void drop_caller() {
  slot().self.reset();
}

} // namespace keel::runtime
