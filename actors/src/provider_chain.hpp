#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include <caf/actor.hpp>
#include <caf/error.hpp>

#include "keel/actors/messages.hpp"

namespace keel::actors {

/// The providers of a service in order of preference (primary first).
struct provider_route {
  std::string name;
  caf::actor hdl;
};

/// Calls `providers[idx..]` in order until one answers: an error (gateway
/// fault, timeout, open breaker, full bulkhead) moves on to the next
/// provider, and so does a decline when `next_on_decline`. `on_answer(idx,
/// answer)` gets the first answer (or the last decline); `on_fail(err)` the
/// last error when no provider answered.
template <class Self, class OnAnswer, class OnFail>
void call_in_order(Self* self, const std::vector<provider_route>& providers, std::size_t idx,
                   provider_request req, bool next_on_decline, OnAnswer on_answer,
                   OnFail on_fail) {
  auto& hdl = providers[idx].hdl;
  self->request(hdl, caf::infinite, req)
    .then(
      [=, &providers](provider_answer& ans) mutable {
        if (ans.declined && next_on_decline && idx + 1 < providers.size()) {
          call_in_order(self, providers, idx + 1, std::move(req), next_on_decline,
                        std::move(on_answer), std::move(on_fail));
          return;
        }
        on_answer(idx, ans);
      },
      [=, &providers](caf::error& err) mutable {
        if (idx + 1 < providers.size()) {
          call_in_order(self, providers, idx + 1, std::move(req), next_on_decline,
                        std::move(on_answer), std::move(on_fail));
          return;
        }
        on_fail(err);
      });
}

} // namespace keel::actors
