#pragma once

// Keel's binary archives for cereal: little-endian fixed-width integers, bool
// as one byte (0 or 1), size prefixes as u32. The input archive reads from a
// bounded buffer and refuses any read or size prefix beyond the bytes that
// remain, so forged lengths fail fast instead of allocating. Private to the
// events module: its exceptions never leave codec.cpp.

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>

#include <cereal/cereal.hpp>

namespace keel::events::detail {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the stored format is little-endian; add byte swaps for this platform");

/// Thrown inside the codec when bytes do not decode; caught at its boundary.
struct decode_failure {
  std::string reason;
};

class output_archive
  : public cereal::OutputArchive<output_archive, cereal::AllowEmptyClassElision> {
public:
  explicit output_archive(std::string& out) : OutputArchive(this), out_(out) {
  }

  void write(const void* data, std::size_t size) {
    out_.append(static_cast<const char*>(data), size);
  }

private:
  std::string& out_;
};

class input_archive
  : public cereal::InputArchive<input_archive, cereal::AllowEmptyClassElision> {
public:
  explicit input_archive(std::string_view in)
    : InputArchive(this), data_(in.data()), size_(in.size()) {
  }

  void read(void* dst, std::size_t size) {
    if (size > remaining())
      throw decode_failure{"truncated: need " + std::to_string(size) + " bytes at offset "
                           + std::to_string(pos_) + ", " + std::to_string(remaining())
                           + " remain"};
    std::memcpy(dst, data_ + pos_, size);
    pos_ += size;
  }

  std::size_t remaining() const noexcept {
    return size_ - pos_;
  }

  std::size_t offset() const noexcept {
    return pos_;
  }

private:
  const char* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

// -- arithmetic types ---------------------------------------------------------

template <class T, cereal::traits::EnableIf<std::is_arithmetic<T>::value> = cereal::traits::sfinae>
void CEREAL_SAVE_FUNCTION_NAME(output_archive& ar, const T& x) {
  if constexpr (std::is_same_v<T, bool>) {
    std::uint8_t b = x ? 1 : 0;
    ar.write(&b, 1);
  } else {
    ar.write(&x, sizeof(T));
  }
}

template <class T, cereal::traits::EnableIf<std::is_arithmetic<T>::value> = cereal::traits::sfinae>
void CEREAL_LOAD_FUNCTION_NAME(input_archive& ar, T& x) {
  if constexpr (std::is_same_v<T, bool>) {
    std::uint8_t b = 0;
    ar.read(&b, 1);
    if (b > 1)
      throw decode_failure{"bool byte " + std::to_string(b) + " at offset "
                           + std::to_string(ar.offset() - 1)};
    x = b == 1;
  } else {
    ar.read(&x, sizeof(T));
  }
}

// -- name-value pairs (names are not stored) -----------------------------------

template <class T>
void CEREAL_SERIALIZE_FUNCTION_NAME(output_archive& ar, cereal::NameValuePair<T>& t) {
  ar(t.value);
}

template <class T>
void CEREAL_SERIALIZE_FUNCTION_NAME(input_archive& ar, cereal::NameValuePair<T>& t) {
  ar(t.value);
}

// -- size prefixes: u32, never larger than the bytes that remain --------------

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(output_archive& ar, const cereal::SizeTag<T>& t) {
  auto n = static_cast<std::uint32_t>(t.size);
  ar.write(&n, sizeof n);
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(input_archive& ar, cereal::SizeTag<T>& t) {
  std::uint32_t n = 0;
  ar.read(&n, sizeof n);
  // Every element takes at least one byte, so a larger count is a forgery or
  // a corruption; refusing it bounds every allocation by the input size.
  if (n > ar.remaining())
    throw decode_failure{"length prefix " + std::to_string(n) + " at offset "
                         + std::to_string(ar.offset() - sizeof n) + " exceeds the "
                         + std::to_string(ar.remaining()) + " bytes that remain"};
  t.size = n;
}

// -- raw bytes ----------------------------------------------------------------

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(output_archive& ar, const cereal::BinaryData<T>& bd) {
  ar.write(bd.data, static_cast<std::size_t>(bd.size));
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(input_archive& ar, cereal::BinaryData<T>& bd) {
  ar.read(bd.data, static_cast<std::size_t>(bd.size));
}

} // namespace keel::events::detail

CEREAL_REGISTER_ARCHIVE(keel::events::detail::output_archive)
CEREAL_REGISTER_ARCHIVE(keel::events::detail::input_archive)
CEREAL_SETUP_ARCHIVE_TRAITS(keel::events::detail::input_archive,
                            keel::events::detail::output_archive)
