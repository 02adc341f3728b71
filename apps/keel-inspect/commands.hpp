#pragma once

#include "cli.hpp"

namespace keel::inspect {

// Each returns the process exit code.
int cmd_streams(const args& a);
int cmd_read(const args& a);
int cmd_get(const args& a);
int cmd_tail(const args& a);
int cmd_stats(const args& a);
int cmd_verify(const args& a);
int cmd_audit(const args& a);
int cmd_checkpoints(const args& a);
int cmd_projection(const args& a);
int cmd_cluster(const args& a);

} // namespace keel::inspect
