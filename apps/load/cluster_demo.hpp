#pragma once

// `./keel cluster-demo`: a throwaway etcd and three keel-nodes, traffic
// through all of them, one SIGKILLed and restarted, a fourth added; what
// happened is printed, every acknowledged order checked and every store
// audited.

#include <cstdint>

namespace keel::bench {

struct cluster_demo_options {
  std::uint32_t slots = 64;
  /// Seconds of traffic in each phase.
  unsigned phase_seconds = 4;
};

/// 0 when every acknowledged order completed and every store audits clean.
int run_cluster_demo(const cluster_demo_options& o);

} // namespace keel::bench
