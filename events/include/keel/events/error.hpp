#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <caf/error.hpp>
#include <caf/expected.hpp>

namespace keel {

/// The error codes of Keel. Each value is one a caller reacts to differently;
/// context (which stream, which position, what was expected) travels in the
/// error's message. Values are stable: never renumber, only append.
enum class errc : std::uint8_t {
  /// The append's expected version did not match the stream's current version.
  /// Retry after re-reading the stream (optimistic concurrency).
  version_conflict = 1,
  /// A command or record failed validation (bad stream name, empty append,
  /// oversized payload, unknown type). Nothing was changed; do not retry as is.
  invalid_argument,
  /// Encoded bytes are malformed: truncated, a length prefix larger than the
  /// bytes that remain, trailing garbage, or an out-of-range field.
  malformed_payload,
  /// A stored record failed its checksum or its layout check; the context
  /// names the position or key. The store must be repaired or restored.
  corrupt_record,
  /// The event type or its schema version is unknown to this build.
  unknown_event_type,
  /// The requested stream, event or snapshot does not exist.
  not_found,
  /// An event id was reused for different content (another stream, or a
  /// different set of events). Idempotent retries of the same append succeed.
  duplicate_event_id,
  /// The underlying storage failed (I/O error, disk full, lock held by
  /// another process). The operation may or may not be retried.
  storage_failure,
  /// The store is closed or was opened read-only / as a secondary.
  not_writable,
  /// Bulkhead full: the service's capacity of pending requests is used up.
  /// The request was rejected at enqueue time and never queued; retry later.
  overloaded,
  /// The circuit breaker of the service or provider is open: the call failed
  /// fast without being attempted. Retry after the breaker's wait.
  circuit_open,
  /// The call got no answer within its (adaptive) timeout. Its outcome is
  /// unknown: retry with the same idempotency key.
  timeout,
  /// The actor that handled this request crashed while doing so; it was
  /// restarted from its event stream. Retry (commands are idempotent).
  actor_crashed,
  /// A supervisor spent its restart budget (intensity within period) and
  /// gave up; the failure escalates to its parent.
  restart_budget_exhausted,
  /// The order can no longer be cancelled: its shipment is scheduled or it
  /// has ended.
  not_cancellable,
  /// An external provider answered with an error (a gateway fault, not a
  /// business refusal such as a declined card).
  provider_failure,
  /// The order was refused before a saga started: the stock read model shows
  /// fewer units available than a line asks for (the inventory actor stays
  /// the authority; a stale read model only ever refuses, never oversells).
  out_of_stock,
  /// A projection stopped at an event it cannot apply; the context names the
  /// position and the reason. An operator skips the event or fixes the code.
  projection_stopped,
  /// A line's SKU has no catalogue entry (never priced, or withdrawn), or is
  /// priced in a currency the node no longer accepts.
  not_for_sale,
  /// A price the client sent differs from the catalogue's current price
  /// (re-read the catalogue and confirm the new price).
  price_changed,
  /// The order's currency differs from its lines' catalogue currency, or
  /// its lines are priced in different currencies.
  currency_mismatch,
  /// The order id is taken by another customer's order, or by an order of
  /// the same customer with other lines, currency or address.
  order_id_taken,
  /// A cluster: no node serves the key's slot now (its owner was lost or is
  /// restarting), or the owner could not be reached. Retry later (with the
  /// same order id: the request may have run there when it timed out).
  unavailable,
  /// A cluster: the node asked does not own the key's slot (the sender's
  /// routing table was stale); ask the current owner.
  not_owner,
  /// Replication: the message carries an older fencing token than this node
  /// has seen (it comes from a primary that was replaced): refused.
  stale_token,
  /// Replication: a batch does not continue this store's log (it starts
  /// after a gap, or differs from what is stored at its positions); the
  /// context names this store's last position.
  log_gap,
};

/// Returns the name of `x`, e.g. "version_conflict".
std::string_view to_string(errc x);

/// The atom that marks Keel's error category inside `caf::error`.
caf::atom_value error_category();

/// Builds a `caf::error` of `code` with a human-readable context.
caf::error make_error(errc code, std::string context);

/// Returns the `errc` of `err`, or no value if `err` is empty or not a Keel error.
/// An empty error yields errc{} (0).
errc code_of(const caf::error& err);

/// Renders `err` for people and logs: "version_conflict: stream order-1: expected 3, actual 5".
std::string describe(const caf::error& err);

/// A domain error's context split at its field: validation and pricing
/// errors read "<field>: <why>" ("items[0].sku: SKU-1 is not for sale").
struct field_reason {
  /// Empty when the context names no field (letters, digits, `_ . [ ]` only).
  std::string field;
  /// The rest of the context (all of it when there is no field).
  std::string reason;
};

/// Splits the context of Keel error `err` (see field_reason).
field_reason split_field(const caf::error& err);

} // namespace keel
