#include "keel/actors/http_provider.hpp"

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "keel/events/error.hpp"

namespace keel::actors {

namespace {

using outcome = provider_reply::outcome;

/// "scheme://host[:port]" and the path after it ("" or "/...", no trailing slash).
struct split_url {
  std::string origin;
  std::string path;
};

caf::expected<split_url> parse_base_url(const std::string& name, const std::string& url) {
  auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos)
    return make_error(errc::invalid_argument, name + ": base_url \"" + url + "\" has no scheme");
  auto scheme = url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https")
    return make_error(errc::invalid_argument,
                      name + ": base_url's scheme must be http or https, not \"" + scheme + "\"");
  auto host_begin = scheme_end + 3;
  auto slash = url.find('/', host_begin);
  split_url out{url.substr(0, slash), slash == std::string::npos ? "" : url.substr(slash)};
  if (out.origin.size() == host_begin || out.origin[host_begin] == ':')
    return make_error(errc::invalid_argument, name + ": base_url \"" + url + "\" has no host");
  while (!out.path.empty() && out.path.back() == '/')
    out.path.pop_back();
  return out;
}

std::string http_status_reason(const httplib::Response& res) {
  std::string why = "HTTP " + std::to_string(res.status);
  auto body = nlohmann::json::parse(res.body, nullptr, false);
  if (body.is_object()) {
    for (const char* key : {"reason", "error", "message"})
      if (auto i = body.find(key); i != body.end() && i->is_string())
        return why + ": " + i->get<std::string>();
  }
  return why;
}

/// Maps a provider's HTTP answer to a reply (see http_provider_config).
provider_reply reply_of(const httplib::Response& res) {
  if (res.status != 200 && res.status != 402)
    return {outcome::failed, {}, 0, http_status_reason(res)};
  auto body = nlohmann::json::parse(res.body, nullptr, false);
  if (!body.is_object())
    return {outcome::failed, {}, 0, "HTTP " + std::to_string(res.status) + ": body is not JSON"};
  auto status = body.value("status", std::string{});
  auto reason = body.value("reason", std::string{});
  if (res.status == 402 || status == "declined")
    return {outcome::declined, {}, 0, reason.empty() ? "declined" : reason};
  if (status != "approved")
    return {outcome::failed, {}, 0, "unknown status \"" + status + "\""};
  auto days = body.value("delivery_days", 0);
  if (days < 0)
    return {outcome::failed, {}, 0, "negative delivery_days"};
  return {outcome::ok, body.value("reference", std::string{}),
          static_cast<std::uint32_t>(days), std::move(reason)};
}

provider_reply reply_of(const httplib::Error err) {
  if (err == httplib::Error::Read || err == httplib::Error::Write)
    return {outcome::timed_out, {}, 0, "no answer in time (" + httplib::to_string(err) + ")"};
  return {outcome::failed, {}, 0, httplib::to_string(err)};
}

class http_provider : public provider {
public:
  http_provider(http_provider_config cfg, split_url url)
    : cfg_(std::move(cfg)), url_(std::move(url)) {
    // Every client exists before any thread runs, and each thread holds its
    // client's address: `clients_` must not grow under a running thread.
    for (std::size_t i = 0; i < cfg_.connections; ++i)
      clients_.push_back(make_client());
    for (auto& c : clients_)
      threads_.emplace_back([this, client = c.get()] { serve(*client); });
  }

  ~http_provider() override {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& c : clients_)
      c->stop();
    for (auto& t : threads_)
      t.join();
  }

  const std::string& name() const noexcept override {
    return cfg_.name;
  }

  void call(const provider_call& call, steady_time, reply_fn reply) override {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (jobs_.size() < 4 * cfg_.connections) {
        jobs_.push_back({call, std::move(reply)});
        cv_.notify_one();
        return;
      }
    }
    reply({outcome::failed, {}, 0,
           "all " + std::to_string(cfg_.connections) + " connections busy and the queue full"},
          duration::zero());
  }

private:
  struct job {
    provider_call call;
    reply_fn reply;
  };

  std::unique_ptr<httplib::Client> make_client() const {
    auto c = std::make_unique<httplib::Client>(url_.origin);
    c->set_keep_alive(true);
    c->set_connection_timeout(cfg_.connect_timeout);
    c->set_read_timeout(cfg_.timeout);
    c->set_write_timeout(cfg_.timeout);
    if (!cfg_.api_key.empty())
      c->set_bearer_token_auth(cfg_.api_key.c_str());
    c->enable_server_certificate_verification(cfg_.verify_tls);
    if (!cfg_.ca_file.empty())
      c->set_ca_cert_path(cfg_.ca_file.c_str());
    return c;
  }

  void serve(httplib::Client& client) {
    for (;;) {
      job j;
      {
        std::unique_lock<std::mutex> lock{mtx_};
        cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
        if (stopping_)
          return;
        j = std::move(jobs_.front());
        jobs_.pop_front();
      }
      j.reply(send(client, j.call), duration::zero());
    }
  }

  provider_reply send(httplib::Client& client, const provider_call& call) {
    httplib::Headers headers{{"Idempotency-Key", call.idempotency_key}};
    auto body = nlohmann::json{{"amount_cents", call.amount_cents}}.dump();
    auto res = client.Post((url_.path + "/" + call.operation).c_str(), headers, body,
                           "application/json");
    return res ? reply_of(*res) : reply_of(res.error());
  }

  http_provider_config cfg_;
  split_url url_;
  std::mutex mtx_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::deque<job> jobs_;
  std::vector<std::unique_ptr<httplib::Client>> clients_;
  std::vector<std::thread> threads_;
};

} // namespace

caf::expected<provider_ptr> make_http_provider(http_provider_config cfg) {
  if (cfg.name.empty())
    return make_error(errc::invalid_argument, "http provider: no name");
  auto url = parse_base_url(cfg.name, cfg.base_url);
  if (!url)
    return url.error();
  if (cfg.connections == 0 || cfg.connections > 1024)
    return make_error(errc::invalid_argument, cfg.name + ": connections must be 1..1024");
  if (cfg.timeout.count() <= 0 || cfg.connect_timeout.count() <= 0)
    return make_error(errc::invalid_argument, cfg.name + ": timeouts must be positive");
  return provider_ptr{std::make_shared<http_provider>(std::move(cfg), std::move(*url))};
}

} // namespace keel::actors
