#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "api_error.hpp"

namespace keel::node {

/// Who sent a request, from its bearer token.
struct principal {
  /// Claim `sub`: the customer id (or an operator's name for admins).
  std::string subject;
  /// Claim `role` is "admin".
  bool admin = false;
};

/// Checks an `Authorization` header value: "Bearer <JWT>" signed with HS256
/// and `secret`, with a non-empty `sub`, a `role` of "customer" or "admin"
/// (absent: customer) and, when present, an `exp` in the future (`now_s`,
/// seconds since the epoch). Any other token is a 401 `api_error`; no other
/// algorithm is accepted (not "none", not RS256 with the secret as key).
/// Thread-safe.
std::variant<principal, api_error> authenticate(std::string_view header, const std::string& secret,
                                                std::int64_t now_s);

/// A token for `subject` with role "admin" or "customer", valid for `ttl`
/// from `now_s`, signed HS256 with `secret`. Empty on failure (empty secret).
std::string mint_token(const std::string& secret, const std::string& subject, bool admin,
                       std::int64_t now_s, std::chrono::seconds ttl);

} // namespace keel::node
