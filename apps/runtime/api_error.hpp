#pragma once

#include <string>

namespace keel::runtime {

/// An error answer of the HTTP API: `{"error":{"code","message","field"}}`
/// with HTTP status `status`. `field` names the offending request field
/// ("items[2].quantity") or is empty.
struct api_error {
  int status = 400;
  std::string code;
  std::string message;
  std::string field;
};

/// Renders `err` as the API's JSON error body.
std::string error_body(const api_error& err);

} // namespace keel::runtime
