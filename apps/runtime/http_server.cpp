#include "http_server.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <charconv>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include "keel/events/error.hpp"

namespace keel::runtime {

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using steady = std::chrono::steady_clock;

template <class View>
std::string_view sv(const View& v) {
  return {v.data(), v.size()};
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x))
                  == std::tolower(static_cast<unsigned char>(y));
         });
}

/// Handler threads with a bounded queue: a task is taken only when a worker
/// is idle or the queue has room, so a burst is refused at once instead of
/// waiting behind an unbounded backlog.
class worker_pool {
public:
  worker_pool(std::size_t threads, std::size_t queue) : max_queue_(queue) {
    for (std::size_t i = 0; i < threads; ++i)
      workers_.emplace_back([this] { run(); });
  }

  ~worker_pool() {
    shutdown();
  }

  bool try_submit(std::function<void()> fn) {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (done_ || queue_.size() >= idle_ + max_queue_)
        return false;
      queue_.push_back(std::move(fn));
    }
    cv_.notify_one();
    return true;
  }

  /// Runs what is queued, then joins the workers.
  void shutdown() {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      done_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_)
      if (t.joinable())
        t.join();
  }

private:
  void run() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> guard{mtx_};
        ++idle_;
        cv_.wait(guard, [&] { return done_ || !queue_.empty(); });
        --idle_;
        if (queue_.empty())
          return;
        fn = std::move(queue_.front());
        queue_.pop_front();
      }
      fn();
    }
  }

  std::size_t max_queue_;
  std::mutex mtx_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::vector<std::thread> workers_;
  std::size_t idle_ = 0;
  bool done_ = false;
};

class connection;

} // namespace

struct http_server::impl {
  http_limits limits;
  handler serve;
  completion done;
  error_renderer render;

  // Declared before `ioc`: connections destroyed with the I/O context's
  // pending handlers still unregister here.
  std::mutex mtx;
  std::unordered_map<std::string, std::size_t> per_address;
  std::unordered_map<connection*, std::weak_ptr<connection>> connections;
  std::condition_variable drained;

  std::atomic<std::uint64_t> refused{0};
  std::atomic<std::uint64_t> timed_out{0};
  std::atomic<std::uint64_t> rejected{0};
  std::atomic<std::uint64_t> shed{0};
  std::atomic<bool> stopping{false};

  worker_pool pool;
  net::io_context ioc;
  tcp::acceptor acceptor;
  net::steady_timer accept_pause;
  std::vector<std::thread> io_threads;
  int bound_port = 0;

  impl(http_limits l, handler h, completion c, error_renderer r)
    : limits(l), serve(std::move(h)), done(std::move(c)), render(std::move(r)),
      pool(l.workers, l.queue), ioc(static_cast<int>(std::max<std::size_t>(l.io_threads, 1))),
      acceptor(net::make_strand(ioc)), accept_pause(acceptor.get_executor()) {
  }

  void accept();
  void on_accept(beast::error_code ec, tcp::socket sock);
  void release(connection* c, const std::string& address);
};

namespace {

/// One client connection. Every member is touched only on its strand, but
/// for the handler's run on a worker, which works on its own copy of the
/// request and posts the answer back.
class connection : public std::enable_shared_from_this<connection> {
public:
  connection(http_server::impl& srv, tcp::socket sock, std::string address)
    : srv_(srv), lim_(srv.limits), stream_(std::move(sock)),
      buffer_(srv.limits.max_header_block + 4096), address_(std::move(address)) {
  }

  ~connection() {
    srv_.release(this, address_);
  }

  void start() {
    deadline_ = steady::now() + lim_.request_deadline;
    wait_for_request(true);
  }

  net::any_io_executor executor() {
    return stream_.get_executor();
  }

  /// From `stop`: closes the connection unless a handler is answering on it.
  void close_if_idle() {
    if (!busy_)
      close();
  }

private:
  void wait_for_request(bool first) {
    if (buffer_.size() > 0)
      return read_header(); // pipelined: the next request is already here
    if (first)
      stream_.expires_at(deadline_);
    else
      stream_.expires_after(lim_.idle_timeout);
    stream_.async_read_some(buffer_.prepare(2048),
                            [self = shared_from_this(), first](beast::error_code ec, std::size_t n) {
                              self->buffer_.commit(n);
                              if (ec) {
                                if (ec == beast::error::timeout)
                                  self->srv_.timed_out.fetch_add(1, std::memory_order_relaxed);
                                return self->close();
                              }
                              if (!first)
                                self->deadline_ = steady::now() + self->lim_.request_deadline;
                              self->read_header();
                            });
  }

