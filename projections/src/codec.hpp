#pragma once

// A compact binary form for read-model values: LEB128 varints (zigzag for
// signed), length-prefixed strings and vectors. A type lists its fields once,
// `template <class F, class T> void fields(F& f, T& x) { f(x.a, x.b); }`
// (found by argument-dependent lookup), for the writer and the reader. Readers
// check every length against the bytes left, so a damaged value decodes to an
// error, never to garbage or a large allocation.
//
// A stored value starts with its format version (a varint, `format_version`
// of its type); `decode_value` reads any version up to the type's current
// one. A field added in version N is listed as `f.since(N, x.field)` after the
// older fields: readers of an older value leave it at its default. A type
// stored inside another has no version of its own: change it only together
// with a new version of every type that holds it.

#include <cstdint>
#include <cstring>
#include <string>
#include <limits>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace keel::projections::codec {

class writer {
public:
  /// Writes the fields of format version `version` (default: every field).
  explicit writer(std::string& out, std::uint32_t version = ~std::uint32_t{0})
    : out_(out), version_(version) {
  }

  void u64(std::uint64_t x) {
    while (x >= 0x80) {
      out_.push_back(static_cast<char>((x & 0x7f) | 0x80));
      x >>= 7;
    }
    out_.push_back(static_cast<char>(x));
  }

  void i64(std::int64_t x) {
    u64((static_cast<std::uint64_t>(x) << 1) ^ static_cast<std::uint64_t>(x >> 63));
  }

  void boolean(bool x) {
    out_.push_back(x ? 1 : 0);
  }

  void str(std::string_view x) {
    u64(x.size());
    out_.append(x.data(), x.size());
  }

  void f64(double x) {
    std::uint64_t bits;
    std::memcpy(&bits, &x, sizeof bits);
    u64(bits);
  }

  // One field list (`fields(f, value)`) serves writing and reading.
  template <class... Ts>
  void operator()(const Ts&... xs) {
    (field(xs), ...);
  }

  /// Fields added in format version `version`: written unless the writer
  /// writes an older version.
  template <class... Ts>
  void since(std::uint32_t version, const Ts&... xs) {
    if (version_ >= version)
      (field(xs), ...);
  }

  void field(bool x) {
    boolean(x);
  }
  void field(const std::string& x) {
    str(x);
  }
  template <class T>
  std::enable_if_t<std::is_integral_v<T>> field(T x) {
    if constexpr (std::is_signed_v<T>)
      i64(x);
    else
      u64(x);
  }
  template <class T>
  std::enable_if_t<std::is_enum_v<T>> field(T x) {
    u64(static_cast<std::uint64_t>(x));
  }
  template <class A, class B>
  void field(const std::pair<A, B>& x) {
    field(x.first);
    field(x.second);
  }
  template <class T>
  void field(const std::vector<T>& xs) {
    u64(xs.size());
    for (auto& x : xs)
      field(x);
  }
  template <class T>
  std::enable_if_t<std::is_class_v<T>> field(const T& x) {
    fields(*this, x);
  }

private:
  std::string& out_;
  std::uint32_t version_;
};

class reader {
public:
  explicit reader(std::string_view in) : in_(in) {
  }

