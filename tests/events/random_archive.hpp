#pragma once

// A cereal input archive that "loads" random values: it fills any type with a
// serialize() member, so seeded round-trip tests cover every event type
// without a hand-written generator per type.

#include <cstdint>
#include <cstring>
#include <random>
#include <type_traits>

#include <cereal/cereal.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include "keel/events/event.hpp"

namespace keel::test {

class random_archive : public cereal::InputArchive<random_archive, cereal::AllowEmptyClassElision> {
public:
  explicit random_archive(std::uint64_t seed) : InputArchive(this), rng(seed) {
  }
  std::mt19937_64 rng;
};

template <class T, cereal::traits::EnableIf<std::is_arithmetic<T>::value> = cereal::traits::sfinae>
void CEREAL_LOAD_FUNCTION_NAME(random_archive& ar, T& x) {
  if constexpr (std::is_same_v<T, bool>) {
    x = ar.rng() & 1;
  } else {
    auto bits = ar.rng();
    // Mix small and extreme values.
    if (bits % 4 == 0)
      bits %= 100;
    std::memcpy(&x, &bits, sizeof(T));
    if constexpr (std::is_floating_point_v<T>)
      x = static_cast<T>(bits % 1000);
  }
}

template <class T>
void CEREAL_SERIALIZE_FUNCTION_NAME(random_archive& ar, cereal::NameValuePair<T>& t) {
  ar(t.value);
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(random_archive& ar, cereal::SizeTag<T>& t) {
  t.size = static_cast<std::remove_reference_t<T>>(ar.rng() % 6);
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(random_archive& ar, cereal::BinaryData<T>& bd) {
  auto p = static_cast<unsigned char*>(const_cast<void*>(static_cast<const void*>(bd.data)));
  for (std::size_t i = 0; i < static_cast<std::size_t>(bd.size); ++i)
    p[i] = static_cast<unsigned char>(ar.rng() % 256);
}

/// Returns a random event of the type with index `index`.
inline events::event random_event(std::size_t index, std::uint64_t seed);

namespace detail {

template <std::size_t I>
events::event make_random(std::uint64_t seed) {
  std::variant_alternative_t<I, events::event> x;
  random_archive ar{seed};
  x.serialize(ar, std::variant_alternative_t<I, events::event>::schema_version);
  if constexpr (std::is_same_v<decltype(x), events::breaker_transitioned>) {
    x.from = static_cast<events::breaker_state>(static_cast<std::uint8_t>(x.from) % 3);
    x.to = static_cast<events::breaker_state>(static_cast<std::uint8_t>(x.to) % 3);
  }
  if constexpr (std::is_same_v<decltype(x), events::order_rejected>
                || std::is_same_v<decltype(x), events::order_cancelled>)
    x.code = static_cast<events::end_reason>(static_cast<std::uint8_t>(x.code) % 6);
  return events::event{std::in_place_index<I>, std::move(x)};
}

template <std::size_t... Is>
events::event make_random_at(std::size_t index, std::uint64_t seed, std::index_sequence<Is...>) {
  using fn = events::event (*)(std::uint64_t);
  static constexpr fn table[] = {&make_random<Is>...};
  return table[index](seed);
}

} // namespace detail

inline events::event random_event(std::size_t index, std::uint64_t seed) {
  return detail::make_random_at(index, seed,
                                std::make_index_sequence<std::variant_size_v<events::event>>{});
}

} // namespace keel::test

namespace keel::test {

/// The output side cereal requires for every input archive; never used.
class null_output_archive
  : public cereal::OutputArchive<null_output_archive, cereal::AllowEmptyClassElision> {
public:
  null_output_archive() : OutputArchive(this) {
  }
};

} // namespace keel::test

CEREAL_REGISTER_ARCHIVE(keel::test::random_archive)
CEREAL_SETUP_ARCHIVE_TRAITS(keel::test::random_archive, keel::test::null_output_archive)
