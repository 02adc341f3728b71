#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include <caf/expected.hpp>

#include "api_error.hpp"

namespace keel::runtime {

/// Who sent a request, from its bearer token.
struct principal {
  /// Claim `sub`: the customer id (or an operator's name for admins).
  std::string subject;
  /// Claim `role` is "admin".
  bool admin = false;
  /// Claim `tier` is "premium" (absent or "standard": false). The payment
  /// retry queue serves premium orders first, so only the token says so.
  bool premium = false;
};

/// How bearer tokens are checked.
struct token_policy {
  /// The HS256 key: at least `min_secret_bytes` bytes.
  std::string secret;
  /// The longest a token may still be valid (`exp` - now).
  std::chrono::seconds max_ttl{24 * 3600};
  /// Clock skew allowed on `exp`, `nbf` and `iat`.
  std::chrono::seconds skew{60};
  /// When not empty: the `iss` claim must equal it.
  std::string issuer;
  /// When not empty: the `aud` claim (a string or an array) must contain it.
  std::string audience;
};

/// RFC 7518 section 3.2: an HS256 key has at least 256 bits.
constexpr std::size_t min_secret_bytes = 32;

/// `invalid_argument` naming `source` ("in FILE") unless `secret` has at
/// least `min_secret_bytes`.
caf::error check_secret(const std::string& secret, const std::string& source);

/// The JWT secret from `file` (one trailing newline dropped) or, when `file`
/// is empty, from the environment variable KEEL_JWT_SECRET; never from a
/// command line. `invalid_argument` when there is none, the file cannot be
/// read, or the secret fails `check_secret`.
caf::expected<std::string> load_secret(const std::string& file);

/// Checks an `Authorization` header value: "Bearer <JWT>" signed with HS256
/// and the policy's secret, with a non-empty string `sub`, a `role` of
/// "customer" or "admin" (absent: customer), an integer `exp` in the future
/// but no further than `max_ttl`, integer `nbf` and `iat` (when present) not
/// in the future, and `iss` / `aud` as configured (skew allowed on times;
/// `now_s` in seconds since the epoch). Any other token is a 401
/// `api_error` saying why; no other algorithm is accepted (not "none", not
/// HS512, not RS256 with the secret as key). Thread-safe.
std::variant<principal, api_error> authenticate(std::string_view header, const token_policy& policy,
                                                std::int64_t now_s);

/// A token for `subject` with role "admin" or "customer", issued at `now_s`
/// and valid for `ttl`, signed HS256 with `secret`, with `iss` / `aud` when
/// given, and `tier` "premium" when `premium`. Empty on failure (empty
/// secret or subject).
std::string mint_token(const std::string& secret, const std::string& subject, bool admin,
                       std::int64_t now_s, std::chrono::seconds ttl,
                       const std::string& issuer = {}, const std::string& audience = {},
                       bool premium = false);

} // namespace keel::runtime
