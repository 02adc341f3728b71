// The payment retry topic: its message format, a producer, and a consumer
// group member on a thread of its own that de-duplicates and hands entries
// out. The same thread serves the producer's delivery reports.

#include <atomic>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <limits>
#include <list>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <thread>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "kafka_client.hpp"
#include "keel/events/error.hpp"
#include "keel/events/json.hpp"
#include "keel/storage/kafka.hpp"

namespace keel::storage {

using namespace kafka_detail;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// -- clients ------------------------------------------------------------------

struct retry_topic::impl {
  retry_topic_options opts;
  handler on_entry;
  checker check;
  handler pass_on;
  std::string bootstrap;
  std::string client_id;
  kafka_settings security;

  // Shared to publish, exclusive to close; null once stopped.
  std::shared_mutex producer_mtx;
  client producer;
  handle consumer; // the consumer thread's
  std::thread thread;
  std::atomic<bool> stopping{false};

  std::atomic<std::uint64_t> produced{0};
  std::atomic<std::uint64_t> consumed{0};
  std::atomic<std::uint64_t> duplicates{0};
  std::atomic<std::uint64_t> malformed{0};
  std::atomic<std::uint64_t> invalid{0};
  std::atomic<std::uint64_t> stale{0};
  std::atomic<std::uint64_t> far_future{0};
  std::atomic<std::uint64_t> passed_on{0};
  std::atomic<std::uint64_t> passed_in{0};
  std::atomic<std::uint64_t> misrouted{0};
  std::atomic<std::uint64_t> failures{0};
  std::atomic<std::int64_t> lag{0};

  // Guards the de-duplication memory and `error`.
  mutable std::mutex mtx;
  std::list<std::string> recent; // most recently handed out first
  std::unordered_map<std::string, std::pair<std::uint32_t, std::list<std::string>::iterator>> last;
  std::string error;

  std::mutex stop_mtx;
  bool stopped = false;

  caf::error start_clients();
  bool accept(const retry_entry& e);
  /// Checks `e`, de-duplicates it and hands it out; `passed`: another
  /// consumer read it from the topic and passed it on to this one.
  verdict admit(const retry_entry& e, bool passed, std::int64_t offset);
  void on_message(const rd_kafka_message_t& msg);
  void store_offset(const rd_kafka_message_t& msg);
  void update_lag();
  void run();
  void note(std::string what) {
    std::lock_guard<std::mutex> guard{mtx};
    error = std::move(what);
  }

  static void delivery_cb(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
    if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR)
      return;
    auto* self = static_cast<impl*>(opaque);
    ++self->failures;
    self->note(std::string{"delivering a retry entry: "} + rd_kafka_err2str(msg->err));
  }

  static void error_cb(rd_kafka_t*, int, const char* reason, void* opaque) {
    static_cast<impl*>(opaque)->note(reason);
  }
};

caf::error retry_topic::impl::start_clients() {
  auto pconf = make_conf(bootstrap, client_id + "-retry-producer", security);
  if (auto err = set(pconf.get(), {{"acks", "all"}, {"linger.ms", "5"},
                                   {"partitioner", "murmur2_random"}}))
    return err;
  rd_kafka_conf_set_dr_msg_cb(pconf.get(), delivery_cb);
  rd_kafka_conf_set_error_cb(pconf.get(), error_cb);
  rd_kafka_conf_set_opaque(pconf.get(), this);
  auto p = make_client(RD_KAFKA_PRODUCER, std::move(pconf), {std::string{retry_topic_name}});
  if (!p)
    return p.error();
  producer = std::move(*p);

  // Offsets are stored only after the handler returned (at-least-once) and
  // committed every second and at close.
  auto cconf = make_conf(bootstrap, client_id + "-retry-consumer", security);
  if (auto err = set(cconf.get(), {{"group.id", opts.group_id},
                                   {"auto.offset.reset", "earliest"},
                                   {"enable.auto.commit", "true"},
                                   {"auto.commit.interval.ms", "1000"},
                                   {"enable.auto.offset.store", "false"},
                                   {"session.timeout.ms", "10000"}}))
    return err;
  rd_kafka_conf_set_error_cb(cconf.get(), error_cb);
  rd_kafka_conf_set_opaque(cconf.get(), this);
  auto c = make_handle(RD_KAFKA_CONSUMER, std::move(cconf));
  if (!c)
    return c.error();
  consumer = std::move(*c);
  rd_kafka_poll_set_consumer(consumer.get());
  auto* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, std::string{retry_topic_name}.c_str(),
                                    RD_KAFKA_PARTITION_UA);
  auto err = rd_kafka_subscribe(consumer.get(), topics);
  rd_kafka_topic_partition_list_destroy(topics);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    return to_error(err, "subscribing to " + std::string{retry_topic_name});
  return caf::error{};
}

