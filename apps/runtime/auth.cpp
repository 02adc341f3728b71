#include "auth.hpp"

#include "keel/events/error.hpp"

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>

#include <nlohmann/json.hpp>

#include <jwt.h>

namespace keel::runtime {

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

/// exp (required, within the node's longest lifetime), nbf and iat (not in
/// the future), with the policy's clock skew.
std::optional<api_error> check_times(const nlohmann::json& claims, const token_policy& policy,
                                     std::int64_t now_s) {
  auto skew = static_cast<std::int64_t>(policy.skew.count());
  auto exp = claims.find("exp");
  if (exp == claims.end() || !exp->is_number_integer())
    return unauthorized("the token needs an integer \"exp\" claim");
  if (exp->get<std::int64_t>() + skew <= now_s)
    return unauthorized("the token has expired");
  if (exp->get<std::int64_t>() > now_s + static_cast<std::int64_t>(policy.max_ttl.count()) + skew)
    return unauthorized("the token is valid for longer than this node accepts ("
                        + std::to_string(policy.max_ttl.count()) + " s)");
  for (auto name : {"nbf", "iat"}) {
    auto t = claims.find(name);
    if (t == claims.end())
      continue;
    if (!t->is_number_integer())
      return unauthorized(std::string{"the token's \""} + name + "\" must be an integer");
    if (t->get<std::int64_t>() > now_s + skew)
      return unauthorized(std::string{"the token's \""} + name + "\" is in the future");
  }
  return std::nullopt;
}

/// iss and aud, when the node requires them.
std::optional<api_error> check_issuer_audience(const nlohmann::json& claims,
                                               const token_policy& policy) {
  if (!policy.issuer.empty()) {
    auto iss = claims.find("iss");
    if (iss == claims.end() || !iss->is_string() || iss->get<std::string>() != policy.issuer)
      return unauthorized("the token's issuer is not " + policy.issuer);
  }
  if (!policy.audience.empty()) {
    auto aud = claims.find("aud");
    bool ok = false;
    if (aud != claims.end() && aud->is_string())
      ok = aud->get<std::string>() == policy.audience;
    else if (aud != claims.end() && aud->is_array())
      for (auto& x : *aud)
        ok = ok || (x.is_string() && x.get<std::string>() == policy.audience);
    if (!ok)
      return unauthorized("the token is not meant for audience " + policy.audience);
  }
  return std::nullopt;
}

} // namespace

caf::error check_secret(const std::string& secret, const std::string& source) {
  if (secret.size() >= min_secret_bytes)
    return caf::error{};
  return make_error(errc::invalid_argument,
                    "the JWT secret " + source + " has " + std::to_string(secret.size())
                      + " bytes; at least " + std::to_string(min_secret_bytes)
                      + " are needed (e.g. head -c 48 /dev/urandom | base64 > FILE)");
}

caf::expected<std::string> load_secret(const std::string& file) {
  std::string secret;
  std::string source;
  if (!file.empty()) {
    std::ifstream in{file, std::ios::binary};
    if (!in)
      return make_error(errc::invalid_argument, "cannot read the JWT secret file " + file);
    secret.assign(std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{});
    if (!secret.empty() && secret.back() == '\n')
      secret.pop_back();
    if (!secret.empty() && secret.back() == '\r')
      secret.pop_back();
    source = "in " + file;
  } else if (auto* env = std::getenv("KEEL_JWT_SECRET"); env != nullptr && *env != '\0') {
    secret = env;
    source = "in KEEL_JWT_SECRET";
  } else {
    return make_error(errc::invalid_argument,
                      "no JWT secret: give --jwt-secret-file FILE or set KEEL_JWT_SECRET");
  }
  if (auto err = check_secret(secret, source))
    return err;
  return secret;
}

std::variant<principal, api_error> authenticate(std::string_view header, const token_policy& policy,
                                                std::int64_t now_s) {
  if (header.empty())
    return unauthorized("a bearer token is required (Authorization: Bearer <JWT>)");
  constexpr std::string_view scheme = "Bearer ";
  if (header.size() <= scheme.size() || header.substr(0, scheme.size()) != scheme)
    return unauthorized("the Authorization header must be \"Bearer <JWT>\"");
  auto& secret = policy.secret;
  if (secret.size() < min_secret_bytes)
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
  // The claims are read from their JSON, with their types checked here
  // rather than through libjwt's integer getters, whose error reporting
  // differs between versions.
  std::unique_ptr<char, decltype(&std::free)> text{jwt_get_grants_json(jwt.get(), nullptr),
                                                   &std::free};
  auto claims = nlohmann::json::parse(text ? text.get() : "", nullptr, false);
  if (!claims.is_object())
    return unauthorized("the token's claims are not a JSON object");
  auto sub = claims.find("sub");
  if (sub == claims.end() || !sub->is_string() || sub->get_ref<const std::string&>().empty())
    return unauthorized("the token has no \"sub\" claim");
  std::string role = "customer";
  if (auto r = claims.find("role"); r != claims.end()) {
    if (!r->is_string())
      return unauthorized("the token's \"role\" must be \"customer\" or \"admin\"");
    role = r->get<std::string>();
  }
  if (role != "customer" && role != "admin")
    return unauthorized("the token's \"role\" must be \"customer\" or \"admin\"");
  std::string tier = "standard";
  if (auto t = claims.find("tier"); t != claims.end()) {
    if (!t->is_string())
      return unauthorized("the token's \"tier\" must be \"standard\" or \"premium\"");
    tier = t->get<std::string>();
  }
  if (tier != "standard" && tier != "premium")
    return unauthorized("the token's \"tier\" must be \"standard\" or \"premium\"");
  if (auto err = check_times(claims, policy, now_s))
    return *err;
  if (auto err = check_issuer_audience(claims, policy))
    return *err;
  return principal{sub->get<std::string>(), role == "admin", tier == "premium"};
}

std::string mint_token(const std::string& secret, const std::string& subject, bool admin,
                       std::int64_t now_s, std::chrono::seconds ttl, const std::string& issuer,
                       const std::string& audience, bool premium) {
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
            && (issuer.empty() || jwt_add_grant(jwt.get(), "iss", issuer.c_str()) == 0)
            && (audience.empty() || jwt_add_grant(jwt.get(), "aud", audience.c_str()) == 0)
            && (!premium || jwt_add_grant(jwt.get(), "tier", "premium") == 0)
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

} // namespace keel::runtime
