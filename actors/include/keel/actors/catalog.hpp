#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "keel/events/commands.hpp"
#include "keel/storage/fwd.hpp"

namespace keel::actors {

/// The price of one SKU.
struct catalog_entry {
  std::string sku;
  std::int64_t price_cents = 0;
  std::string currency;
  /// The version of stream "catalog-<sku>" this entry reflects.
  std::uint64_t version = 0;
};

/// The catalogue orders are priced from, event-sourced in the streams
/// "catalog-<sku>" (catalog_price_set, catalog_entry_withdrawn) and held in
/// memory, so pricing an order reads no disk. Writes are durable before
/// they are visible. Thread-safe.
class catalog {
public:
  /// Loads every catalogue stream of `store`. `currencies`: the ISO 4217
  /// codes prices and orders may use (at least one; three upper-case
  /// letters each). Errors: invalid_argument, storage and decoding errors.
  static caf::expected<std::shared_ptr<catalog>> open(std::shared_ptr<storage::event_store> store,
                                                      std::vector<std::string> currencies);

  /// The entry of `sku`, if it is on sale.
  std::optional<catalog_entry> find(const std::string& sku) const;

  /// Puts `sku` on sale at `price_cents` (1..max_unit_price_cents) in
  /// `currency`, recorded with `by` (the operator). Setting the current
  /// price again records nothing. Errors: invalid_argument (SKU syntax,
  /// price, currency not accepted), storage errors.
  caf::expected<catalog_entry> set(const std::string& sku, std::int64_t price_cents,
                                   const std::string& currency, const std::string& by);

  /// Takes `sku` off sale. Errors: not_found (not on sale), storage errors.
  caf::error withdraw(const std::string& sku, const std::string& by);

  /// Prices a new order: every line's unit price and the order's currency
  /// become the catalogue's. Refuses, changing nothing, with
  ///   invalid_argument   the order's currency is not accepted;
  ///   not_for_sale       a SKU is not on sale (or priced in a currency no
  ///                      longer accepted);
  ///   currency_mismatch  the lines are priced in different currencies, or
  ///                      the order names another one;
  ///   price_changed      a line names a price other than the catalogue's.
  caf::error price(events::place_order& cmd) const;

  /// Whether prices and orders may be in `currency`.
  bool accepts(const std::string& currency) const;

  /// The SKUs on sale.
  std::size_t size() const;

  /// Every entry this catalogue knows, by SKU, with whether it is
  /// withdrawn (then only `sku` and `version` are set).
  std::vector<std::pair<catalog_entry, bool>> entries() const;

  /// A cluster's copy of an entry whose stream another node's store holds:
  /// applied (in memory only) when `e.version` is newer than the version
  /// this catalogue has of `e.sku`; `withdrawn`: taken off sale at that version.
  void mirror(const catalog_entry& e, bool withdrawn);

  /// Reads the entry of `sku` from its stream again (a cluster moved the
  /// stream into this store).
  caf::error reload(const std::string& sku);

  catalog(std::shared_ptr<storage::event_store> store, std::vector<std::string> currencies);

private:
  caf::error load(const std::string& sku);

  std::shared_ptr<storage::event_store> store_;
  std::vector<std::string> currencies_;
  /// Serializes writers (append and map update in the log's order).
  std::mutex write_mtx_;
  mutable std::shared_mutex mtx_;
  std::map<std::string, catalog_entry> entries_;
  /// Stream versions of withdrawn SKUs (the next write expects them).
  std::map<std::string, std::uint64_t> withdrawn_;
};

} // namespace keel::actors
