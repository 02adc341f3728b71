#include "journal.hpp"

#include <caf/send.hpp>

#include "keel/actors/messages.hpp"

namespace keel::actors {

journal::journal(std::shared_ptr<storage::event_store> store, append_mode mode)
  : store_(std::move(store)), mode_(mode) {
}

void journal::append(const caf::actor& self, std::string stream,
                     storage::expected_version expected, std::vector<storage::new_event> events,
                     continuation k) {
  auto token = next_token_++;
  pending_.emplace(token, std::move(k));
  auto post = [self, token](caf::expected<storage::append_result> res) {
    if (res)
      caf::anon_send(self, persisted_atom::value, token, caf::error{}, res->first_version,
                     res->last_version, res->last_position);
    else
      caf::anon_send(self, persisted_atom::value, token, std::move(res.error()), std::uint64_t{0},
                     std::uint64_t{0}, std::uint64_t{0});
  };
  if (mode_ == append_mode::synchronous)
    post(store_->append(stream, expected, std::move(events)));
  else
    store_->append_async(std::move(stream), expected, std::move(events), std::move(post));
}

void journal::complete(std::uint64_t token, const caf::error& err, std::uint64_t first_version,
                       std::uint64_t last_version, std::uint64_t last_position) {
  auto i = pending_.find(token);
  if (i == pending_.end())
    return;
  auto k = std::move(i->second);
  pending_.erase(i);
  storage::append_result res;
  res.first_version = first_version;
  res.last_version = last_version;
  res.last_position = last_position;
  k(err, res);
}

caf::error fold_stream(
  const storage::event_store& store, std::string_view stream, std::uint64_t from_version,
  const std::function<void(const events::event&, const events::record_view&)>& apply) {
  auto reader = store.read_stream(stream, from_version);
  while (reader.next()) {
    auto& rec = reader.current();
    auto ev = rec.decode_payload();
    if (!ev)
      return std::move(ev.error());
    apply(*ev, rec);
  }
  return reader.error();
}

storage::new_event make_new_event(const events::event& ev, std::int64_t at_us,
                                  const events::event_id& correlation,
                                  const events::event_id& causation) {
  return storage::new_event::from(ev, events::event_id::random(), at_us, correlation, causation);
}

} // namespace keel::actors
