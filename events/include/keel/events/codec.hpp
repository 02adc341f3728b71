#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <caf/expected.hpp>

#include "keel/events/commands.hpp"
#include "keel/events/event.hpp"

namespace keel::events {

/// Encodes the payload of `ev` with schema version `version` (default: the
/// version this build writes; older versions exist to build test corpora).
/// Format: Keel's little-endian binary archive (docs/storage-format.md).
std::string encode(const event& ev, std::uint16_t version = 0);

/// Decodes a payload of type `type` at schema `version`, upcasting older
/// versions to the current struct. Never throws; never allocates more than a
/// small constant times `bytes.size()` (a length prefix larger than the bytes
/// that remain is `malformed_payload`). Errors: `unknown_event_type` for an
/// unknown type or a version newer than this build, `malformed_payload` for
/// truncated, trailing or out-of-range bytes, naming the offset.
caf::expected<event> decode(std::string_view type, std::uint16_t version,
                            std::string_view bytes);

/// Encodes a place_order command (payment retry queue, HTTP replay).
std::string encode(const place_order& cmd);

/// Decodes a place_order command; errors as for `decode`.
caf::expected<place_order> decode_place_order(std::string_view bytes);

} // namespace keel::events