  void read_header() {
    started_ = steady::now();
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(lim_.max_header_block));
    parser_->body_limit(static_cast<std::uint64_t>(lim_.max_body));
    stream_.expires_at(deadline_);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              self->on_header(ec);
                            });
  }

  /// Maps a read error to an answer (or a close); true when there was one.
  bool read_failed(beast::error_code ec) {
    if (!ec)
      return false;
    if (ec == beast::error::timeout) {
      srv_.timed_out.fetch_add(1, std::memory_order_relaxed);
      close();
    } else if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      reject(431, "headers_too_large",
             "the request line and headers exceed " + std::to_string(lim_.max_header_block)
               + " bytes");
    } else if (ec == http::error::body_limit) {
      reject(413, "body_too_large",
             "the body is larger than " + std::to_string(lim_.max_body) + " bytes");
    } else if (ec.category() == http::make_error_code(http::error::bad_target).category()
               && ec != http::error::end_of_stream && ec != http::error::partial_message) {
      reject(400, "bad_request", "the request is not valid HTTP/1.1 (" + ec.message() + ")");
    } else {
      close(); // the client went away
    }
    return true;
  }

  void on_header(beast::error_code ec) {
    if (read_failed(ec))
      return;
    auto& msg = parser_->get();
    if (msg.target().size() > lim_.max_line)
      return reject(414, "uri_too_long",
                    "the request target is longer than " + std::to_string(lim_.max_line) + " bytes");
    std::size_t count = 0;
    for (auto& f : msg) {
      if (++count > lim_.max_headers)
        return reject(431, "too_many_headers",
                      "more than " + std::to_string(lim_.max_headers) + " header fields");
      if (f.name_string().size() + f.value().size() + 2 > lim_.max_line)
        return reject(431, "header_too_large",
                      "a header line is longer than " + std::to_string(lim_.max_line) + " bytes");
    }
    auto encoding = sv(msg[http::field::content_encoding]);
    if (!encoding.empty() && !iequals(encoding, "identity"))
      return reject(415, "unsupported_encoding",
                    "compressed request bodies are not accepted (Content-Encoding)");
    auto te = sv(msg[http::field::transfer_encoding]);
    if (!te.empty() && !iequals(te, "chunked"))
      return reject(501, "unsupported_transfer_encoding",
                    "only the chunked transfer coding is accepted");
    auto method = msg.method();
    if ((method == http::verb::post || method == http::verb::put || method == http::verb::patch)
        && !parser_->content_length() && !parser_->chunked())
      return reject(411, "length_required", "a body needs Content-Length (or chunked framing)");
    if (iequals(sv(msg[http::field::expect]), "100-continue") && !parser_->is_done()) {
      static constexpr std::string_view go_on = "HTTP/1.1 100 Continue\r\n\r\n";
      stream_.expires_at(deadline_);
      return net::async_write(stream_, net::buffer(go_on.data(), go_on.size()),
                              [self = shared_from_this()](beast::error_code e, std::size_t) {
                                if (e)
                                  return self->close();
                                self->read_body();
                              });
    }
    read_body();
  }

  void read_body() {
    if (parser_->is_done())
      return dispatch();
    stream_.expires_at(deadline_);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       if (!self->read_failed(ec))
                         self->dispatch();
                     });
  }

  /// Fills `req` from the parsed message; false when the target is malformed.
  bool to_request(http::request<http::string_body>& msg, http_request& req) {
    req.method = std::string{sv(msg.method_string())};
    req.remote_addr = address_;
    auto target = std::string_view{msg.target().data(), msg.target().size()};
    if (target.empty() || target.front() != '/')
      return false;
    auto q = target.find('?');
    req.path = std::string{target.substr(0, q)};
    std::string_view rest = std::string_view{req.path}.substr(1);
    for (;;) {
      auto slash = rest.find('/');
      auto seg = percent_decode(rest.substr(0, slash));
      if (!seg)
        return false;
      req.segments.push_back(std::move(*seg));
      if (slash == std::string_view::npos)
        break;
      rest = rest.substr(slash + 1);
    }
    if (q != std::string_view::npos) {
      auto query = target.substr(q + 1);
      while (!query.empty()) {
        auto amp = query.find('&');
        auto pair = query.substr(0, amp);
        auto eq = pair.find('=');
        std::string k{pair.substr(0, eq)};
        std::string v{eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1)};
        std::replace(k.begin(), k.end(), '+', ' ');
        std::replace(v.begin(), v.end(), '+', ' ');
        auto dk = percent_decode(k);
        auto dv = percent_decode(v);
        if (!dk || !dv)
          return false;
        req.params.emplace_back(std::move(*dk), std::move(*dv));
        if (amp == std::string_view::npos)
          break;
        query = query.substr(amp + 1);
      }
    }
    for (auto& f : msg)
      req.headers.emplace_back(std::string{sv(f.name_string())}, std::string{sv(f.value())});
    req.body = std::move(msg.body());
    return true;
  }

  void dispatch() {
    ++requests_;
    auto msg = parser_->release();
    parser_.reset();
    keep_alive_ = msg.keep_alive() && requests_ < lim_.max_requests_per_connection;
    auto req = std::make_shared<http_request>();
    if (!to_request(msg, *req))
      return reject(400, "bad_request", "the request target is not a valid path");
    busy_ = true;
    auto self = shared_from_this();
    auto started = started_;
    auto accepted = srv_.pool.try_submit([self, req, started] {
      http_response res;
      try {
        self->srv_.serve(*req, res);
      } catch (...) {
        res = http_response{};
        res.status = 500;
        res.body = self->srv_.render(500, "internal", "internal error");
      }
      self->srv_.done(*req, res, std::chrono::duration<double>(steady::now() - started).count());
      net::post(self->stream_.get_executor(), [self, res = std::move(res)]() mutable {
        self->busy_ = false;
        self->reply(std::move(res));
      });
    });
    if (accepted)
      return;
    busy_ = false;
    srv_.shed.fetch_add(1, std::memory_order_relaxed);
    answer_and_close(*req, 503, "overloaded", "the node is busy; retry later");
  }

  /// An answer the server gives itself while reading; the connection closes after it.
  void reject(int status, const std::string& code, const std::string& message) {
    srv_.rejected.fetch_add(1, std::memory_order_relaxed);
    http_request req;
    req.remote_addr = address_;
    if (parser_ && parser_->is_header_done()) {
      req.method = std::string{sv(parser_->get().method_string())};
      auto t = sv(parser_->get().target());
      req.path = std::string{t.substr(0, std::min<std::size_t>(t.find('?'), 256))};
    }
    parser_.reset();
    answer_and_close(req, status, code, message);
  }

  /// Answers `req` with an error the server made itself (503 with
  /// `Retry-After: 1`), reports it like a handler's answer, and closes after it.
  void answer_and_close(const http_request& req, int status, const std::string& code,
                        const std::string& message) {
    http_response res;
    res.status = status;
    res.body = srv_.render(status, code, message);
    if (status == 503)
      res.set_header("Retry-After", "1");
    res.close = true;
    srv_.done(req, res, std::chrono::duration<double>(steady::now() - started_).count());
    reply(std::move(res));
  }

  void reply(http_response res) {
    auto keep = keep_alive_ && !res.close && !srv_.stopping.load();
    auto msg = std::make_shared<http::response<http::string_body>>(
      static_cast<http::status>(res.status), 11);
    msg->set(http::field::content_type, res.content_type);
    for (auto& [k, v] : res.headers)
      msg->set(beast::string_view{k.data(), k.size()}, v);
    msg->body() = std::move(res.body);
    msg->keep_alive(keep);
    msg->prepare_payload();
    stream_.expires_after(lim_.write_timeout);
    http::async_write(stream_, *msg,
                      [self = shared_from_this(), msg, keep](beast::error_code ec, std::size_t) {
                        if (ec)
                          return self->close();
                        if (!keep)
                          return self->linger();
                        self->wait_for_request(false);
                      });
  }

  /// After the last answer: no more sending, and what the client still sends
  /// is read and dropped for a moment, so that closing with unread data does
  /// not reset the connection before the client has read the answer.
  void linger() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec)
      return close();
    if (lingered_ == 0)
      stream_.expires_after(std::chrono::seconds(1));
    stream_.async_read_some(net::buffer(discard_),
                            [self = shared_from_this()](beast::error_code e, std::size_t n) {
                              self->lingered_ += n;
                              if (e || self->lingered_ > (1u << 20))
                                return self->close();
                              self->linger();
                            });
  }

  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
  }

  http_server::impl& srv_;
  const http_limits& lim_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::string address_;
  steady::time_point deadline_;
  steady::time_point started_ = steady::now();
  std::size_t requests_ = 0;
  std::size_t lingered_ = 0;
  bool keep_alive_ = true;
  bool busy_ = false;
  std::array<char, 4096> discard_{};
};

} // namespace

