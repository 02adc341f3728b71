#include "service_actor.hpp"

#include <exception>

#include <caf/actor_control_block.hpp>
#include <caf/make_message.hpp>

#include "keel/events/error.hpp"

namespace keel::actors {

namespace {

caf::error on_crash(caf::scheduled_actor* self, std::exception_ptr& eptr) {
  std::string what = "unknown exception";
  try {
    std::rethrow_exception(eptr);
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
  }
  auto err = make_error(errc::actor_crashed, std::string{self->name()} + ": " + what);
  // CAF bounces the current request with request_receiver_down; answer it
  // first with the typed error so the caller learns what happened.
  if (auto* x = self->current_mailbox_element(); x != nullptr && x->mid.is_request()
                                                 && x->sender != nullptr)
    x->sender->enqueue(caf::make_mailbox_element(self->ctrl(), x->mid.response_id(), {}, err),
                       self->context());
  return err;
}

} // namespace

service_actor::service_actor(caf::actor_config& cfg, std::string name, std::size_t capacity,
                             std::shared_ptr<bulkhead_gauge> gauge)
  : caf::event_based_actor(cfg), name_(std::move(name)), gauge_(std::move(gauge)) {
  gauge_->capacity = static_cast<std::int64_t>(capacity);
  gauge_->in_use = 0;
  set_exception_handler(on_crash);
}

void service_actor::enqueue(caf::mailbox_element_ptr ptr, caf::execution_unit* eu) {
  if (ptr == nullptr || !ptr->mid.is_request()) {
    caf::event_based_actor::enqueue(std::move(ptr), eu);
    return;
  }
  auto cap = gauge_->capacity.load(std::memory_order_relaxed);
  if (gauge_->in_use.fetch_add(1, std::memory_order_acq_rel) >= cap) {
    gauge_->in_use.fetch_sub(1, std::memory_order_acq_rel);
    gauge_->rejected.fetch_add(1, std::memory_order_relaxed);
    if (ptr->sender != nullptr) {
      auto err = make_error(errc::overloaded, name_ + ": all " + std::to_string(cap)
                                                + " slots of its bulkhead are in use");
      ptr->sender->enqueue(caf::make_mailbox_element(ctrl(), ptr->mid.response_id(), {},
                                                     std::move(err)),
                           eu);
    }
    return;
  }
  gauge_->admitted.fetch_add(1, std::memory_order_relaxed);
  caf::event_based_actor::enqueue(std::move(ptr), eu);
}

void service_actor::release() noexcept {
  gauge_->in_use.fetch_sub(1, std::memory_order_acq_rel);
}

} // namespace keel::actors
