#include "auth.hpp"

#include <cerrno>
#include <cstdlib>
#include <memory>

#include <jwt.h>

namespace keel::node {

namespace {

struct jwt_deleter {
  void operator()(jwt_t* x) const noexcept {
    jwt_free(x);
  }
};
using jwt_ptr = std::unique_ptr<jwt_t, jwt_deleter>;

api_error unauthorized(std::string message) {
  return api_error{401, "unauthorized", std::move(message), "Authorization"};
}

} // namespace

std::variant<principal, api_error> authenticate(std::string_view header, const std::string& secret,
                                                std::int64_t now_s) {
  if (header.empty())
    return unauthorized("a bearer token is required (Authorization: Bearer <JWT>)");
  constexpr std::string_view scheme = "Bearer ";
  if (header.size() <= scheme.size() || header.substr(0, scheme.size()) != scheme)
    return unauthorized("the Authorization header must be \"Bearer <JWT>\"");
  if (secret.empty())
    return unauthorized("this node has no JWT secret configured");
  std::string token{header.substr(scheme.size())};
  if (token.size() > 8192)
    return unauthorized("the token is too long");
  jwt_t* raw = nullptr;
  auto rc = jwt_decode(&raw, token.c_str(), reinterpret_cast<const unsigned char*>(secret.data()),
                       static_cast<int>(secret.size()));
  jwt_ptr jwt{raw};
  if (rc != 0 || !jwt)
    return unauthorized("the token is malformed or its signature is invalid");
  if (jwt_get_alg(jwt.get()) != JWT_ALG_HS256)
    return unauthorized("the token must be signed with HS256");
  const char* sub = jwt_get_grant(jwt.get(), "sub");
  if (sub == nullptr || *sub == '\0')
    return unauthorized("the token has no \"sub\" claim");
  const char* role = jwt_get_grant(jwt.get(), "role");
  std::string role_s = role ? role : "customer";
  if (role_s != "customer" && role_s != "admin")
    return unauthorized("the token's \"role\" must be \"customer\" or \"admin\"");
  errno = 0;
  auto exp = jwt_get_grant_int(jwt.get(), "exp");
  if (errno == 0 && exp <= now_s)
    return unauthorized("the token has expired");
  return principal{sub, role_s == "admin"};
}

std::string mint_token(const std::string& secret, const std::string& subject, bool admin,
                       std::int64_t now_s, std::chrono::seconds ttl) {
  if (secret.empty() || subject.empty())
    return {};
  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0)
    return {};
  jwt_ptr jwt{raw};
  auto ok = jwt_add_grant(jwt.get(), "sub", subject.c_str()) == 0
            && jwt_add_grant(jwt.get(), "role", admin ? "admin" : "customer") == 0
            && jwt_add_grant_int(jwt.get(), "iat", static_cast<long>(now_s)) == 0
            && jwt_add_grant_int(jwt.get(), "exp", static_cast<long>(now_s + ttl.count())) == 0
            && jwt_set_alg(jwt.get(), JWT_ALG_HS256,
                           reinterpret_cast<const unsigned char*>(secret.data()),
                           static_cast<int>(secret.size()))
                 == 0;
  if (!ok)
    return {};
  char* text = jwt_encode_str(jwt.get());
  if (text == nullptr)
    return {};
  std::string result{text};
  std::free(text); // libjwt 1.10 allocates with malloc
  return result;
}

} // namespace keel::node
