// The outbox relay: global log -> Kafka, checkpoint after delivery reports.
//
// Threads: the subscription's thread reads the log, renders each event and
// produces it (or marks a system event done); the relay's own thread serves
// delivery reports (rd_kafka_poll), produces failed events again after a
// backoff, replaces the producer after a fatal error and saves the
// checkpoint. Both share `mtx`; the producer handle is shared to produce and
// poll and exclusive only to replace or close it. The relay thread sleeps on
// `wake_cv` until librdkafka has events for it (its queue-event callback), a
// retry or a checkpoint save is due, or `stop` asks it to drain.

#include <algorithm>
#include <charconv>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "delivery_window.hpp"
#include "kafka_client.hpp"
#include "keel/events/error.hpp"
#include "keel/events/json.hpp"
#include "keel/storage/event_store.hpp"
#include "keel/storage/kafka.hpp"

namespace keel::storage {

using namespace kafka_detail;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

static_assert(sizeof(std::uintptr_t) >= sizeof(std::uint64_t),
              "positions travel as librdkafka's per-message opaque pointer");

void* opaque_of(std::uint64_t position) {
  return reinterpret_cast<void*>(static_cast<std::uintptr_t>(position));
}

std::uint64_t position_of(const void* opaque) {
  return static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(opaque));
}

bool purged(rd_kafka_resp_err_t err) {
  return err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT;
}

// Backoff before producing an event again: 50 ms, doubling up to 5 s.
steady::duration backoff(unsigned attempts) {
  auto shift = std::min(attempts, 8u);
  return std::min<steady::duration>(50ms * (1u << shift) / 2, 5s);
}

// Per topic, per partition, an offset every later message lies beyond.
// Looked up by the topic's name as librdkafka holds it (no string built
// per delivery report).
using offsets = std::map<std::string, std::map<std::int32_t, std::int64_t>, std::less<>>;

std::int64_t& offset_of(offsets& o, std::string_view topic, std::int32_t partition) {
  auto t = o.find(topic);
  if (t == o.end())
    t = o.emplace(std::string{topic}, std::map<std::int32_t, std::int64_t>{}).first;
  return t->second.try_emplace(partition, -1).first->second;
}

// A whole decimal number; false for anything else.
template <class Int>
bool number(std::string_view text, Int& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && end == text.data() + text.size() && !text.empty();
}

// "topic:partition:offset;..." (topic names have no ':' or ';').
std::string encode(const offsets& o) {
  std::string out;
  for (auto& [topic, partitions] : o)
    for (auto& [partition, offset] : partitions)
      out += topic + ':' + std::to_string(partition) + ':' + std::to_string(offset) + ';';
  return out;
}

bool decode(std::string_view text, offsets& out) {
  while (!text.empty()) {
    auto end = text.find(';');
    auto a = text.find(':');
    auto b = a == std::string_view::npos ? a : text.find(':', a + 1);
    std::int32_t partition = 0;
    std::int64_t offset = 0;
    if (end == std::string_view::npos || b == std::string_view::npos || b > end
        || !number(text.substr(a + 1, b - a - 1), partition)
        || !number(text.substr(b + 1, end - b - 1), offset))
      return false;
    offset_of(out, text.substr(0, a), partition) = offset;
    text.remove_prefix(end + 1);
  }
  return true;
}

