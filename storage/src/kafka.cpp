// The Kafka cluster: the embedded librdkafka mock cluster, or external
// brokers whose topics are created through the Admin API.

#include "keel/storage/kafka.hpp"

#include <fstream>
#include <mutex>
#include <thread>

#include "kafka_client.hpp" // rdkafka.h, which rdkafka_mock.h needs first
#include <librdkafka/rdkafka_mock.h>

#include "keel/events/error.hpp"
#include "keel/events/streams.hpp"

namespace keel::storage {

using namespace kafka_detail;
using namespace std::chrono_literals;

const std::vector<std::string>& keel_topics() {
  static const std::vector<std::string> topics{"keel.orders", "keel.inventory", "keel.payments",
                                               "keel.shipping", std::string{retry_topic_name}};
  return topics;
}

std::string topic_of(std::string_view stream_id) {
  switch (events::kind_of_stream(stream_id)) {
    case events::stream_kind::order:
      return "keel.orders";
    case events::stream_kind::stock:
      return "keel.inventory";
    case events::stream_kind::payment:
      return "keel.payments";
    case events::stream_kind::shipment:
      return "keel.shipping";
    default:
      return {};
  }
}

struct kafka_cluster::impl {
  kafka_options opts;
  std::string bootstrap;
  std::vector<kafka_topic_info> topics;
  // Embedded only: the handle hosting the mock cluster; the cluster must be
  // destroyed before it.
  handle host;
  rd_kafka_mock_cluster_t* mock = nullptr;
  std::mutex fault_mtx;

  ~impl() {
    if (mock != nullptr)
      rd_kafka_mock_cluster_destroy(mock);
  }
};

namespace {

caf::error validate(const kafka_options& opts) {
  if (opts.partitions < 1 || opts.partitions > 1024)
    return make_error(errc::invalid_argument,
                      "kafka partitions must be 1..1024, not " + std::to_string(opts.partitions));
  if (opts.brokers.empty() && (opts.mock_brokers < 1 || opts.mock_brokers > 16))
    return make_error(errc::invalid_argument, "kafka mock brokers must be 1..16, not "
                                                + std::to_string(opts.mock_brokers));
  if (opts.client_id.empty())
    return make_error(errc::invalid_argument, "kafka client id is empty");
  return check_security(opts.security, "kafka setting ");
}

// librdkafka 2.0.2's mock cluster thread serves its op queue and only then
// drains its wake-up pipe, so an op queued in between sleeps until the
// thread's 1 s poll timeout. Calls that follow each other (topic creation)
// hit that window often; a short pause lets the thread get back to its poll.
void after_mock_op() {
  std::this_thread::sleep_for(5ms);
}

caf::error start_embedded(kafka_cluster::impl& s) {
  auto rk = make_handle(RD_KAFKA_PRODUCER, make_conf({}, s.opts.client_id + "-mock"));
  if (!rk)
    return rk.error();
  s.host = std::move(*rk);
  s.mock = rd_kafka_mock_cluster_new(s.host.get(), s.opts.mock_brokers);
  if (s.mock == nullptr)
    return make_error(errc::storage_failure, "starting the embedded kafka mock cluster failed");
  s.bootstrap = rd_kafka_mock_cluster_bootstraps(s.mock);
  // Created explicitly: auto-creation would give 4 partitions of ~5 MiB.
  for (auto& name : keel_topics()) {
    auto err = rd_kafka_mock_topic_create(s.mock, name.c_str(), s.opts.partitions, 1);
    after_mock_op();
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
      return to_error(err, "creating topic " + name);
    s.topics.push_back({name, s.opts.partitions});
  }
  return caf::error{};
}

// Admin API objects, destroyed in one place whatever the outcome.
struct admin_request {
  std::vector<rd_kafka_NewTopic_t*> topics;
  rd_kafka_AdminOptions_t* options = nullptr;
  rd_kafka_queue_t* queue = nullptr;
  rd_kafka_event_t* result = nullptr;