bool retry_topic::impl::accept(const retry_entry& e) {
  std::lock_guard<std::mutex> guard{mtx};
  auto i = last.find(e.order_id);
  if (i != last.end()) {
    if (e.retry_count <= i->second.first)
      return false;
    i->second.first = e.retry_count;
    recent.splice(recent.begin(), recent, i->second.second);
    return true;
  }
  recent.push_front(e.order_id);
  last.emplace(e.order_id, std::make_pair(e.retry_count, recent.begin()));
  if (last.size() > opts.dedup_capacity) {
    last.erase(recent.back());
    recent.pop_back();
  }
  return true;
}

void retry_topic::impl::on_message(const rd_kafka_message_t& msg) {
  if (msg.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (msg.err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
      note(std::string{"consuming "} + std::string{retry_topic_name} + ": "
           + rd_kafka_message_errstr(&msg));
    return;
  }
  ++consumed;
  std::string_view text;
  if (msg.payload != nullptr)
    text = {static_cast<const char*>(msg.payload), msg.len};
  auto e = parse_retry_entry(text);
  if (!e) {
    ++malformed;
    note("skipped offset " + std::to_string(msg.offset) + ": " + describe(e.error()));
  } else {
    admit(*e, false, msg.offset);
  }
  store_offset(msg);
}

retry_topic::verdict retry_topic::impl::admit(const retry_entry& e, bool passed,
                                             std::int64_t offset) {
  auto v = verdict::accept;
  if (check) {
    try {
      v = check(e);
    } catch (...) {
      v = verdict::invalid; // the caller's code: an exception must not end the thread
    }
  }
  // The caller's handlers: an exception must not end the thread.
  auto call = [this](const handler& h, const retry_entry& x) {
    try {
      h(x);
    } catch (const std::exception& ex) {
      note("retry handler threw: " + std::string{ex.what()});
    } catch (...) {
      note("retry handler threw");
    }
  };
  if (v == verdict::elsewhere) {
    // Not this consumer's to check: passed on (once; an entry passed here
    // whose order moved on again is its new owner's to re-drive).
    if (passed || !pass_on) {
      ++misrouted;
      return v;
    }
    ++passed_on;
    call(pass_on, e);
    return v;
  }
  if (passed)
    ++passed_in;
  if (v != verdict::accept) {
    ++(v == verdict::stale ? stale : v == verdict::far_future ? far_future : invalid);
    if (v != verdict::stale)
      note("dropped "
           + (passed ? std::string{"an entry passed on"} : "offset " + std::to_string(offset))
           + ": " + (v == verdict::invalid ? "invalid" : "far-future") + " entry for an order");
    return v;
  }
  if (!accept(e)) {
    ++duplicates;
    return verdict::duplicate;
  }
  call(on_entry, e);
  return v;
}

void retry_topic::impl::store_offset(const rd_kafka_message_t& msg) {
  auto* list = rd_kafka_topic_partition_list_new(1);
  auto* tp = rd_kafka_topic_partition_list_add(list, rd_kafka_topic_name(msg.rkt), msg.partition);
  tp->offset = msg.offset + 1;
  if (auto err = rd_kafka_offsets_store(consumer.get(), list))
    note(std::string{"storing a consumer offset: "} + rd_kafka_err2str(err));
  rd_kafka_topic_partition_list_destroy(list);
}

void retry_topic::impl::update_lag() {
  rd_kafka_topic_partition_list_t* parts = nullptr;
  if (rd_kafka_assignment(consumer.get(), &parts) != RD_KAFKA_RESP_ERR_NO_ERROR || !parts)
    return;
  if (parts->cnt == 0) {
    auto p = static_cast<std::int64_t>(produced.load());
    auto c = static_cast<std::int64_t>(consumed.load());
    lag = std::max<std::int64_t>(0, p - c);
  } else {
    rd_kafka_position(consumer.get(), parts);
    std::int64_t total = 0;
    for (int i = 0; i < parts->cnt; ++i) {
      auto& tp = parts->elems[i];
      std::int64_t low = 0;
      std::int64_t high = 0;
      if (rd_kafka_get_watermark_offsets(consumer.get(), tp.topic, tp.partition, &low, &high)
            != RD_KAFKA_RESP_ERR_NO_ERROR
          || high < 0)
        continue; // not fetched yet
      auto position = tp.offset >= 0 ? tp.offset : std::max<std::int64_t>(low, 0);
      total += std::max<std::int64_t>(0, high - position);
    }
    lag = total;
  }
  rd_kafka_topic_partition_list_destroy(parts);
}

void retry_topic::impl::run() {
  auto last_lag = steady::time_point{};
  while (!stopping) {
    if (auto* msg = rd_kafka_consumer_poll(consumer.get(), 100)) {
      on_message(*msg);
      rd_kafka_message_destroy(msg);
    }
    rd_kafka_poll(producer.get(), 0);
    if (auto now = steady::now(); now - last_lag >= 100ms) {
      update_lag();
      last_lag = now;
    }
  }
  // Leaves the group and commits the stored offsets.
  if (auto err = rd_kafka_consumer_close(consumer.get()))
    note(std::string{"closing the retry consumer: "} + rd_kafka_err2str(err));
}

caf::expected<std::unique_ptr<retry_topic>>
retry_topic::start(const kafka_cluster& cluster, retry_topic_options opts, handler on_entry,
                   checker check, handler pass_on) {
  if (!on_entry || opts.group_id.empty() || opts.dedup_capacity == 0)
    return make_error(errc::invalid_argument,
                      "retry topic needs a handler, a group id and a de-duplication capacity");
  auto s = std::make_unique<impl>();
  s->opts = std::move(opts);
  s->on_entry = std::move(on_entry);
  s->check = std::move(check);
  s->pass_on = std::move(pass_on);
  s->bootstrap = cluster.bootstrap_servers();
  s->client_id = cluster.options().client_id;
  s->security = cluster.options().security;
  if (auto err = s->start_clients())
    return err;
  auto* raw = s.get();
  s->thread = std::thread{[raw] { raw->run(); }};
  return std::unique_ptr<retry_topic>{new retry_topic(std::move(s))};
}

retry_topic::retry_topic(std::unique_ptr<impl> ptr) : impl_(std::move(ptr)) {
}

retry_topic::~retry_topic() {
  stop();
}

caf::error retry_topic::publish(const retry_entry& e) {
  auto value = to_json(e);
  const std::string content_type = "application/json";
  auto& s = *impl_;
  std::shared_lock<std::shared_mutex> guard{s.producer_mtx};
  if (!s.producer)
    return make_error(errc::not_writable, "the retry topic is stopped");
  auto err = rd_kafka_producev(
    s.producer.get(), RD_KAFKA_V_TOPIC(std::string{retry_topic_name}.c_str()),
    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(e.order_id.data(), e.order_id.size()),
    RD_KAFKA_V_VALUE(value.data(), value.size()),
    RD_KAFKA_V_HEADER("content-type", content_type.data(),
                      static_cast<ssize_t>(content_type.size())),
    RD_KAFKA_V_HEADER("origin", s.opts.origin.data(), static_cast<ssize_t>(s.opts.origin.size())),
    RD_KAFKA_V_HEADER("fallback-reason", e.fallback_reason.data(),
                      static_cast<ssize_t>(e.fallback_reason.size())),
    RD_KAFKA_V_END);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    ++s.produced;
    return caf::error{};
  }
  if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
    return make_error(errc::overloaded, "the retry topic's producer queue is full");
  return to_error(err, "publishing a retry of " + e.order_id);
}

