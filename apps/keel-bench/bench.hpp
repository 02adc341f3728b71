#pragma once

// The benchmarks of keel-bench (one function per subcommand); what they
// share with other programs is in apps/load.

#include "measure.hpp"

namespace keel::bench {

int run_store(int argc, char** argv);
int run_replay(int argc, char** argv);
int run_sample(int argc, char** argv);
int run_sagas(int argc, char** argv);
int run_projections(int argc, char** argv);
int run_http(int argc, char** argv);
int run_cluster(int argc, char** argv);
int run_failover(int argc, char** argv);
int run_replication(int argc, char** argv);

} // namespace keel::bench
