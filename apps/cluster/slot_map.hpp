#pragma once

// Which group owns which slot, as the cluster's controller records it in etcd,
// and how it changes. Key layout (docs/cluster.md):
//
//   /keel/<cluster>/config       {"slots":N}: fixed when the cluster is created
//   /keel/<cluster>/controller   the controller's node id, on its lease
//   /keel/<cluster>/map          {"version":V,"owners":[node id or "" per slot]}
//
// Only the controller writes the map, and only over the revision it read
// (compare-and-swap), so two controllers can never interleave writes. A lost
// node keeps its slots (its data is on its disk; the others answer them with
// 503 until it returns); the map changes when nodes join or leave.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <caf/expected.hpp>

#include "etcd_client.hpp"

namespace keel::cluster {

struct slot_map {
  /// Counts the map's writes (0: never written).
  std::int64_t version = 0;
  /// The owner of each slot; empty: unassigned.
  std::vector<std::string> owners;
  /// etcd's mod revision of the map key when read (0: no map yet).
  std::int64_t revision = 0;

  std::size_t owned_by(std::string_view node) const;
};

/// The map's stored form, and back; `corrupt_record` for anything else.
std::string encode_map(const slot_map& m);
caf::expected<slot_map> decode_map(std::string_view json_text);

/// The next map: unassigned slots and the slots of `leaving` nodes go to the
/// members with the fewest slots; then, while a member has at least two
/// slots more than another, slots move from the fullest to the emptiest, at
/// most `max_moves` in all (slots that were unassigned do not count). Members
/// not in `members` but owning slots keep them (lost nodes). Deterministic:
/// ties go to the smaller node id and the smaller slot.
slot_map plan_map(const slot_map& current, std::vector<std::string> members,
                  const std::vector<std::string>& leaving, std::size_t max_moves);

/// The slots whose owner differs between `a` and `b`.
std::vector<std::uint32_t> moved_slots(const slot_map& a, const slot_map& b);

/// Creates the cluster's config with `slots` if there is none; returns the
/// stored slot count (another node's, when it created it first).
caf::expected<std::uint32_t> ensure_config(etcd_client& etcd, std::string_view cluster,
                                           std::uint32_t slots);

/// The stored map, or an empty one (version 0, no owners) when none was
/// written; `owners` then has `slots` empty entries.
caf::expected<slot_map> read_map(etcd_client& etcd, std::string_view cluster,
                                 std::uint32_t slots);

/// Writes `next` over the map read at `next.revision` (0: none may exist);
/// false when another write came first. Returns the new revision in
/// `next.revision` and bumps its version.
caf::expected<bool> write_map(etcd_client& etcd, std::string_view cluster, slot_map& next);

/// Becomes the cluster's controller if it has none: the controller key is
/// created on `lease` and goes when the lease does. True when `node` is
/// (now or already) the controller.
caf::expected<bool> campaign(etcd_client& etcd, std::string_view cluster, const std::string& node,
                             std::int64_t lease);

/// The controller's node id, if there is one.
caf::expected<std::optional<std::string>> controller_of(etcd_client& etcd,
                                                        std::string_view cluster);

} // namespace keel::cluster
