#pragma once

// librdkafka plumbing shared by the cluster, the outbox relay and the retry
// topic: owning handles, configurations with Keel's defaults, and the one
// place where librdkafka's errors become `caf::error`s.

#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include <librdkafka/rdkafka.h>

#include "keel/storage/kafka.hpp"

namespace keel::storage::kafka_detail {

/// Destroys a client handle (after the caller drained what it needs).
struct handle_deleter {
  void operator()(rd_kafka_t* rk) const noexcept {
    rd_kafka_destroy(rk);
  }
};

/// An owning client handle.
using handle = std::unique_ptr<rd_kafka_t, handle_deleter>;

/// Releases the application's reference to a topic.
struct topic_deleter {
  void operator()(rd_kafka_topic_t* rkt) const noexcept {
    rd_kafka_topic_destroy(rkt);
  }
};

/// A topic of a client, held so the client keeps it in its metadata.
using topic_ref = std::unique_ptr<rd_kafka_topic_t, topic_deleter>;

/// Makes `rk` know `names` at once, so the metadata request of its first
/// broker connection covers them (a topic first named after that waits for
/// librdkafka's once-a-second scan of unknown topics: a 1 s stall of the
/// first messages). The refs must be released before `rk` is destroyed.
std::vector<topic_ref> want_topics(rd_kafka_t* rk, const std::vector<std::string>& names);

/// A client and the topics it was told about up front.
struct client {
  /// Null once closed.
  handle rk;
  /// Released before `rk` (members are destroyed in reverse order).
  std::vector<topic_ref> topics;

  rd_kafka_t* get() const noexcept {
    return rk.get();
  }
  explicit operator bool() const noexcept {
    return rk != nullptr;
  }
  void reset() noexcept {
    topics.clear();
    rk.reset();
  }
};

/// Destroys a configuration that no handle took over.
struct conf_deleter {
  void operator()(rd_kafka_conf_t* conf) const noexcept {
    rd_kafka_conf_destroy(conf);
  }
};

/// An owning configuration.
using conf_ptr = std::unique_ptr<rd_kafka_conf_t, conf_deleter>;

/// A configuration with Keel's defaults: `client.id`, `bootstrap.servers`
/// (if not empty), short reconnect backoffs, and librdkafka's log silenced
/// (errors reach callers through error callbacks and delivery reports),
/// then `security` (TLS/SASL, checked by `check_security` beforehand).
conf_ptr make_conf(const std::string& bootstrap, const std::string& client_id,
                   const kafka_settings& security = {});

/// Whether `security` holds only security.protocol, sasl.* and ssl.*
/// properties with values librdkafka accepts; `where` prefixes the error.
caf::error check_security(const kafka_settings& security, const std::string& where);

/// Sets property `name`. Errors: `invalid_argument` with librdkafka's reason.
caf::error set(rd_kafka_conf_t* conf, const char* name, const std::string& value);

/// Sets every (name, value); stops at the first error.
caf::error set(rd_kafka_conf_t* conf,
               std::initializer_list<std::pair<const char*, std::string>> settings);

/// Creates a client of `type` from `conf` (consumed either way). Errors:
/// `storage_failure` with librdkafka's reason.
caf::expected<handle> make_handle(rd_kafka_type_t type, conf_ptr conf);

/// Creates a client of `type` from `conf` (consumed either way) that knows
/// `topics` from the start (see `want_topics`).
caf::expected<client> make_client(rd_kafka_type_t type, conf_ptr conf,
                                  const std::vector<std::string>& topics);

/// Converts a librdkafka error: `timeout` for timeouts, `storage_failure`
/// for the rest, with `context` and librdkafka's description.
caf::error to_error(rd_kafka_resp_err_t err, const std::string& context);

} // namespace keel::storage::kafka_detail
