#pragma once

#include <cstdint>
#include <string>
#include <vector>

/// Declares the stored fields of an event or command of schema version 1:
/// a cereal `serialize` member that writes and reads them in order. Types with
/// more than one schema version write `serialize` by hand (see order_placed).
#define KEEL_FIELDS(...)                                                       \
  template <class Archive>                                                     \
  void serialize(Archive& ar, [[maybe_unused]] std::uint32_t version) {        \
    ar(__VA_ARGS__);                                                           \
  }

namespace keel::events {

/// One line of an order: `quantity` units of `sku` at `unit_price_cents` each.
struct order_line {
  std::string sku;
  std::uint32_t quantity = 0;
  std::int64_t unit_price_cents = 0;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(sku, quantity, unit_price_cents);
  }

  friend bool operator==(const order_line& x, const order_line& y) {
    return x.sku == y.sku && x.quantity == y.quantity
           && x.unit_price_cents == y.unit_price_cents;
  }
};

/// A shipping address.
struct address {
  std::string name;
  std::string street;
  std::string city;
  std::string postal_code;
  std::string country;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(name, street, city, postal_code, country);
  }

  friend bool operator==(const address& x, const address& y) {
    return x.name == y.name && x.street == y.street && x.city == y.city
           && x.postal_code == y.postal_code && x.country == y.country;
  }
};

/// Returns the sum of quantity * unit price over `lines`, in cents.
std::int64_t total_cents(const std::vector<order_line>& lines);

} // namespace keel::events