retry_topic_stats retry_topic::stats() const {
  auto& s = *impl_;
  retry_topic_stats st;
  st.produced = s.produced;
  st.consumed = s.consumed;
  st.duplicates = s.duplicates;
  st.malformed = s.malformed;
  st.invalid = s.invalid;
  st.stale = s.stale;
  st.far_future = s.far_future;
  st.passed_on = s.passed_on;
  st.passed_in = s.passed_in;
  st.misrouted = s.misrouted;
  st.delivery_failures = s.failures;
  st.lag = s.lag;
  std::lock_guard<std::mutex> guard{s.mtx};
  st.error = s.error;
  return st;
}

retry_topic::verdict retry_topic::deliver(const retry_entry& e) {
  return impl_->admit(e, true, -1);
}

void retry_topic::forget(const std::string& order_id) {
  auto& s = *impl_;
  std::lock_guard<std::mutex> guard{s.mtx};
  if (auto i = s.last.find(order_id); i != s.last.end()) {
    s.recent.erase(i->second.second);
    s.last.erase(i);
  }
}

void retry_topic::stop() {
  auto& s = *impl_;
  std::lock_guard<std::mutex> stop_guard{s.stop_mtx};
  if (s.stopped)
    return;
  s.stopped = true;
  s.stopping = true;
  if (s.thread.joinable())
    s.thread.join();
  std::unique_lock<std::shared_mutex> guard{s.producer_mtx};
  if (s.producer)
    rd_kafka_flush(s.producer.get(), 2000);
  s.producer.reset();
  s.consumer.reset();
}

} // namespace keel::storage
