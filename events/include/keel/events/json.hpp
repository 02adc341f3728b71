#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

#include "keel/events/event.hpp"

namespace keel::events {

struct record;

/// Renders `ev` as a JSON object of its fields (for the tools, Kafka, HTTP).
nlohmann::json to_json_value(const event& ev);

/// Renders `j` as compact JSON text; bytes that are not UTF-8 (payload strings
/// are arbitrary bytes) become U+FFFD instead of an exception.
std::string dump_json(const nlohmann::json& j);

/// Renders `ev` as compact JSON text (never throws on odd bytes).
std::string to_json(const event& ev);

/// Renders a record: its metadata and, when the payload decodes, `"data"`;
/// otherwise `"error"` with the reason. Ids as hex, timestamps as µs and ISO-8601.
nlohmann::json to_json_value(const record& rec);

/// Renders microseconds since the epoch as ISO-8601 UTC ("2026-11-22T03:04:38.123456Z").
std::string format_timestamp(std::int64_t us);

} // namespace keel::events
