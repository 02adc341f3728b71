// libFuzzer target: the bearer-token check. Any Authorization header is a
// principal or a 401, never a crash; the input also becomes a token's claims
// signed with the right key, so the claim checks run on arbitrary JSON.

#include <jwt.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "auth.hpp"

namespace {

const std::string secret = "fuzz-secret-of-at-least-thirty-two-bytes";

/// `claims` (whatever they are) signed HS256 with `secret`, or "" when libjwt refuses them.
std::string signed_token(const std::string& claims) {
  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0)
    return {};
  std::unique_ptr<jwt_t, decltype(&jwt_free)> jwt{raw, jwt_free};
  if (jwt_add_grants_json(jwt.get(), claims.c_str()) != 0
      || jwt_set_alg(jwt.get(), JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(secret.data()),
                     static_cast<int>(secret.size()))
           != 0)
    return {};
  std::unique_ptr<char, decltype(&std::free)> text{jwt_encode_str(jwt.get()), std::free};
  return text ? std::string{text.get()} : std::string{};
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace keel;
  std::string input{reinterpret_cast<const char*>(data), size};
  runtime::token_policy policy;
  policy.secret = secret;
  const std::int64_t now = 1'800'000'000;
  auto check = [&](const std::string& header) {
    auto r = runtime::authenticate(header, policy, now);
    if (auto* err = std::get_if<runtime::api_error>(&r); err && err->status != 401)
      std::abort();
  };
  check(input);
  check("Bearer " + input);
  if (auto token = signed_token(input); !token.empty())
    check("Bearer " + token);
  return 0;
}
