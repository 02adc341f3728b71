#pragma once

#include <cstdint>

/// Forward declarations of the actors module.
namespace keel::actors {

/// How actors' appends complete: `asynchronous` (the store's committer
/// thread posts completions; production) or `synchronous` (blocking appends
/// inside the handler; for CAF's deterministic test scheduler, which must
/// not be entered from another thread).
enum class append_mode : std::uint8_t { asynchronous, synchronous };

class breaker;
class catalog;
class registry;
class pipeline;
class provider;
class simulated_provider;
struct order_state;
struct order_view;
struct pipeline_config;

} // namespace keel::actors
