// History: the whole event history of one simulation run — every trace line
// in order, each tagged with the keys and proposals it touches — its FNV-1a
// digest, and the excerpt that shows a violation. Owns the lines, the
// interned tags and the proposal -> key map; reads the run's clock through a
// pointer. Single-threaded, one per run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "core/messages.h"
#include "core/types.h"
#include "sim/checker.h"

namespace replicator::sim {

class History {
 public:
  // Interned key and proposal tags of one line (see Excerpt).
  using Tags = std::vector<int32_t>;
  enum class LineKind : uint8_t {
    kEvent,      // tagged with the keys and proposals it touches
    kNodeFault,  // a node crashed or started: kept for the nodes involved
    kGlobal,     // partition, heal, phase: kept inside the excerpt's window
  };
  struct Excerpt {
    std::string of;  // what the excerpt was cut to
    std::vector<std::string> lines;
  };

  // `now` must outlive the history; `print` echoes every line to stdout.
  History(const core::TimeMs* now, bool print);

  // Appends "t=<now> <line>" and folds it, with a newline, into the digest.
  void Record(std::string line, const Tags& tags = {}, LineKind kind = LineKind::kEvent,
              int node = -1);

  // Tags: interned "key" and "proposal" identities. A proposal's tag set
  // also carries its key once the key is known.
  void TagKey(Tags& tags, const core::Key& key);
  void TagClientKey(Tags& tags, const core::Key& key);  // a client call or answer
  void TagProposal(Tags& tags, const core::ProposalId& p);
  // Membership of `cluster`: its configurations, changes and their traffic.
  void TagCluster(Tags& tags, const core::ClusterId& cluster);
  // Also learns the key of the request's proposal, if it names both.
  Tags TagsOf(const core::Request& request);
  void AddTags(Tags& tags, const core::Response& response);
  void AddTags(Tags& tags, const core::Mutation& mutation);

  // The shortest history that shows `v` (see SimResult::excerpt);
  // `node_ids[i]` is node i's id, `tail` the lines kept when `v` names
  // neither key nor proposal.
  Excerpt ExcerptOf(const Violation& v, const std::vector<core::PeerId>& node_ids,
                    size_t tail) const;

  size_t size() const { return lines_.size(); }
  // FNV-1a over every line in order.
  uint64_t digest() const { return digest_; }

 private:
  struct Line {
    std::string text;
    uint32_t tags_begin;
    uint32_t tags_count;
    LineKind kind;
    int node;  // kNodeFault
  };

  int32_t Intern(std::string tag);
  // The tags a violation about `v` wants; sets `*of` to what they select.
  std::vector<int32_t> WantedTags(const Violation& v, std::string* of) const;
  // Indexes of the lines carrying any of `want`, in order.
  std::vector<size_t> LinesTagged(const std::vector<int32_t>& want) const;
  // `chosen`, with the crashes and restarts of the nodes they mention and
  // the global lines from the first of them on.
  std::vector<size_t> WithContext(const std::vector<size_t>& chosen,
                                  const std::vector<core::PeerId>& node_ids) const;

  const core::TimeMs* now_;
  bool print_;
  std::vector<Line> lines_;  // the whole history
  Tags tag_pool_;            // Line tags, concatenated
  absl::flat_hash_map<std::string, int32_t> tag_ids_;
  absl::flat_hash_map<std::string, core::Key> proposal_key_;  // Describe(p) -> key
  uint64_t digest_ = 1469598103934665603ull;                  // FNV-1a offset basis
};

}  // namespace replicator::sim