std::string_view header_of(rd_kafka_headers_t* hdrs, const char* name) {
  const void* value = nullptr;
  std::size_t size = 0;
  if (hdrs == nullptr || rd_kafka_header_get_last(hdrs, name, &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR
      || value == nullptr)
    return {};
  return {static_cast<const char*>(value), size};
}

// What the start found in the topics.
struct found_in_topics {
  offsets last;                     // high watermark - 1 of every partition
  std::set<std::uint64_t> positions; // the origin's events past the checkpoint
};

// Reads every partition of `topics` from just past `from` (from its start
// where `from` has no mark; nothing at all without `from`) to its high
// watermark, and collects the positions after `after` that messages of
// `origin` carry.
caf::expected<found_in_topics> read_topics(const std::string& bootstrap, const std::string& client_id,
                                           const kafka_settings& security,
                                           const std::vector<kafka_topic_info>& topics,
                                           const std::string& origin, const offsets* from,
                                           std::uint64_t after, std::chrono::milliseconds timeout) {
  auto deadline = steady::now() + timeout;
  auto conf = make_conf(bootstrap, client_id + "-outbox-start", security);
  if (auto err = set(conf.get(), {{"group.id", "keel-outbox-start"},
                                  {"enable.auto.commit", "false"},
                                  {"enable.auto.offset.store", "false"},
                                  {"enable.partition.eof", "true"}}))
    return err;
  auto rk = make_handle(RD_KAFKA_CONSUMER, std::move(conf));
  if (!rk)
    return rk.error();
  found_in_topics out;
  std::unique_ptr<rd_kafka_topic_partition_list_t, void (*)(rd_kafka_topic_partition_list_t*)> parts{
    rd_kafka_topic_partition_list_new(64), rd_kafka_topic_partition_list_destroy};
  std::set<std::pair<std::string, std::int32_t>> open;
  for (auto& t : topics) {
    for (std::int32_t p = 0; p < t.partitions; ++p) {
      std::int64_t lo = 0;
      std::int64_t hi = 0;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
      auto err = rd_kafka_query_watermark_offsets(rk->get(), t.name.c_str(), p, &lo, &hi,
                                                  static_cast<int>(std::max<std::int64_t>(left.count(), 1)));
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
        return to_error(err, "reading the offsets of " + t.name + "/" + std::to_string(p));
      offset_of(out.last, t.name, p) = hi - 1;
      if (from == nullptr)
        continue;
      auto start = lo; // a partition without a mark: from its start
      if (auto m = from->find(t.name); m != from->end())
        if (auto q = m->second.find(p); q != m->second.end())
          start = std::max(q->second + 1, lo);
      if (start >= hi)
        continue;
      rd_kafka_topic_partition_list_add(parts.get(), t.name.c_str(), p)->offset = start;
      open.insert({t.name, p});
    }
  }
  if (open.empty())
    return out;
  auto err = rd_kafka_assign(rk->get(), parts.get());
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    return to_error(err, "reading the topics from the outbox's marks");
  while (!open.empty()) {
    if (steady::now() >= deadline) {
      rd_kafka_consumer_close(rk->get());
      return make_error(errc::timeout, "reading the topics from the outbox's marks took longer than "
                                         + std::to_string(timeout.count()) + " ms");
    }
    auto* msg = rd_kafka_consumer_poll(rk->get(), 100);
    if (msg == nullptr)
      continue;
    std::unique_ptr<rd_kafka_message_t, void (*)(rd_kafka_message_t*)> guard{msg,
                                                                              rd_kafka_message_destroy};
    if (msg->rkt == nullptr)
      continue;
    std::pair<std::string, std::int32_t> tp{rd_kafka_topic_name(msg->rkt), msg->partition};
    if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      open.erase(tp);
      continue;
    }
    if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_consumer_close(rk->get());
      return to_error(msg->err, "reading " + tp.first + "/" + std::to_string(tp.second));
    }
    rd_kafka_headers_t* hdrs = nullptr;
    std::uint64_t position = 0;
    if (rd_kafka_message_headers(msg, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR
        && header_of(hdrs, "origin") == origin && number(header_of(hdrs, "position"), position)
        && position > after)
      out.positions.insert(position);
    if (msg->offset >= offset_of(out.last, tp.first, tp.second))
      open.erase(tp);
  }
  rd_kafka_consumer_close(rk->get());
  return out;
}

} // namespace

std::string outbox_marks_key(std::string_view checkpoint) {
  return std::string{checkpoint} + "/marks";
}

struct outbox_relay::impl {
  std::shared_ptr<event_store> store;
  outbox_options opts;
  std::string bootstrap;
  std::string client_id;
  kafka_settings security;

  std::shared_mutex producer_mtx;
  client producer;

  // Guards `window` to `closing`.
  mutable std::mutex mtx;
  std::condition_variable room; // the window has room, or reading stopped
  delivery_window window;
  std::uint64_t saved = 0;
  std::atomic<std::uint64_t> saved_now{0}; // `saved`, readable without `mtx`
  // Positions that failed, by attempts so far (erased on delivery), and
  // when each is due to be produced again.
  std::map<std::uint64_t, unsigned> attempts;
  std::multimap<steady::time_point, std::uint64_t> due;
  // With an origin: the highest offset reported delivered per partition, the
  // marks taken before first producing a position (oldest first), the
  // positions found published at start and the marks saved with `saved`.
  offsets delivered_at;
  std::deque<std::pair<std::uint64_t, std::string>> marks;
  steady::time_point last_mark{};
  std::set<std::uint64_t> skip;
  std::uint64_t found_up_to = 0;
  std::uint64_t found_published = 0;
  std::string saved_marks;
  std::uint64_t produced = 0;
  std::uint64_t delivered = 0;
  std::uint64_t failures = 0;
  std::string error;
  bool reading_stopped = false;
  bool closing = false; // purge reports at close are not failures

