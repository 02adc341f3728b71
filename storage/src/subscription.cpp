#include "keel/storage/subscription.hpp"

#include <thread>

#include <pthread.h>

#include "keel/events/error.hpp"
#include "keel/storage/event_store.hpp"
#include "state.hpp"

namespace keel::storage {

struct subscription::impl {
  const event_store* store = nullptr;
  store_state* state = nullptr;
  handler fn;
  subscription::options opts;
  std::atomic<std::uint64_t> next{1};
  std::atomic<bool> stop_requested{false};
  std::atomic<bool> active{true};
  mutable std::mutex err_mtx;
  caf::error err;
  std::thread thread;

  void run();
  void fail(caf::error e) {
    std::lock_guard<std::mutex> guard{err_mtx};
    err = std::move(e);
  }
};

void subscription::impl::run() {
  record_batch batch;
  while (!stop_requested.load()) {
    auto from = next.load();
    auto last = state->last_position.load(std::memory_order_acquire);
    if (last < from) {
      // Caught up: sleep until the committer publishes a new position.
      std::unique_lock<std::mutex> guard{state->commit_mtx};
      state->commit_cv.wait(guard, [&] {
        return stop_requested.load() || state->last_position.load() >= from;
      });
      continue;
    }
    auto reader = store->read_all(from, last - from + 1);
    while (!stop_requested.load()) {
      // Copy each record out of the iterator before it moves on, so the views
      // stay valid for the handler.
      batch.clear();
      while (batch.size() < opts.max_batch && reader.next())
        batch.add(reader.current());
      if (!batch.empty()) {
        auto& views = batch.views();
        auto keep_going = fn(views);
        next = views.back().position + 1;
        if (!keep_going) {
          active = false;
          return;
        }
      }
      if (auto& e = reader.error()) {
        // Everything before the failing record was delivered.
        fail(e);
        active = false;
        if (opts.on_error)
          opts.on_error(e);
        return;
      }
      if (batch.empty())
        break;
    }
  }
  active = false;
}

subscription::subscription(std::unique_ptr<impl> ptr) : impl_(std::move(ptr)) {
}

subscription::~subscription() {
  stop();
}

void subscription::stop() {
  if (!impl_ || !impl_->thread.joinable())
    return;
  impl_->stop_requested = true;
  {
    // Take the lock so the wake-up cannot slip between its check and its wait.
    std::lock_guard<std::mutex> guard{impl_->state->commit_mtx};
  }
  impl_->state->commit_cv.notify_all();
  impl_->thread.join();
}

std::uint64_t subscription::next_position() const noexcept {
  return impl_->next.load();
}

caf::error subscription::error() const {
  std::lock_guard<std::mutex> guard{impl_->err_mtx};
  return impl_->err;
}

bool subscription::running() const noexcept {
  return impl_->active.load();
}

std::unique_ptr<subscription> event_store::subscribe(std::uint64_t from_position,
                                                     subscription::handler handler,
                                                     subscription::options opts) const {
  auto p = std::make_unique<subscription::impl>();
  p->store = this;
  p->state = state_.get();
  p->fn = std::move(handler);
  p->opts = opts;
  if (p->opts.max_batch == 0)
    p->opts.max_batch = 1;
  p->next = from_position == 0 ? 1 : from_position;
  auto raw = p.get();
  auto result = std::make_unique<subscription>(std::move(p));
  raw->thread = std::thread{[raw] {
    ::pthread_setname_np(::pthread_self(), "keel-subscribe");
    raw->run();
  }};
  return result;
}

} // namespace keel::storage