void http_server::impl::accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket sock) {
    on_accept(ec, std::move(sock));
  });
}

void http_server::impl::on_accept(beast::error_code ec, tcp::socket sock) {
  if (stopping.load() || !acceptor.is_open())
    return;
  if (ec) {
    // Out of file descriptors: wait instead of spinning; the connections
    // that hold them time out.
    accept_pause.expires_after(std::chrono::milliseconds(50));
    accept_pause.async_wait([this](beast::error_code) { accept(); });
    return;
  }
  beast::error_code aec;
  auto remote = sock.remote_endpoint(aec);
  auto address = aec ? std::string{"?"} : remote.address().to_string();
  bool admitted = false;
  {
    std::lock_guard<std::mutex> guard{mtx};
    auto& n = per_address[address];
    if (connections.size() < limits.max_connections
        && (limits.max_connections_per_address == 0 || n < limits.max_connections_per_address)) {
      ++n;
      admitted = true;
    } else if (n == 0) {
      per_address.erase(address);
    }
  }
  if (!admitted) {
    refused.fetch_add(1, std::memory_order_relaxed);
    sock.close(aec);
    return accept();
  }
  sock.set_option(tcp::no_delay{true}, aec);
  auto c = std::make_shared<connection>(*this, std::move(sock), address);
  {
    std::lock_guard<std::mutex> guard{mtx};
    connections.emplace(c.get(), c);
  }
  c->start();
  accept();
}

