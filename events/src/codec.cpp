#include "keel/events/codec.hpp"

#include <utility>

#include <cereal/types/array.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include "archive.hpp"
#include "keel/events/error.hpp"

namespace keel::events {

namespace {

using detail::decode_failure;

// Checks fields whose every bit pattern is not a valid value.
template <class T>
const char* invalid_field(const T&) {
  return nullptr;
}

const char* invalid_field(const breaker_transitioned& x) {
  auto bad = [](breaker_state s) { return static_cast<std::uint8_t>(s) > 2; };
  if (bad(x.from))
    return "breaker_transitioned.from: not a breaker state";
  if (bad(x.to))
    return "breaker_transitioned.to: not a breaker state";
  return nullptr;
}

bool bad_code(end_reason x) {
  return static_cast<std::uint8_t>(x) > static_cast<std::uint8_t>(end_reason::cancelled_by_customer);
}

const char* invalid_field(const order_rejected& x) {
  return bad_code(x.code) ? "order_rejected.code: not an end reason" : nullptr;
}

const char* invalid_field(const order_cancelled& x) {
  return bad_code(x.code) ? "order_cancelled.code: not an end reason" : nullptr;
}

template <class T>
caf::error decode_into(T& x, std::uint16_t version, std::string_view bytes) {
  try {
    detail::input_archive ar{bytes};
    x.serialize(ar, version);
    if (ar.remaining() != 0)
      return make_error(errc::malformed_payload,
                        std::string{T::type_name} + ": " + std::to_string(ar.remaining())
                          + " trailing bytes at offset " + std::to_string(ar.offset()));
  } catch (const decode_failure& e) {
    return make_error(errc::malformed_payload, std::string{T::type_name} + ": " + e.reason);
  } catch (const std::exception& e) {
    // cereal itself or an allocation failed: still a malformed payload to the caller.
    return make_error(errc::malformed_payload, std::string{T::type_name} + ": " + e.what());
  }
  if (auto why = invalid_field(x))
    return make_error(errc::malformed_payload, why);
  return caf::error{};
}

template <std::size_t I>
caf::expected<event> decode_alternative(std::uint16_t version, std::string_view bytes) {
  std::variant_alternative_t<I, event> x;
  if (auto err = decode_into(x, version, bytes))
    return err;
  return event{std::in_place_index<I>, std::move(x)};
}

using decoder = caf::expected<event> (*)(std::uint16_t, std::string_view);

template <std::size_t... Is>
constexpr std::array<decoder, sizeof...(Is)> make_decoders(std::index_sequence<Is...>) {
  return {&decode_alternative<Is>...};
}

constexpr auto decoders = make_decoders(std::make_index_sequence<std::variant_size_v<event>>{});

} // namespace

std::string encode(const event& ev, std::uint16_t version) {
  std::string out;
  out.reserve(128);
  std::visit(
    [&](const auto& x) {
      using T = std::decay_t<decltype(x)>;
      detail::output_archive ar{out};
      // serialize() is symmetric, hence not const; encoding does not modify x.
      const_cast<T&>(x).serialize(ar, version == 0 ? T::schema_version : version);
    },
    ev);
  return out;
}

caf::expected<event> decode(std::string_view type, std::uint16_t version,
                            std::string_view bytes) {
  auto info = find_event_type(type);
  if (info == nullptr)
    return make_error(errc::unknown_event_type,
                      "no event type named '" + std::string{type} + "'");
  if (version == 0 || version > info->current_version)
    return make_error(errc::unknown_event_type,
                      std::string{type} + " schema " + std::to_string(version)
                        + " (this build reads 1.." + std::to_string(info->current_version)
                        + ")");
  return decoders[info->index](version, bytes);
}

std::string encode(const place_order& cmd) {
  std::string out;
  detail::output_archive ar{out};
  const_cast<place_order&>(cmd).serialize(ar, 1);
  return out;
}

caf::expected<place_order> decode_place_order(std::string_view bytes) {
  place_order cmd;
  try {
    detail::input_archive ar{bytes};
    cmd.serialize(ar, 1);
    if (ar.remaining() != 0)
      return make_error(errc::malformed_payload,
                        "place_order: " + std::to_string(ar.remaining()) + " trailing bytes");
  } catch (const decode_failure& e) {
    return make_error(errc::malformed_payload, "place_order: " + e.reason);
  } catch (const std::exception& e) {
    return make_error(errc::malformed_payload, std::string{"place_order: "} + e.what());
  }
  return cmd;
}

} // namespace keel::events
