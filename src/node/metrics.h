// The node's /metrics and /healthz answers, computed from a status report
// (engine and storage counters, the membership) and NodeMetrics. Pure
// functions; the node calls them on its reactor thread. The metric names
// are listed in README.md ("Monitoring").
#pragma once

#include <optional>
#include <string>

#include "node/convert.h"
#include "node/node_metrics.h"
#include "util/histogram.h"

namespace replicator::node {

// Prometheus text exposition format. `fsync` may be null (memory storage).
std::string RenderMetrics(const StatusReport& status, const NodeMetrics& metrics,
                          const util::HistogramSnapshot* fsync);

// Why the node is not ready to serve, or nullopt when it is: it must be a
// voter of a founded cluster, or a learner that has caught up (a completed
// catch-up round and a settled federation). Storage is open whenever a
// status report exists (Node::Start opens it first).
std::optional<std::string> NotReady(const StatusReport& status);

}  // namespace replicator::node