  // The relay thread's wake-up: set by librdkafka (events queued), by
  // `send` (a retry scheduled) and by `stop`.
  std::mutex wake_mtx;
  std::condition_variable wake_cv;
  bool wake = false;

  std::atomic<bool> draining{false};
  std::atomic<bool> fatal{false};
  steady::time_point drain_deadline; // written before `draining`
  std::unique_ptr<subscription> sub;
  std::thread thread;
  std::mutex stop_mtx;
  bool stopped = false;

  caf::expected<client> make_producer();
  bool on_batch(const std::vector<events::record_view>& batch);
  void send(const events::record& rec, const std::string& topic);
  void schedule(std::uint64_t position);
  void on_report(const rd_kafka_message_t& msg);
  bool wait_until_allowed();
  void produce_due();
  void replace_producer();
  void save_checkpoint();
  void run();
  void close_producer();
  void notify() {
    {
      std::lock_guard<std::mutex> guard{wake_mtx};
      wake = true;
    }
    wake_cv.notify_one();
  }

  // Runs on a librdkafka thread when the producer's main queue (delivery
  // reports, errors) goes from empty to non-empty.
  static void queue_cb(rd_kafka_t*, void* opaque) {
    static_cast<impl*>(opaque)->notify();
  }

  static void delivery_cb(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
    static_cast<impl*>(opaque)->on_report(*msg);
  }

  static void error_cb(rd_kafka_t*, int err, const char* reason, void* opaque) {
    auto* self = static_cast<impl*>(opaque);
    std::lock_guard<std::mutex> guard{self->mtx};
    self->error = reason;
    if (err == RD_KAFKA_RESP_ERR__FATAL)
      self->fatal = true;
  }
};

caf::expected<client> outbox_relay::impl::make_producer() {
  auto conf = make_conf(bootstrap, client_id + "-outbox", security);
  auto queue_max = std::clamp<std::size_t>(opts.max_in_flight + 1000, 100000, 10000000);
  // Idempotence keeps each partition in order and free of duplicates across
  // librdkafka's own retries. Events may be up to 4 MiB (and more as JSON),
  // so the local message limit is raised; a broker's limit still applies.
  auto err = set(conf.get(), {{"enable.idempotence", "true"},
                              {"acks", "all"},
                              {"linger.ms", "5"},
                              {"partitioner", "murmur2_random"},
                              {"message.max.bytes", "33554432"},
                              {"queue.buffering.max.messages", std::to_string(queue_max)},
                              {"message.timeout.ms", std::to_string(opts.delivery_timeout.count())}});
  if (err)
    return err;
  rd_kafka_conf_set_dr_msg_cb(conf.get(), delivery_cb);
  rd_kafka_conf_set_error_cb(conf.get(), error_cb);
  rd_kafka_conf_set_opaque(conf.get(), this);
  std::vector<std::string> topics;
  for (auto& name : keel_topics())
    if (name != retry_topic_name)
      topics.push_back(name);
  auto rk = make_client(RD_KAFKA_PRODUCER, std::move(conf), topics);
  if (rk) {
    auto* main_queue = rd_kafka_queue_get_main(rk->get());
    rd_kafka_queue_cb_event_enable(main_queue, queue_cb, this);
    rd_kafka_queue_destroy(main_queue); // the handle keeps the queue
  }
  return rk;
}

