// keel-inspect: look into an event store, read-only beside a running node.
//
// Exit codes: 0 ok, 1 findings (verify, audit, a corrupt record on the way),
// 2 usage or I/O error.

#include "commands.hpp"

namespace {

int run(int argc, char** argv) {
  using namespace keel::inspect;
  const option_spec spec = {
    {"--data", true},       {"--prefix", true},      {"--after", true},
    {"--limit", true},      {"--from", true},        {"--follow", false},
    {"--type", true},       {"--stream-prefix", true}, {"--correlation", true},
    {"--since", true},      {"--until", true},       {"--poll", true},
    {"--top", true},        {"--bucket", true},      {"--require-terminal", false},
    {"--stuck-after", true}, {"--max", true},        {"--position", true},
    {"--by", true},         {"--note", true},        {"--all", false},
    {"--node", true},       {"--token", true},       {"--etcd", true},
    {"--cluster", true},
  };
  auto a = parse_args(argc, argv, spec);
  if (a.command.empty())
    usage_error("no command given");
  // Options must belong to the command.
  static const std::map<std::string, std::set<std::string>> allowed = {
    {"streams", {"--data", "--prefix", "--after", "--limit"}},
    {"read", {"--data", "--from", "--limit"}},
    {"get", {"--data"}},
    {"tail", {"--data", "--from", "--limit", "--follow", "--type", "--stream-prefix",
              "--correlation", "--since", "--until", "--poll"}},
    {"stats", {"--data", "--since", "--until", "--top", "--bucket"}},
    {"verify", {"--data"}},
    {"audit", {"--data", "--require-terminal", "--stuck-after", "--max"}},
    {"checkpoints", {"--data"}},
    {"projection", {"--data", "--position", "--by", "--note", "--all", "--node", "--token"}},
    {"cluster", {"--etcd", "--cluster"}},
  };
  auto cmd = allowed.find(a.command);
  if (cmd == allowed.end())
    usage_error("unknown command '" + a.command + "'");
  auto check = [&](const std::string& name) {
    if (cmd->second.count(name) == 0)
      usage_error(name + " does not apply to " + a.command);
  };
  for (const auto& [name, value] : a.opts)
    check(name);
  for (const auto& name : a.flags)
    check(name);
  if (a.command == "streams")
    return cmd_streams(a);
  if (a.command == "read")
    return cmd_read(a);
  if (a.command == "get")
    return cmd_get(a);
  if (a.command == "tail")
    return cmd_tail(a);
  if (a.command == "stats")
    return cmd_stats(a);
  if (a.command == "verify")
    return cmd_verify(a);
  if (a.command == "audit")
    return cmd_audit(a);
  if (a.command == "checkpoints")
    return cmd_checkpoints(a);
  if (a.command == "cluster")
    return cmd_cluster(a);
  return cmd_projection(a);
}

} // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const keel::inspect::exit_now& e) {
    return e.code;
  }
}