  ~admin_request() {
    if (result != nullptr)
      rd_kafka_event_destroy(result);
    if (queue != nullptr)
      rd_kafka_queue_destroy(queue);
    if (options != nullptr)
      rd_kafka_AdminOptions_destroy(options);
    rd_kafka_NewTopic_destroy_array(topics.data(), topics.size());
  }
};

caf::error create_topics(rd_kafka_t* rk, const kafka_options& opts) {
  admin_request req;
  char reason[512];
  for (auto& name : keel_topics()) {
    // Replication factor -1: the brokers' default.replication.factor.
    auto* nt = rd_kafka_NewTopic_new(name.c_str(), opts.partitions, -1, reason, sizeof reason);
    if (nt == nullptr)
      return make_error(errc::invalid_argument, "topic " + name + ": " + reason);
    req.topics.push_back(nt);
  }
  auto ms = static_cast<int>(opts.admin_timeout.count());
  req.options = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_request_timeout(req.options, ms, reason, sizeof reason);
  rd_kafka_AdminOptions_set_operation_timeout(req.options, ms, reason, sizeof reason);
  req.queue = rd_kafka_queue_new(rk);
  rd_kafka_CreateTopics(rk, req.topics.data(), req.topics.size(), req.options, req.queue);
  req.result = rd_kafka_queue_poll(req.queue, ms + 1000);
  if (req.result == nullptr)
    return make_error(errc::timeout, "creating kafka topics at " + opts.brokers + ": no answer");
  if (auto err = rd_kafka_event_error(req.result))
    return to_error(err, "creating kafka topics at " + opts.brokers);
  std::size_t n = 0;
  auto* res = rd_kafka_event_CreateTopics_result(req.result);
  auto** results = rd_kafka_CreateTopics_result_topics(res, &n);
  for (std::size_t i = 0; i < n; ++i) {
    auto err = rd_kafka_topic_result_error(results[i]);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
      return to_error(err, std::string{"creating topic "} + rd_kafka_topic_result_name(results[i]));
  }
  return caf::error{};
}

// Reads the partition counts of Keel's topics (a topic that existed before
// keeps its own count). With `all_needed`, a missing topic is an error.
caf::error read_partitions(rd_kafka_t* rk, kafka_cluster::impl& s, bool all_needed) {
  const rd_kafka_metadata_t* md = nullptr;
  auto err = rd_kafka_metadata(rk, 1, nullptr, &md,
                               static_cast<int>(s.opts.admin_timeout.count()));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    return to_error(err, "reading kafka metadata from " + s.opts.brokers);
  std::string missing;
  for (auto& name : keel_topics()) {
    int partitions = 0;
    for (int i = 0; i < md->topic_cnt; ++i)
      if (name == md->topics[i].topic && md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR)
        partitions = md->topics[i].partition_cnt;
    if (partitions == 0)
      missing += " " + name;
    s.topics.push_back({name, partitions > 0 ? partitions : s.opts.partitions});
  }
  rd_kafka_metadata_destroy(md);
  if (all_needed && !missing.empty())
    return make_error(errc::storage_failure, "kafka topics missing at " + s.opts.brokers + ":"
                                               + missing);
  return caf::error{};
}

caf::error connect_external(kafka_cluster::impl& s) {
  s.bootstrap = s.opts.brokers;
  auto rk = make_handle(RD_KAFKA_PRODUCER, make_conf(s.bootstrap, s.opts.client_id + "-admin", s.opts.security));
  if (!rk)
    return rk.error();
  // Brokers that cannot create topics (no controller, no rights, another
  // node's embedded mock cluster, which has no CreateTopics) still do if
  // every topic exists already.
  auto created = create_topics(rk->get(), s.opts);
  if (auto err = read_partitions(rk->get(), s, static_cast<bool>(created)))
    return created ? created : err;
  return caf::error{};
}

} // namespace

caf::expected<std::unique_ptr<kafka_cluster>> kafka_cluster::open(const kafka_options& opts) {
  if (auto err = validate(opts))
    return err;
  auto s = std::make_unique<impl>();
  s->opts = opts;
  if (auto err = opts.brokers.empty() ? start_embedded(*s) : connect_external(*s))
    return err;
  return std::unique_ptr<kafka_cluster>{new kafka_cluster(std::move(s))};
}

kafka_cluster::kafka_cluster(std::unique_ptr<impl> ptr) : impl_(std::move(ptr)) {
}

kafka_cluster::~kafka_cluster() = default;

const std::string& kafka_cluster::bootstrap_servers() const noexcept {
  return impl_->bootstrap;
}

bool kafka_cluster::embedded() const noexcept {
  return impl_->mock != nullptr;
}

std::vector<kafka_topic_info> kafka_cluster::topics() const {
  return impl_->topics;
}

const kafka_options& kafka_cluster::options() const noexcept {
  return impl_->opts;
}

caf::error kafka_cluster::set_brokers_down(bool down) {
  if (impl_->mock == nullptr)
    return make_error(errc::invalid_argument, "broker faults need the embedded kafka cluster");
  std::lock_guard<std::mutex> guard{impl_->fault_mtx};
  for (int id = 1; id <= impl_->opts.mock_brokers; ++id) {
    auto err = down ? rd_kafka_mock_broker_set_down(impl_->mock, id)
                    : rd_kafka_mock_broker_set_up(impl_->mock, id);
    after_mock_op();
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
      return to_error(err, "setting mock broker " + std::to_string(id) + (down ? " down" : " up"));
  }
  return caf::error{};
}

caf::expected<kafka_settings> load_kafka_settings(const std::string& path) {
  std::ifstream in{path};
  if (!in)
    return make_error(errc::not_found, "kafka settings: cannot read " + path);
  auto trim = [](std::string x) {
    auto b = x.find_first_not_of(" \t\r");
    auto e = x.find_last_not_of(" \t\r");
    return b == std::string::npos ? std::string{} : x.substr(b, e - b + 1);
  };
  kafka_settings result;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    line = trim(line);
    if (line.empty() || line[0] == '#')
      continue;
    auto where = path + ":" + std::to_string(number) + ": ";
    auto eq = line.find('=');
    if (eq == std::string::npos || trim(line.substr(0, eq)).empty())
      return make_error(errc::invalid_argument, where + "expected name=value");
    result.emplace_back(trim(line.substr(0, eq)), trim(line.substr(eq + 1)));
    if (auto err = kafka_detail::check_security({result.back()}, where))
      return err;
  }
  return result;
}

} // namespace keel::storage