// A replicated group's primary produces only while its lease holds (checked
// once per batch of the log).
bool outbox_relay::impl::wait_until_allowed() {
  while (opts.may_publish && !opts.may_publish()) {
    {
      std::lock_guard<std::mutex> guard{mtx};
      if (reading_stopped)
        return false;
    }
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

bool outbox_relay::impl::on_batch(const std::vector<events::record_view>& batch) {
  if (!wait_until_allowed())
    return false;
  for (auto& view : batch) {
    auto topic = topic_of(view.stream);
    bool publish = !topic.empty();
    {
      std::unique_lock<std::mutex> guard{mtx};
      room.wait(guard, [&] { return reading_stopped || window.size() < opts.max_in_flight; });
      if (reading_stopped)
        return false;
      if (publish && skip.erase(view.position) > 0) {
        publish = false; // in the topics already (a previous primary's)
        ++found_published;
      }
      if (!window.add(view.position, view.timestamp_us, !publish)) {
        error = "the log skipped from position " + std::to_string(window.last()) + " to "
                + std::to_string(view.position);
        return false;
      }
      // Marks taken before this position is first produced: every message
      // of it and of later positions lies beyond them. Not while positions
      // another primary published (below the marks the relay started
      // with) are still ahead.
      auto now = steady::now();
      if (publish && !opts.origin.empty() && view.position > found_up_to
          && now - last_mark >= 50ms) {
        marks.emplace_back(view.position, encode(delivered_at));
        last_mark = now;
      }
    }
    if (publish)
      send(view.to_record(), topic);
  }
  return true;
}

void outbox_relay::impl::send(const events::record& rec, const std::string& topic) {
  auto value = events::dump_json(events::to_json_value(rec));
  auto event_id = events::to_string(rec.id);
  auto correlation_id = events::to_string(rec.correlation_id);
  auto* hdrs = rd_kafka_headers_new(5);
  auto add = [hdrs](const char* name, const std::string& v) {
    rd_kafka_header_add(hdrs, name, -1, v.data(), static_cast<ssize_t>(v.size()));
  };
  add("type", rec.type);
  add("event_id", event_id);
  add("correlation_id", correlation_id);
  if (!opts.origin.empty()) {
    add("origin", opts.origin);
    add("position", std::to_string(rec.position));
  }
  rd_kafka_resp_err_t err;
  {
    std::shared_lock<std::shared_mutex> guard{producer_mtx};
    err = rd_kafka_producev(
      producer.get(), RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
      RD_KAFKA_V_KEY(rec.stream.data(), rec.stream.size()),
      RD_KAFKA_V_VALUE(value.data(), value.size()), RD_KAFKA_V_HEADERS(hdrs),
      RD_KAFKA_V_OPAQUE(opaque_of(rec.position)), RD_KAFKA_V_END);
  }
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    rd_kafka_headers_destroy(hdrs); // taken over only on success
  {
    std::lock_guard<std::mutex> guard{mtx};
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      ++produced;
      return;
    }
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      ++failures;
      error = "producing position " + std::to_string(rec.position) + ": " + rd_kafka_err2str(err);
    }
    if (err == RD_KAFKA_RESP_ERR__FATAL)
      fatal = true;
    schedule(rec.position);
  }
  notify(); // the relay thread re-plans its sleep around the retry
}

// Requires `mtx`.
void outbox_relay::impl::schedule(std::uint64_t position) {
  auto n = ++attempts[position];
  due.emplace(steady::now() + backoff(n), position);
}

void outbox_relay::impl::on_report(const rd_kafka_message_t& msg) {
  auto position = position_of(msg._private);
  auto err = msg.err;
  std::lock_guard<std::mutex> guard{mtx};
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    ++delivered;
    if (!opts.origin.empty() && msg.rkt != nullptr) {
      auto& at = offset_of(delivered_at, rd_kafka_topic_name(msg.rkt), msg.partition);
      at = std::max(at, msg.offset);
    }
    attempts.erase(position);
    if (window.confirm(position))
      room.notify_all();
    return;
  }
  if (closing && purged(err))
    return; // stop gave up on it: the checkpoint stays before it
  ++failures;
  error = "delivering position " + std::to_string(position) + ": " + rd_kafka_err2str(err);
  schedule(position);
}

void outbox_relay::impl::produce_due() {
  std::vector<std::uint64_t> positions;
  bool allowed = !opts.may_publish || opts.may_publish();
  {
    std::lock_guard<std::mutex> guard{mtx};
    auto now = steady::now();
    if (!allowed) { // not now: due again in a moment
      std::multimap<steady::time_point, std::uint64_t> later;
      for (auto& [at, position] : due)
        later.emplace(std::max(at, now + 50ms), position);
      due.swap(later);
      return;
    }
    while (!due.empty() && due.begin()->first <= now) {
      positions.push_back(due.begin()->second);
      due.erase(due.begin());
    }
  }
  for (auto position : positions) {
    auto rec = store->read_event(position);
    if (!rec) {
      std::lock_guard<std::mutex> guard{mtx};
      error = "reading position " + std::to_string(position) + ": " + describe(rec.error());
      schedule(position);
      continue;
    }
    send(*rec, topic_of(rec->stream));
  }
}

