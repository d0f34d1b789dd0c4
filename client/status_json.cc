#include "status_json.h"

#include <nlohmann/json.hpp>

namespace replicator {

namespace {

nlohmann::json Peer(const PeerStatus& p) {
  return {{"id", p.id}, {"cluster", p.cluster}, {"address", p.address}, {"state", p.state}};
}

}  // namespace

std::string StatusJson(const NodeStatus& s) {
  nlohmann::json j;
  j["self"] = Peer(s.self);
  j["committed_keys"] = s.committed_keys;
  j["reservations"] = s.reservations;
  j["puts"] = {{"ok", s.puts_ok},
               {"key_exists", s.puts_key_exists},
               {"conflict", s.puts_conflict},
               {"unavailable", s.puts_unavailable},
               {"invalid", s.puts_invalid},
               {"outcome_unknown", s.puts_outcome_unknown},
               {"retries", s.put_retries},
               {"joined", s.puts_joined}};
  j["gets"] = s.gets;
  j["shards"] = s.shards;
  j["batched"] = {{"calls", s.batched_calls}, {"items", s.batched_items}};
  j["catchup"] = {{"rounds", s.catchup_rounds}, {"keys_pulled", s.catchup_keys_pulled}};
  j["storage"] = {{"writes", s.storage_writes},
                  {"mutations", s.storage_mutations},
                  {"group_commits", s.storage_batches},
                  {"fsyncs", s.storage_syncs},
                  {"write_errors", s.storage_write_errors},
                  {"writes_refused", s.storage_writes_refused}};
  // The node's own cluster's configuration comes first when it is founded.
  const bool founded =
      !s.configurations.empty() && s.configurations.front().cluster == s.self.cluster;
  j["config"] = {{"founded", founded},
                 {"epoch", s.config_epoch},
                 {"voters", founded ? s.configurations.front().voters.size() : 0},
                 {"changes", s.config_changes},
                 {"stale_epoch_refusals", s.stale_epoch_refusals}};
  nlohmann::json configs = nlohmann::json::array();
  for (const Configuration& c : s.configurations) {
    configs.push_back({{"cluster", c.cluster},
                       {"epoch", c.epoch},
                       {"voters", c.voters},
                       {"generation", c.generation}});
  }
  j["configurations"] = std::move(configs);
  j["federation"] = {{"generation", s.federation_generation},
                     {"settled", s.federation_settled},
                     {"generation_refusals", s.generation_refusals}};
  j["uptime_seconds"] = static_cast<double>(s.uptime_ms) / 1000.0;
  j["safety_violations"] = s.safety_violations;
  j["insecure"] = s.insecure;
  nlohmann::json members = nlohmann::json::array();
  for (const PeerStatus& m : s.members) {
    nlohmann::json p = Peer(m);
    p["this_node"] = m.id == s.self.id;
    members.push_back(std::move(p));
  }
  j["members"] = std::move(members);
  return j.dump(2);
}

}  // namespace replicator
