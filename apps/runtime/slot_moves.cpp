// Slot moves between the nodes of a cluster. The controller gives a slot to
// another node in a new map; the node that holds it then
//   1. stops taking work for it (freezes it: new orders, stock requests and
//      re-drives of its orders are refused or answered 503);
//   2. waits until its sagas rest (every order of the slot ended or parked,
//      none in flight);
//   3. copies the slot's streams - orders, payments, shipments, stock and
//      catalogue entries - with their event ids to the new owner, which
//      appends what it lacks, until a pass finds nothing new;
//   4. tells the new owner the copy is complete (it forgets what it cached
//      of the slot's SKUs) and deletes its slot key by compare-and-swap;
// and the new owner claims the slot (a new fencing token) and re-drives the
// slot's unfinished orders. A failure at any step thaws the slot where it
// was; the copy is idempotent (by event id), so the next try resumes it.

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <spdlog/spdlog.h>

#include "cluster_state.hpp"
#include "keel/actors/catalog.hpp"
#include "keel/actors/messages.hpp"
#include "keel/actors/pipeline.hpp"
#include "keel/events/error.hpp"
#include "keel/events/streams.hpp"
#include "keel/storage/event_store.hpp"
#include "pipeline_call.hpp"

namespace keel::runtime {

namespace {

constexpr std::size_t events_per_message = 256;
constexpr auto rest_timeout = std::chrono::seconds(10);
constexpr auto copy_timeout = std::chrono::seconds(10);
constexpr auto retry_delay = std::chrono::seconds(2);

/// The key a stream belongs to (an order id or a SKU); empty for the
/// node's own streams ($system-...), which never move.
std::string_view key_of_stream(std::string_view stream, bool* sku = nullptr) {
  for (auto p : {events::order_prefix, events::payment_prefix, events::shipment_prefix,
                 events::stock_prefix, events::catalog_prefix})
    if (stream.substr(0, p.size()) == p) {
      if (sku != nullptr)
        *sku = p == events::stock_prefix || p == events::catalog_prefix;
      return stream.substr(p.size());
    }
  return {};
}

/// The streams of `slot` in `store` with their last versions.
caf::expected<std::vector<storage::stream_info>>
streams_of(const storage::event_store& store, std::uint32_t slot, std::uint32_t slots,
           std::string_view only_prefix = {}) {
  std::vector<storage::stream_info> out;
  std::string after;
  for (;;) {
    auto page = store.list_streams(only_prefix, 1000, after);
    if (!page)
      return page.error();
    if (page->empty())
      return out;
    for (auto& info : *page) {
      auto key = key_of_stream(info.stream);
      if (!key.empty() && cluster::slot_of(key, slots) == slot)
        out.push_back(info);
    }
    after = page->back().stream;
  }
}

} // namespace

void cluster_link::impl::activate() {
  if (pipeline == nullptr || agent.load() == nullptr)
    return;
  std::set<std::uint32_t> fresh;
  {
    std::set<std::uint32_t> now;
    for (std::uint32_t s = 0; s < slots; ++s)
      if (serving(s))
        now.insert(s);
    std::lock_guard<std::mutex> guard{slots_mtx};
    for (auto s : now)
      if (active.count(s) == 0)
        fresh.insert(s);
    active = std::move(now);
  }
  if (fresh.empty())
    return;
  auto n = slots;
  auto r = pipeline->redrive([&](const std::string& id) {
    return fresh.count(cluster::slot_of(id, n)) != 0;
  });
  if (!r) {
    spdlog::error("component=cluster msg=\"re-driving the orders of new slots failed\" "
                  "error=\"{}\"",
                  describe(r.error()));
    std::lock_guard<std::mutex> guard{slots_mtx};
    for (auto s : fresh)
      active.erase(s); // tried again on the next round
    return;
  }
  spdlog::info("component=cluster msg=\"serving slots\" slots={} orders={} redriven={} "
               "parked={} quarantined={}",
               fresh.size(), r->orders, r->redriven, r->parked, r->quarantined);
  for (auto& [stream, why] : r->quarantine)
    spdlog::warn("component=node msg=\"order stream does not fold; left alone\" stream={} "
                 "error=\"{}\"",
                 stream, why);
}

void cluster_link::impl::move_loop() {
  std::unique_lock<std::mutex> guard{mtx};
  while (!stopping) {
    cv.wait_for(guard, std::chrono::milliseconds(200), [this] { return stopping; });
    if (stopping)
      break;
    guard.unlock();
    activate();
    auto* a = agent.load();
    if (a != nullptr) {
      // Slots handed over: thawed once the view shows them gone from here.
      std::lock_guard<std::mutex> g{slots_mtx};
      for (auto it = frozen.begin(); it != frozen.end();)
        if (!a->serves(*it)) {
          stock_frozen.erase(*it);
          it = frozen.erase(it);
        } else {
          ++it;
        }
    }
    if (a != nullptr && a->live()) {
      auto v = a->view();
      auto now = clock::now();
      for (std::uint32_t s = 0; s < v->slots; ++s) {
        // Slots go to groups; the copy goes to the group's primary.
        auto& to = v->map.owners[s];
        if (!a->serves(s) || to.empty() || to == a->group())
          continue;
        auto* primary = v->primary(to);
        if (primary == nullptr || !handle(primary->node_id))
          continue;
        {
          std::lock_guard<std::mutex> g{slots_mtx};
          if (frozen.count(s) != 0) // handed over; the view has not caught up
            continue;
          if (auto i = retry_at.find(s); i != retry_at.end() && now < i->second)
            continue;
        }
        hand_over(s, to, primary->node_id);
        break; // one slot at a time; the view changed
      }
    }
    guard.lock();
  }
  guard.unlock();
  drop_caller();
}

bool cluster_link::impl::hand_over(std::uint32_t slot, const std::string& to,
                                   const std::string& node) {
  auto t0 = clock::now();
  auto peer = handle(node);
  if (!peer)
    return false;
  {
    std::lock_guard<std::mutex> guard{slots_mtx};
    frozen.insert(slot);
  }
  spdlog::info("component=cluster msg=\"moving a slot\" slot={} to={}", slot, to);
  auto fail = [&](const std::string& why) {
    spdlog::warn("component=cluster msg=\"slot move failed; the slot stays here\" slot={} to={} "
                 "why=\"{}\"",
                 slot, to, why);
    move_failures.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard<std::mutex> guard{slots_mtx};
    frozen.erase(slot);
    stock_frozen.erase(slot);
    active.erase(slot); // its orders are re-driven: the freeze dropped re-drives
    retry_at[slot] = clock::now() + retry_delay;
    return false;
  };
  auto is_stopping = [this] {
    std::lock_guard<std::mutex> guard{mtx};
    return stopping;
  };
  // 2. Its sagas rest: none in flight, every order ended or parked.
  std::string restless;
  for (auto deadline = clock::now() + rest_timeout;;) {
    bool resting = true;
    auto busy = call<std::vector<std::string>>(*sys, pipeline->orders(), cfg.call_timeout,
                                               actors::in_flight_atom::value);
    if (!busy)
      return fail("the orders actor did not answer: " + sys->render(busy.error()));
    for (auto& id : *busy)
      if (cluster::slot_of(id, slots) == slot) {
        resting = false;
        restless = "order " + id + " has a saga in flight";
      }
    if (resting) {
      auto orders = streams_of(*store, slot, slots, events::order_prefix);
      if (!orders)
        return fail(describe(orders.error()));
      for (auto& info : *orders) {
        auto st = actors::load_order(*store, info.stream.substr(events::order_prefix.size()));
        if (st && !actors::is_terminal(st->status)
            && st->status != actors::order_status::pending_payment
            && st->status != actors::order_status::none) {
          resting = false;
          restless = info.stream + " is " + to_string(st->status);
          break;
        }
      }
    }
    if (resting)
      break;
    if (clock::now() > deadline || is_stopping())
      return fail("its sagas did not come to rest within 10 s (" + restless + ")");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // 3. Its stock too stops taking requests (sagas retry them at the new
  // owner); copy until a pass finds nothing new (appends in flight at the
  // freeze land within milliseconds).
  {
    std::lock_guard<std::mutex> guard{slots_mtx};
    stock_frozen.insert(slot);
  }
  // A barrier per SKU: the inventory drops a SKU's cached state only once no
  // append of it is in flight, and answers after the requests queued before.
  auto stock = streams_of(*store, slot, slots, events::stock_prefix);
  if (!stock)
    return fail(describe(stock.error()));
  for (auto& info : *stock) {
    auto sku = info.stream.substr(events::stock_prefix.size());
    for (auto deadline = clock::now() + rest_timeout;;) {
      auto dropped = call<actors::stock_reply>(*sys, local_inventory, cfg.call_timeout,
                                               actors::forget_atom::value, sku);
      if (dropped && dropped->ok)
        break;
      if (clock::now() > deadline || is_stopping())
        return fail("the stock of " + sku + " kept an append in flight");
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  // Each pass sends what the streams gained since the last one, in this
  // store's log order (the new owner appends in that order: its projections
  // must see an order placed before its payment, its payment before its end).
  std::map<std::string, std::uint64_t> sent;
  std::set<std::string> skus;
  std::uint64_t events = 0;
  for (int pass = 0;; ++pass) {
    auto list = streams_of(*store, slot, slots);
    if (!list)
      return fail(describe(list.error()));
    std::vector<std::pair<std::uint64_t, slot_event>> todo; // by log position
    for (auto& info : *list) {
      bool sku = false;
      auto key = key_of_stream(info.stream, &sku);
      if (sku)
        skus.insert(std::string{key});
      auto done = sent[info.stream];
      if (done >= info.last_version)
        continue;
      auto reader = store->read_stream(info.stream, done + 1);
      while (reader.next()) {
        auto& r = reader.current();
        todo.emplace_back(r.position,
                          slot_event{info.stream, r.version,
                                     {r.id, std::string{r.type}, r.schema_version, r.timestamp_us,
                                      r.correlation_id, r.causation_id, std::string{r.payload}}});
      }
      if (reader.error())
        return fail(describe(reader.error()));
    }
    if (todo.empty() && pass > 0)
      break;
    std::sort(todo.begin(), todo.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& [position, e] : todo) // what is sent once this pass succeeds
      sent[e.stream] = std::max(sent[e.stream], e.version);
    for (std::size_t at = 0; at < todo.size(); at += events_per_message) {
      slot_copy x{slot, {}};
      auto end = std::min(todo.size(), at + events_per_message);
      for (auto i = at; i < end; ++i)
        x.events.push_back(std::move(todo[i].second));
      auto last = x.events.back().stream;
      auto appended = call<std::uint64_t>(*sys, *peer, copy_timeout, std::move(x));
      if (!appended)
        return fail("copying slot " + std::to_string(slot) + " to " + to + " (at " + last
                    + "): " + sys->render(appended.error()));
    }
    events += todo.size();
    if (pass == 10 || is_stopping())
      return fail("its streams were still growing after 10 passes");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // 4. The new owner has it all: hand the key over.
  auto ok = call<bool>(*sys, *peer, copy_timeout,
                       slot_imported{slot, std::vector<std::string>(skus.begin(), skus.end())});
  if (!ok)
    return fail("telling " + to + " the copy is complete: " + sys->render(ok.error()));
  auto released = agent.load()->release(slot, to);
  if (!released || !*released)
    return fail(released ? "the slot key was no longer this node's"
                         : "releasing the slot key: " + describe(released.error()));
  auto secs = std::chrono::duration<double>(clock::now() - t0).count();
  moves_out.fetch_add(1, std::memory_order_relaxed);
  streams_sent.fetch_add(sent.size(), std::memory_order_relaxed);
  events_sent.fetch_add(events, std::memory_order_relaxed);
  move_seconds.observe(secs);
  spdlog::info("component=cluster msg=\"slot moved\" slot={} to={} streams={} events={} "
               "seconds={:.3f}",
               slot, to, sent.size(), events, secs);
  // The slot stays frozen here until this node's view shows the key gone
  // (move_loop thaws it then): until the watch catches up, the view still
  // names this node as the holder.
  std::lock_guard<std::mutex> guard{slots_mtx};
  active.erase(slot);
  return true;
}

caf::expected<std::uint64_t> cluster_link::impl::import(const slot_copy& x) {
  // Runs of one stream go to the committer as asynchronous appends, in the
  // order given: it takes appends in the order they come, so this store's
  // log keeps the sender's order. Events this store has are skipped (a copy
  // repeated after a failure adds nothing twice).
  struct pending {
    std::mutex mtx;
    std::condition_variable cv;
    std::size_t open = 0;
    std::uint64_t appended = 0;
    caf::error first;
  } w;
  auto failed = [&w](caf::error err) {
    std::lock_guard<std::mutex> guard{w.mtx};
    if (!w.first)
      w.first = std::move(err);
  };
  std::map<std::string, std::uint64_t> have;
  for (std::size_t i = 0; i < x.events.size();) {
    auto& stream = x.events[i].stream;
    auto j = i;
    while (j < x.events.size() && x.events[j].stream == stream)
      ++j;
    auto key = key_of_stream(stream);
    if (key.empty() || cluster::slot_of(key, slots) != x.slot) {
      failed(make_error(errc::invalid_argument,
                        stream + " is not a stream of slot " + std::to_string(x.slot)));
      break;
    }
    auto known = have.find(stream);
    if (known == have.end()) {
      auto v = store->stream_version(stream);
      if (!v) {
        failed(v.error());
        break;
      }
      known = have.emplace(stream, *v).first;
    }
    auto expected = known->second;
    std::vector<storage::new_event> run;
    bool gap = false;
    for (auto k = i; k < j && !gap; ++k) {
      auto& e = x.events[k];
      if (e.version <= known->second)
        continue; // this store has it
      gap = e.version != known->second + 1;
      if (gap)
        failed(make_error(errc::invalid_argument,
                          stream + ": event version " + std::to_string(e.version)
                            + " but this store has " + std::to_string(known->second)));
      else
        run.push_back(e.event);
      known->second = std::max(known->second, e.version);
    }
    {
      std::lock_guard<std::mutex> guard{w.mtx};
      if (w.first)
        break; // what was given to the committer is waited for below
      if (!run.empty())
        ++w.open;
    }
    if (!run.empty()) {
      auto n = run.size();
      store->append_async(stream, storage::expected_version::exact(expected), std::move(run),
                          [&w, n](caf::expected<storage::append_result> r) {
                            std::lock_guard<std::mutex> guard{w.mtx};
                            if (!r && !w.first)
                              w.first = std::move(r.error());
                            else if (r)
                              w.appended += n;
                            --w.open;
                            w.cv.notify_all();
                          });
    }
    i = j;
  }
  std::unique_lock<std::mutex> guard{w.mtx};
  w.cv.wait(guard, [&w] { return w.open == 0; });
  if (w.first)
    return std::move(w.first);
  return w.appended;
}

void cluster_link::impl::imported(const slot_imported& x) {
  moves_in.fetch_add(1, std::memory_order_relaxed);
  for (auto& sku : x.skus) {
    if (catalog != nullptr)
      if (auto err = catalog->reload(sku))
        spdlog::error("component=cluster msg=\"reloading a moved catalogue entry failed\" "
                      "sku={} error=\"{}\"",
                      sku, describe(err));
  }
  spdlog::info("component=cluster msg=\"slot copied here\" slot={} skus={}", x.slot,
               x.skus.size());
}

} // namespace keel::runtime
