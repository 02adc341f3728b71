#include "keel/actors/registry.hpp"

namespace keel::actors {

namespace {

template <class T>
std::shared_ptr<T> get_or_add(std::map<std::string, std::shared_ptr<T>>& xs,
                              const std::string& name) {
  auto& x = xs[name];
  if (!x) {
    x = std::make_shared<T>();
    x->name = name;
  }
  return x;
}

template <class T>
std::vector<std::shared_ptr<T>> to_vector(const std::map<std::string, std::shared_ptr<T>>& xs) {
  std::vector<std::shared_ptr<T>> result;
  for (auto& kvp : xs)
    result.push_back(kvp.second);
  return result;
}

} // namespace

std::shared_ptr<bulkhead_gauge> registry::bulkhead(const std::string& name) {
  std::lock_guard<std::mutex> guard{mtx_};
  return get_or_add(bulkheads_, name);
}

std::shared_ptr<breaker_gauge> registry::breaker(const std::string& name) {
  std::lock_guard<std::mutex> guard{mtx_};
  return get_or_add(breakers_, name);
}

std::shared_ptr<supervisor_gauge> registry::supervisor(const std::string& name) {
  std::lock_guard<std::mutex> guard{mtx_};
  return get_or_add(supervisors_, name);
}

std::shared_ptr<pool_gauge> registry::pool(const std::string& name) {
  std::lock_guard<std::mutex> guard{mtx_};
  return get_or_add(pools_, name);
}

std::vector<std::shared_ptr<bulkhead_gauge>> registry::bulkheads() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return to_vector(bulkheads_);
}

std::vector<std::shared_ptr<breaker_gauge>> registry::breakers() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return to_vector(breakers_);
}

std::vector<std::shared_ptr<supervisor_gauge>> registry::supervisors() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return to_vector(supervisors_);
}

std::vector<std::shared_ptr<pool_gauge>> registry::pools() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return to_vector(pools_);
}

std::shared_ptr<std::atomic<std::int64_t>> registry::value(const std::string& name) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto& x = values_[name];
  if (!x)
    x = std::make_shared<std::atomic<std::int64_t>>(0);
  return x;
}

std::map<std::string, std::int64_t> registry::values() const {
  std::lock_guard<std::mutex> guard{mtx_};
  std::map<std::string, std::int64_t> result;
  for (auto& kvp : values_)
    result.emplace(kvp.first, kvp.second->load());
  return result;
}

} // namespace keel::actors
