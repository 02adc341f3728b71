#pragma once

// Named access to the field list of an event, command or value type (see
// KEEL_FIELDS in types.hpp): `fields(x, f)` calls `f("name", x.member)` for
// each field, in stored order. The JSON form of events (json.cpp) and
// keel-replay's history files are written and read through it, the binary
// form through `serialize`: a field is named once, in its type.

#include <cstdint>
#include <type_traits>
#include <utility>

#include "keel/events/event.hpp"

namespace keel::events {

/// Whether `T` declares a field list.
template <class T, class = void>
struct has_fields : std::false_type {};

template <class T>
struct has_fields<T, std::void_t<decltype(T::keel_fields(
                       std::declval<T&>(), std::declval<void (*)(const char*, int&, std::uint16_t)>()))>>
  : std::true_type {};

template <class T, class F>
std::enable_if_t<has_fields<std::remove_const_t<T>>::value> fields(T& x, F&& f) {
  std::remove_const_t<T>::keel_fields(
    x, [&f](const char* name, auto& member, std::uint16_t) { f(name, member); });
}

/// As `fields`, with the schema version that added each field:
/// `f("name", x.member, since)`.
template <class T, class F>
std::enable_if_t<has_fields<std::remove_const_t<T>>::value> fields_since(T& x, F&& f) {
  std::remove_const_t<T>::keel_fields(x, std::forward<F>(f));
}

} // namespace keel::events