  bool u64(std::uint64_t& x) {
    x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= in_.size())
        return fail();
      auto byte = static_cast<std::uint8_t>(in_[pos_++]);
      x |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0)
        return true;
    }
    return fail();
  }

  bool u32(std::uint32_t& x) {
    std::uint64_t v = 0;
    if (!u64(v) || v > 0xffffffffu)
      return fail();
    x = static_cast<std::uint32_t>(v);
    return true;
  }

  bool i64(std::int64_t& x) {
    std::uint64_t v = 0;
    if (!u64(v))
      return false;
    x = static_cast<std::int64_t>((v >> 1) ^ (~(v & 1) + 1));
    return true;
  }

  bool boolean(bool& x) {
    if (pos_ >= in_.size() || static_cast<std::uint8_t>(in_[pos_]) > 1)
      return fail();
    x = in_[pos_++] == 1;
    return true;
  }

  bool str(std::string& x) {
    std::uint64_t n = 0;
    if (!u64(n) || n > in_.size() - pos_)
      return fail();
    x.assign(in_.data() + pos_, static_cast<std::size_t>(n));
    pos_ += static_cast<std::size_t>(n);
    return true;
  }

  /// A count of elements, each at least one byte: never more than the bytes left.
  bool count(std::uint64_t& n) {
    return u64(n) && (n <= in_.size() - pos_ || fail());
  }

  bool f64(double& x) {
    std::uint64_t bits = 0;
    if (!u64(bits))
      return false;
    std::memcpy(&x, &bits, sizeof x);
    return true;
  }

  template <class... Ts>
  void operator()(Ts&... xs) {
    (field(xs), ...);
  }

  /// Fields added in format version `version`: read from values of that
  /// version or later, left as they are in older ones.
  template <class... Ts>
  void since(std::uint32_t version, Ts&... xs) {
    if (version_ >= version)
      (field(xs), ...);
  }

  /// The format version of the value being read (see `decode_value`).
  void set_version(std::uint32_t version) noexcept {
    version_ = version;
  }

  void field(bool& x) {
    boolean(x);
  }
  void field(std::string& x) {
    str(x);
  }
  template <class T>
  std::enable_if_t<std::is_integral_v<T>> field(T& x) {
    if constexpr (std::is_signed_v<T>) {
      std::int64_t v = 0;
      i64(v);
      x = static_cast<T>(v);
    } else {
      std::uint64_t v = 0;
      if (u64(v) && v > std::numeric_limits<T>::max())
        fail();
      x = static_cast<T>(v);
    }
  }
  template <class T>
  std::enable_if_t<std::is_enum_v<T>> field(T& x) {
    std::underlying_type_t<T> v{};
    field(v);
    x = static_cast<T>(v);
  }
  template <class A, class B>
  void field(std::pair<A, B>& x) {
    field(x.first);
    field(x.second);
  }
  template <class T>
  void field(std::vector<T>& xs) {
    std::uint64_t n = 0;
    if (!count(n))
      return;
    xs.resize(static_cast<std::size_t>(n));
    for (auto& x : xs)
      field(x);
  }
  template <class T>
  std::enable_if_t<std::is_class_v<T>> field(T& x) {
    fields(*this, x);
  }

  /// True when every byte was read and nothing failed.
  bool done() const noexcept {
    return ok_ && pos_ == in_.size();
  }

private:
  bool fail() {
    ok_ = false;
    pos_ = in_.size();
    return false;
  }

  std::string_view in_;
  std::size_t pos_ = 0;
  bool ok_ = true;
  std::uint32_t version_ = 1;
};

/// `x` by the field list of format version 1 alone, without the version
/// (the values of stores of builds before values carried one).
template <class T>
std::string encode_fields(const T& x) {
  std::string out;
  writer w{out, 1};
  fields(w, x);
  return out;
}

/// Decodes `x` (of format version 1) by its field list; false unless every
/// byte was used.
template <class T>
bool decode_fields(std::string_view bytes, T& x) {
  reader r{bytes};
  fields(r, x);
  return r.done();
}

/// The format version values of `T` are written in; a type whose field list
/// uses `since(N, ...)` specializes it to N or more.
template <class T>
struct format_version {
  static constexpr std::uint32_t value = 1;
};

/// `x` as a stored value: its format version, then its fields (the fields
/// of an older `version` on request: tests and tools write old values).
template <class T>
std::string encode_value(const T& x, std::uint32_t version = format_version<T>::value) {
  std::string out;
  writer w{out, version};
  w.u64(version);
  fields(w, x);
  return out;
}

enum class decoded {
  ok,
  /// Truncated, trailing bytes, an out-of-range field or version 0.
  damaged,
  /// Of a format version newer than this build's.
  newer,
};

/// Decodes a stored value of any format version up to `T`'s; `version` is
/// the value's.
template <class T>
decoded decode_value(std::string_view bytes, T& x, std::uint32_t& version) {
  reader r{bytes};
  if (!r.u32(version) || version == 0)
    return decoded::damaged;
  if (version > format_version<T>::value)
    return decoded::newer;
  r.set_version(version);
  fields(r, x);
  return r.done() ? decoded::ok : decoded::damaged;
}

} // namespace keel::projections::codec