void http_server::impl::release(connection* c, const std::string& address) {
  {
    std::lock_guard<std::mutex> guard{mtx};
    connections.erase(c);
    auto i = per_address.find(address);
    if (i != per_address.end() && --i->second == 0)
      per_address.erase(i);
  }
  drained.notify_all();
}

http_server::http_server(http_limits limits, handler h, completion done, error_renderer render)
  : impl_(std::make_unique<impl>(limits, std::move(h), std::move(done), std::move(render))) {
}

http_server::~http_server() {
  stop();
}

caf::error http_server::listen(const std::string& host, int port) {
  auto& s = *impl_;
  beast::error_code ec;
  auto address = net::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec)
    return make_error(errc::invalid_argument, "cannot listen on " + host + ": not an IP address");
  tcp::endpoint ep{address, static_cast<unsigned short>(port)};
  s.acceptor.open(ep.protocol(), ec);
  if (!ec)
    s.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec)
    s.acceptor.bind(ep, ec);
  if (!ec)
    s.acceptor.listen(1024, ec);
  if (ec)
    return make_error(errc::invalid_argument, "cannot listen on " + host + ":"
                                                + std::to_string(port) + " (" + ec.message() + ")");
  s.bound_port = s.acceptor.local_endpoint().port();
  net::post(s.acceptor.get_executor(), [&s] { s.accept(); });
  for (std::size_t i = 0; i < std::max<std::size_t>(s.limits.io_threads, 1); ++i)
    s.io_threads.emplace_back([&s] { s.ioc.run(); });
  return caf::error{};
}

int http_server::port() const noexcept {
  return impl_->bound_port;
}

http_server_stats http_server::stats() const {
  http_server_stats st;
  {
    std::lock_guard<std::mutex> guard{impl_->mtx};
    st.open_connections = impl_->connections.size();
  }
  st.refused_connections = impl_->refused.load();
  st.timed_out = impl_->timed_out.load();
  st.rejected = impl_->rejected.load();
  st.shed = impl_->shed.load();
  return st;
}

void http_server::stop() {
  auto& s = *impl_;
  if (s.stopping.exchange(true) || s.io_threads.empty())
    return;
  net::post(s.acceptor.get_executor(), [&s] {
    beast::error_code ec;
    s.acceptor.close(ec);
    s.accept_pause.cancel();
  });
  std::vector<std::shared_ptr<connection>> open;
  {
    std::lock_guard<std::mutex> guard{s.mtx};
    for (auto& [ptr, weak] : s.connections)
      if (auto c = weak.lock())
        open.push_back(std::move(c));
  }
  for (auto& c : open)
    net::post(c->executor(), [c] { c->close_if_idle(); });
  open.clear();
  s.pool.shutdown(); // requests in handlers and queued ones are answered
  {
    // Their answers are written (bounded by the write timeout).
    std::unique_lock<std::mutex> guard{s.mtx};
    s.drained.wait_for(guard, s.limits.write_timeout + std::chrono::seconds(1),
                       [&] { return s.connections.empty(); });
  }
  s.ioc.stop();
  for (auto& t : s.io_threads)
    t.join();
}

std::string http_request::header(std::string_view name) const {
  for (auto& [k, v] : headers)
    if (iequals(k, name))
      return v;
  return {};
}

std::optional<std::string> http_request::param(std::string_view name) const {
  for (auto& [k, v] : params)
    if (k == name)
      return v;
  return std::nullopt;
}

std::optional<std::string> percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    unsigned value = 0;
    auto* first = text.data() + i + 1;
    auto* last = text.data() + std::min(text.size(), i + 3);
    auto [end, ec] = std::from_chars(first, last, value, 16);
    if (ec != std::errc{} || last - first != 2 || end != last)
      return std::nullopt;
    out.push_back(static_cast<char>(value));
    i += 2;
  }
  return out;
}

} // namespace keel::runtime
