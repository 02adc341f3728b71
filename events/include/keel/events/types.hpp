#pragma once

#include <cstdint>
#include <string>
#include <vector>

// -- field lists ---------------------------------------------------------------
//
// Every event, command and value type names its stored fields once, in
// stored order, each with the schema version that added it: a static member
// `keel_fields(self, f)` that calls `f("name", self.name, since)` per field.
// Every codec goes through that one list: the binary form (`serialize`, for
// the store's payloads and CAF messages), the JSON form (events/json.cpp,
// through `fields` in fields.hpp) and keel-replay's history files.
//
// KEEL_FIELDS(a, b, c) declares a list whose fields are all of schema 1, and
// the `serialize(ar, version)` that writes them; types whose later schemas
// added fields write `keel_fields` by hand and add KEEL_SERIALIZE_FIELDS
// (see order_placed). KEEL_VALUE_FIELDS is for parts nested in events
// (order_line, address): their `serialize(ar)` takes no version.

#define KEEL_PP_NARG(...) KEEL_PP_NARG_(__VA_ARGS__, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0)
#define KEEL_PP_NARG_(_1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11, _12, N, ...) N
#define KEEL_PP_CAT(a, b) KEEL_PP_CAT_(a, b)
#define KEEL_PP_CAT_(a, b) a##b
#define KEEL_FE_1(m, x) m(x)
#define KEEL_FE_2(m, x, ...) m(x) KEEL_FE_1(m, __VA_ARGS__)
#define KEEL_FE_3(m, x, ...) m(x) KEEL_FE_2(m, __VA_ARGS__)
#define KEEL_FE_4(m, x, ...) m(x) KEEL_FE_3(m, __VA_ARGS__)
#define KEEL_FE_5(m, x, ...) m(x) KEEL_FE_4(m, __VA_ARGS__)
#define KEEL_FE_6(m, x, ...) m(x) KEEL_FE_5(m, __VA_ARGS__)
#define KEEL_FE_7(m, x, ...) m(x) KEEL_FE_6(m, __VA_ARGS__)
#define KEEL_FE_8(m, x, ...) m(x) KEEL_FE_7(m, __VA_ARGS__)
#define KEEL_FE_9(m, x, ...) m(x) KEEL_FE_8(m, __VA_ARGS__)
#define KEEL_FE_10(m, x, ...) m(x) KEEL_FE_9(m, __VA_ARGS__)
#define KEEL_FE_11(m, x, ...) m(x) KEEL_FE_10(m, __VA_ARGS__)
#define KEEL_FE_12(m, x, ...) m(x) KEEL_FE_11(m, __VA_ARGS__)
#define KEEL_FOR_EACH(m, ...) KEEL_PP_CAT(KEEL_FE_, KEEL_PP_NARG(__VA_ARGS__))(m, __VA_ARGS__)

#define KEEL_FIELD_OF_SCHEMA_1(x) f(#x, self.x, std::uint16_t{1});

#define KEEL_FIELD_LIST(...)                                                   \
  template <class Self, class F>                                               \
  static void keel_fields(Self& self, F&& f) {                                 \
    KEEL_FOR_EACH(KEEL_FIELD_OF_SCHEMA_1, __VA_ARGS__)                         \
  }

/// The binary form of a type with `keel_fields`: the fields its schema
/// `version` has, in list order.
#define KEEL_SERIALIZE_FIELDS                                                  \
  template <class Archive>                                                     \
  void serialize(Archive& ar, std::uint32_t version) {                         \
    keel_fields(*this, [&ar, version](const char*, auto& member, std::uint16_t since) { \
      if (version >= since)                                                    \
        ar(member);                                                            \
    });                                                                        \
  }

#define KEEL_FIELDS(...)                                                       \
  KEEL_FIELD_LIST(__VA_ARGS__)                                                 \
  KEEL_SERIALIZE_FIELDS

#define KEEL_VALUE_FIELDS(...)                                                 \
  KEEL_FIELD_LIST(__VA_ARGS__)                                                 \
  template <class Archive>                                                     \
  void serialize(Archive& ar) {                                                \
    keel_fields(*this, [&ar](const char*, auto& member, std::uint16_t) { ar(member); }); \
  }

namespace keel::events {

/// One line of an order: `quantity` units of `sku` at `unit_price_cents` each.
struct order_line {
  std::string sku;
  std::uint32_t quantity = 0;
  std::int64_t unit_price_cents = 0;

  KEEL_VALUE_FIELDS(sku, quantity, unit_price_cents)

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

  KEEL_VALUE_FIELDS(name, street, city, postal_code, country)

  friend bool operator==(const address& x, const address& y) {
    return x.name == y.name && x.street == y.street && x.city == y.city
           && x.postal_code == y.postal_code && x.country == y.country;
  }
};

/// Returns the sum of quantity * unit price over `lines`, in cents.
std::int64_t total_cents(const std::vector<order_line>& lines);

} // namespace keel::events