// After a fatal error (idempotence state lost) the producer accepts nothing:
// a new one takes over, and what the old one held is produced again.
void outbox_relay::impl::replace_producer() {
  auto fresh = make_producer();
  if (!fresh) {
    std::lock_guard<std::mutex> guard{mtx};
    error = "replacing the kafka producer: " + describe(fresh.error());
    return;
  }
  std::unique_lock<std::shared_mutex> guard{producer_mtx};
  rd_kafka_purge(producer.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  for (int i = 0; i < 100 && rd_kafka_outq_len(producer.get()) > 0; ++i)
    rd_kafka_poll(producer.get(), 10); // purge reports: scheduled again
  producer.reset();
  producer = std::move(*fresh);
  fatal = false;
}

void outbox_relay::impl::save_checkpoint() {
  std::uint64_t target;
  std::string m;
  {
    std::lock_guard<std::mutex> guard{mtx};
    target = window.confirmed();
    if (target <= saved)
      return;
    if (!opts.origin.empty()) {
      // The last marks taken before a position after `target` was first
      // produced (the first ones were taken at start, before anything).
      while (marks.size() >= 2 && marks[1].first <= target + 1)
        marks.pop_front();
      if (!marks.empty())
        m = marks.front().second;
    }
  }
  write_batch wb;
  wb.set_checkpoint(opts.checkpoint, target);
  if (!opts.origin.empty())
    wb.put(outbox_marks_key(opts.checkpoint), m);
  // No fsync: a checkpoint lost in a power cut only means a longer read of
  // the topics at the next start (or, without an origin, duplicates).
  auto err = store->commit(std::move(wb), false);
  std::lock_guard<std::mutex> guard{mtx};
  if (err) {
    error = "saving the outbox checkpoint: " + describe(err);
  } else {
    saved = target;
    saved_marks = std::move(m);
    saved_now.store(target, std::memory_order_release);
  }
}

void outbox_relay::impl::run() {
  auto last_save = steady::now();
  for (;;) {
    auto now = steady::now();
    // Idle, nothing wakes it before a second passes (a safety net only).
    auto until = now + 1s;
    {
      std::lock_guard<std::mutex> guard{mtx};
      if (draining && (window.size() == 0 || now >= drain_deadline))
        break;
      if (draining)
        until = std::min(until, drain_deadline);
      if (!due.empty())
        until = std::min(until, due.begin()->first);
      if (window.confirmed() > saved)
        until = std::min(until, last_save + opts.commit_interval);
    }
    {
      std::unique_lock<std::mutex> guard{wake_mtx};
      wake_cv.wait_until(guard, until, [this] { return wake; });
      wake = false;
    }
    {
      std::shared_lock<std::shared_mutex> guard{producer_mtx};
      rd_kafka_poll(producer.get(), 0);
    }
    if (fatal)
      replace_producer();
    produce_due();
    if (steady::now() - last_save >= opts.commit_interval) {
      save_checkpoint();
      last_save = steady::now();
    }
  }
  save_checkpoint();
  close_producer();
}

void outbox_relay::impl::close_producer() {
  {
    std::lock_guard<std::mutex> guard{mtx};
    closing = true;
  }
  std::unique_lock<std::shared_mutex> guard{producer_mtx};
  rd_kafka_purge(producer.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  for (int i = 0; i < 100 && rd_kafka_outq_len(producer.get()) > 0; ++i)
    rd_kafka_poll(producer.get(), 10);
  producer.reset();
}

caf::expected<std::unique_ptr<outbox_relay>>
outbox_relay::start(std::shared_ptr<event_store> store, const kafka_cluster& cluster,
                    outbox_options opts) {
  if (!store || opts.checkpoint.empty() || opts.max_in_flight == 0
      || opts.commit_interval <= 0ms || opts.delivery_timeout <= 0ms || opts.stop_timeout < 0ms)
    return make_error(errc::invalid_argument,
                      "outbox relay needs a store, a checkpoint name, max_in_flight > 0 and "
                      "positive intervals");
  auto cp = store->load_checkpoint(opts.checkpoint);
  if (!cp)
    return cp.error();
  auto s = std::make_unique<impl>();
  s->store = std::move(store);
  s->opts = std::move(opts);
  s->bootstrap = cluster.bootstrap_servers();
  s->client_id = cluster.options().client_id;
  s->security = cluster.options().security;
  s->saved = *cp ? (*cp)->position : 0;
  s->saved_now = s->saved;
  s->window = delivery_window{s->saved};
  if (!s->opts.origin.empty()) {
    // What a primary that died published past the checkpoint it shipped.
    auto stored = s->store->get_model(outbox_marks_key(s->opts.checkpoint));
    if (!stored)
      return stored.error();
    offsets from;
    bool have = *stored && !(*stored)->empty() && decode(**stored, from);
    auto found = read_topics(cluster.bootstrap_servers(), cluster.options().client_id,
                             cluster.options().security, cluster.topics(), s->opts.origin,
                             have ? &from : nullptr, s->saved, s->opts.reconcile_timeout);
    if (!found) {
      s->error = "reading the topics at start: " + describe(found.error())
                 + " (events past the checkpoint may be published twice)";
    } else {
      s->skip = std::move(found->positions);
      s->found_up_to = s->skip.empty() ? 0 : *s->skip.rbegin();
      s->delivered_at = found->last;
    }
    // Until the relay is past what it found, later starts read from where
    // this one did; without marks, from the topics' ends now.
    auto first = have ? **stored : encode(s->delivered_at);
    s->marks.emplace_back(s->saved + 1, first);
    s->saved_marks = first;
  }
  auto producer = s->make_producer();
  if (!producer)
    return producer.error();
  s->producer = std::move(*producer);
  auto* raw = s.get();
  s->thread = std::thread{[raw] { raw->run(); }};
  subscription::options sopts;
  sopts.on_error = [raw](const caf::error& err) {
    std::lock_guard<std::mutex> guard{raw->mtx};
    raw->error = "reading the log: " + describe(err);
  };
  s->sub = s->store->subscribe(
    s->saved + 1, [raw](const std::vector<events::record_view>& batch) { return raw->on_batch(batch); },
    sopts);
  return std::unique_ptr<outbox_relay>{new outbox_relay(std::move(s))};
}

outbox_relay::outbox_relay(std::unique_ptr<impl> ptr) : impl_(std::move(ptr)) {
}

outbox_relay::~outbox_relay() {
  stop();
}

outbox_status outbox_relay::status() const {
  auto& s = *impl_;
  outbox_status st;
  auto head = s.store->last_position();
  std::int64_t oldest_us = 0;
  {
    std::lock_guard<std::mutex> guard{s.mtx};
    st.checkpoint = s.saved;
    st.confirmed = s.window.confirmed();
    st.delivered = s.delivered;
    st.produced = s.produced;
    st.delivery_failures = s.failures;
    st.found_published = s.found_published;
    st.error = s.error;
    st.running = !s.reading_stopped && s.sub && s.sub->running();
    oldest_us = s.window.oldest_timestamp_us();
  }
  st.lag_events = head > st.confirmed ? head - st.confirmed : 0;
  if (oldest_us == 0 && st.lag_events > 0) {
    // Nothing read is waiting: the oldest undelivered event is not read yet.
    if (auto rec = s.store->read_event(st.confirmed + 1))
      oldest_us = rec->timestamp_us;
  }
  if (st.lag_events > 0 && oldest_us > 0)
    st.lag_ms = std::max<std::int64_t>(0, (now_us() - oldest_us) / 1000);
  return st;
}

outbox_resume outbox_relay::resume(std::uint64_t known) const {
  auto& s = *impl_;
  if (s.saved_now.load(std::memory_order_acquire) == known)
    return {known, {}};
  std::lock_guard<std::mutex> guard{s.mtx};
  return {s.saved, s.saved_marks};
}

void outbox_relay::stop() {
  auto& s = *impl_;
  std::lock_guard<std::mutex> stop_guard{s.stop_mtx};
  if (s.stopped)
    return;
  s.stopped = true;
  {
    std::lock_guard<std::mutex> guard{s.mtx};
    s.reading_stopped = true;
  }
  s.room.notify_all();
  if (s.sub)
    s.sub->stop();
  s.drain_deadline = steady::now() + s.opts.stop_timeout;
  s.draining = true;
  s.notify();
  if (s.thread.joinable())
    s.thread.join();
}

} // namespace keel::storage
