#include "kafka_client.hpp"

#include "keel/events/error.hpp"

namespace keel::storage::kafka_detail {

namespace {

// librdkafka logs to stderr by default, including expected noise (a broker
// going away, no bootstrap servers on the handle hosting the mock cluster).
// Errors that matter reach the owners through error callbacks and delivery
// reports, so the log goes nowhere.
void drop_log(const rd_kafka_t*, int, const char*, const char*) {
}

} // namespace

conf_ptr make_conf(const std::string& bootstrap, const std::string& client_id,
                   const kafka_settings& security) {
  conf_ptr conf{rd_kafka_conf_new()};
  rd_kafka_conf_set_log_cb(conf.get(), drop_log);
  // These keys and values are valid in every librdkafka since 1.x; a
  // failure here is a programming error, caught by the tests.
  set(conf.get(), "log_level", "3");
  set(conf.get(), "client.id", client_id);
  if (!bootstrap.empty())
    set(conf.get(), "bootstrap.servers", bootstrap);
  // A broker that comes back should be used within a second, not the
  // default ten.
  set(conf.get(), "reconnect.backoff.ms", "50");
  set(conf.get(), "reconnect.backoff.max.ms", "1000");
  for (auto& [name, value] : security)
    set(conf.get(), name.c_str(), value);
  return conf;
}

caf::error check_security(const kafka_settings& security, const std::string& where) {
  conf_ptr scratch{rd_kafka_conf_new()};
  for (auto& [name, value] : security) {
    if (name != "security.protocol" && name.rfind("sasl.", 0) != 0 && name.rfind("ssl.", 0) != 0)
      return make_error(errc::invalid_argument,
                        where + name + ": only security.protocol, sasl.* and ssl.* may be set "
                                       "(Keel sets every other property itself)");
    if (auto err = set(scratch.get(), name.c_str(), value))
      return make_error(errc::invalid_argument, where + describe(err));
  }
  return caf::error{};
}

caf::error set(rd_kafka_conf_t* conf, const char* name, const std::string& value) {
  char reason[512];
  if (rd_kafka_conf_set(conf, name, value.c_str(), reason, sizeof reason) != RD_KAFKA_CONF_OK)
    return make_error(errc::invalid_argument,
                      std::string{"kafka setting "} + name + "=" + value + ": " + reason);
  return caf::error{};
}

caf::error set(rd_kafka_conf_t* conf,
               std::initializer_list<std::pair<const char*, std::string>> settings) {
  for (auto& [name, value] : settings)
    if (auto err = set(conf, name, value))
      return err;
  return caf::error{};
}

caf::expected<handle> make_handle(rd_kafka_type_t type, conf_ptr conf) {
  char reason[512];
  auto* rk = rd_kafka_new(type, conf.get(), reason, sizeof reason);
  if (rk == nullptr)
    return make_error(errc::storage_failure, std::string{"creating a kafka client: "} + reason);
  conf.release(); // the handle owns it now
  return handle{rk};
}

caf::expected<client> make_client(rd_kafka_type_t type, conf_ptr conf,
                                  const std::vector<std::string>& topics) {
  auto rk = make_handle(type, std::move(conf));
  if (!rk)
    return rk.error();
  client c;
  c.topics = want_topics(rk->get(), topics);
  c.rk = std::move(*rk);
  return c;
}

std::vector<topic_ref> want_topics(rd_kafka_t* rk, const std::vector<std::string>& names) {
  std::vector<topic_ref> refs;
  for (auto& name : names)
    if (auto* rkt = rd_kafka_topic_new(rk, name.c_str(), nullptr))
      refs.emplace_back(rkt);
  return refs;
}

caf::error to_error(rd_kafka_resp_err_t err, const std::string& context) {
  auto code = err == RD_KAFKA_RESP_ERR__TIMED_OUT || err == RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT
                ? errc::timeout
                : errc::storage_failure;
  return make_error(code, context + ": " + rd_kafka_err2str(err));
}

} // namespace keel::storage::kafka_detail
