// keel-bench: benchmarks that print figures. The LAST line of every run is
// one JSON object with the figures, for scripts.

#include <iostream>
#include <string>

#include "bench.hpp"

int main(int argc, char** argv) {
  using namespace keel::bench;
  const char* usage = R"(usage: keel-bench <benchmark> [options]

  store  --writers W --count N --size BYTES --durability sync|wal [--data DIR] [--compare]
         N single-event appends from W concurrent writers to random streams among
         10,000; --compare also runs db_bench fillseq with the same value size and
         durability and reports the ratio
  replay [--data DIR] [--runs R]
         global-log and single-stream replay, every event checksum-verified and
         decoded; without DIR it first builds a 2,000,000-event store
  sample --data DIR [--orders N] [--seed S] [--start-us T]
         writes N orders of realistic saga traffic into DIR (demo, tools); orders are
         2 ms apart, the last about now, or from T (microseconds since the epoch):
         with a fixed T and seed the store is the same in every run
  sagas  --orders N --concurrency C --skus S [--faults none|payment-outage] [--lines L]
         [--rate R] [--seed X] [--data DIR] [--timeout SECONDS]
         order sagas end to end through the pipeline on a durable store: C orders
         in flight (closed loop), or R orders/s with at most C in flight (open loop);
         payment-outage fails both gateways for 3 s after 20% of the orders
  projections [--events N] [--data DIR] [--runs R] [--lag-orders N] [--saga-rate R] [--no-lag]
         writes N events of order traffic (or reuses the events in DIR), measures the
         projections' first build and R full rebuilds of every read model, then the
         read models' lag behind the saga pipeline running at half its maximum rate
         (or R/s) on the same store
  http   --orders N --connections C [--url http://HOST:PORT --jwt-secret-file FILE] [--skus K]
         [--data DIR] [--seed X]
         N orders through a keel-node's HTTP API from C keep-alive connections, until
         every saga ended; without --url it runs its own keel-node (fsync on, embedded
         Kafka, store in DIR or a temporary directory) and stops it with SIGTERM

  cluster [--seconds S] [--clients C] [--runs R] [--slots N]
         a throwaway etcd and keel-nodes (Kafka off): orders/s through 3 nodes
         against 1 node alone (R alternating runs of S seconds, C closed-loop
         clients), forwarding overhead (GET on the owner vs on another node, idle
         and under load, p50/p99), SIGKILL to the first 503, a fourth node's join
         until the map is settled and balanced
  failover [--kills N] [--lease-ttl S] [--clients C]
         a replicated group (a primary and its synchronous standby) under load:
         SIGKILL of the primary N times (the killed node comes back as the standby
         in between); from each kill to the first order acknowledged after it,
         p50/p99/max, and every acknowledged order looked up at the end
  replication [--probes N] [--clients C] [--seconds S] [--runs R]
         the cost of synchronous replication: one node alone against the same node
         with a synchronous standby, R alternating runs: an order's 202 latency
         from one client (p50/p99), then sagas/s from C closed-loop clients

The Black Friday of `./keel demo` is keel-demo's.
)";
  if (argc < 2) {
    std::cerr << usage;
    return 2;
  }
  std::string what = argv[1];
  if (what == "store")
    return run_store(argc, argv);
  if (what == "replay")
    return run_replay(argc, argv);
  if (what == "sample")
    return run_sample(argc, argv);
  if (what == "sagas")
    return run_sagas(argc, argv);
  if (what == "projections")
    return run_projections(argc, argv);
  if (what == "http")
    return run_http(argc, argv);
  if (what == "cluster")
    return run_cluster(argc, argv);
  if (what == "failover")
    return run_failover(argc, argv);
  if (what == "replication")
    return run_replication(argc, argv);
  if (what == "-h" || what == "--help") {
    std::cout << usage;
    return 0;
  }
  std::cerr << "keel-bench: unknown benchmark '" << what << "'\n" << usage;
  return 2;
}
