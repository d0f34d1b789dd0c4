#include "sim/history.h"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

#include "absl/strings/str_cat.h"
#include "sim/describe.h"

namespace replicator::sim {

History::History(const core::TimeMs* now, bool print) : now_(now), print_(print) {}

void History::Record(std::string line, const Tags& tags, LineKind kind, int node) {
  std::string full = absl::StrCat("t=", *now_, " ", line);
  for (unsigned char c : full) {
    digest_ ^= c;
    digest_ *= 1099511628211ull;
  }
  digest_ ^= '\n';
  digest_ *= 1099511628211ull;
  if (print_) std::printf("%s\n", full.c_str());
  const uint32_t begin = static_cast<uint32_t>(tag_pool_.size());
  tag_pool_.insert(tag_pool_.end(), tags.begin(), tags.end());
  lines_.push_back(Line{std::move(full), begin, static_cast<uint32_t>(tags.size()), kind, node});
}

int32_t History::Intern(std::string tag) {
  auto [it, fresh] = tag_ids_.emplace(std::move(tag), static_cast<int32_t>(tag_ids_.size()));
  return it->second;
}

void History::TagKey(Tags& tags, const core::Key& key) {
  tags.push_back(Intern(absl::StrCat("k", key)));
}

void History::TagClientKey(Tags& tags, const core::Key& key) {
  TagKey(tags, key);
  tags.push_back(Intern(absl::StrCat("c", key)));
}

void History::TagProposal(Tags& tags, const core::ProposalId& p) {
  std::string name = Describe(p);
  auto key = proposal_key_.find(name);
  if (key != proposal_key_.end()) TagKey(tags, key->second);
  tags.push_back(Intern(absl::StrCat("p", std::move(name))));
}

void History::TagCluster(Tags& tags, const core::ClusterId& cluster) {
  const int32_t tag = Intern(absl::StrCat("m", cluster));
  if (std::find(tags.begin(), tags.end(), tag) == tags.end()) tags.push_back(tag);
}

History::Tags History::TagsOf(const core::Request& request) {
  Tags tags;
  const core::ReplicaOp* op = nullptr;
  if (auto* h = std::get_if<core::HandleRequest>(&request)) op = &h->op;
  if (auto* f = std::get_if<core::ForwardRequest>(&request)) op = &f->op;
  if (op != nullptr) {
    std::visit(
        [&](const auto& o) {
          proposal_key_.emplace(Describe(o.proposal), o.key);
          TagProposal(tags, o.proposal);
        },
        *op);
  } else if (auto* a = std::get_if<core::AcceptRequest>(&request)) {
    TagProposal(tags, a->proposal);
  } else if (auto* pr = std::get_if<core::PrepareRequest>(&request)) {
    TagProposal(tags, pr->proposal);
  } else if (auto* r = std::get_if<core::ReadRequest>(&request)) {
    TagKey(tags, r->key);
  } else if (auto* rs = std::get_if<core::ResolveRequest>(&request)) {
    TagProposal(tags, rs->proposal);
  } else if (auto* cp = std::get_if<core::ConfigPrepareRequest>(&request)) {
    TagCluster(tags, cp->cluster);
  } else if (auto* ca = std::get_if<core::ConfigAcceptRequest>(&request)) {
    TagCluster(tags, ca->cluster);
  } else if (auto* cl = std::get_if<core::ConfigLearnRequest>(&request)) {
    for (const core::Configuration& c : cl->known) TagCluster(tags, c.cluster);
  }
  return tags;
}

void History::AddTags(Tags& tags, const core::Response& response) {
  if (auto* pull = std::get_if<core::PullResponse>(&response)) {
    for (const core::PulledEntry& e : pull->entries) TagKey(tags, e.key);
  } else if (auto* read = std::get_if<core::ReadResponse>(&response)) {
    if (read->kind == core::ReadResponse::Kind::kReserved) TagProposal(tags, read->holder);
  }
}

void History::AddTags(Tags& tags, const core::Mutation& mutation) {
  std::visit(
      [&](const auto& m) {
        using M = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<M, core::PutReservation>) {
          proposal_key_.emplace(Describe(m.reservation.proposal), m.reservation.key);
          TagProposal(tags, m.reservation.proposal);
        } else if constexpr (std::is_same_v<M, core::PutAcceptor>) {
          TagProposal(tags, m.record.proposal);
        } else if constexpr (std::is_same_v<M, core::DeleteAcceptor>) {
          TagProposal(tags, m.proposal);
        } else if constexpr (std::is_same_v<M, core::PutConfig>) {
          TagCluster(tags, m.config.cluster);
        } else if constexpr (std::is_same_v<M, core::PutConfigAcceptor>) {
          TagCluster(tags, m.record.cluster);
        } else {
          TagKey(tags, m.key);
        }
      },
      mutation);
}

// A violation about a key: every event touching the key (its client calls,
// its proposals' messages and writes, catch-up pulls carrying it). About a
// proposal (with or without its key): the proposal's events and the client
// calls of its key. About a cluster's membership: its configurations as
// each engine adopts them, the changes asked and their outcomes, joins,
// pauses, and the configuration traffic and writes.
std::vector<int32_t> History::WantedTags(const Violation& v, std::string* of) const {
  std::vector<int32_t> want;
  auto find = [&](const std::string& tag) {
    auto it = tag_ids_.find(tag);
    if (it != tag_ids_.end()) want.push_back(it->second);
  };
  if (v.subject.proposal) {
    const std::string name = Describe(*v.subject.proposal);
    find(absl::StrCat("p", name));
    std::optional<core::Key> key = v.subject.key;
    if (!key) {
      auto k = proposal_key_.find(name);
      if (k != proposal_key_.end()) key = k->second;
    }
    if (key) find(absl::StrCat("c", *key));
    *of =
        absl::StrCat("events of proposal ", name,
                     key ? absl::StrCat(" and client calls of key ", Quote(*key)) : std::string());
  } else if (v.subject.key) {
    find(absl::StrCat("k", *v.subject.key));
    *of = absl::StrCat("events touching key ", Quote(*v.subject.key));
  }
  if (v.subject.cluster) {
    find(absl::StrCat("m", *v.subject.cluster));
    absl::StrAppend(of, of->empty() ? "" : "; ", "membership events of cluster ",
                    *v.subject.cluster);
  }
  return want;
}

std::vector<size_t> History::LinesTagged(const std::vector<int32_t>& want) const {
  std::vector<size_t> chosen;
  for (size_t i = 0; i < lines_.size(); ++i) {
    const Line& line = lines_[i];
    for (uint32_t t = 0; t < line.tags_count; ++t) {
      if (std::find(want.begin(), want.end(), tag_pool_[line.tags_begin + t]) != want.end()) {
        chosen.push_back(i);
        break;
      }
    }
  }
  return chosen;
}

std::vector<size_t> History::WithContext(const std::vector<size_t>& chosen,
                                         const std::vector<core::PeerId>& node_ids) const {
  std::vector<bool> involved(node_ids.size(), false);
  for (size_t i : chosen) {
    for (size_t n = 0; n < node_ids.size(); ++n) {
      if (lines_[i].text.find(node_ids[n]) != std::string::npos) involved[n] = true;
    }
  }
  std::vector<size_t> lines;
  size_t next = 0;
  for (size_t i = 0; i < lines_.size(); ++i) {
    const Line& line = lines_[i];
    if (next < chosen.size() && chosen[next] == i) {
      lines.push_back(i);
      ++next;
    } else if (line.kind == LineKind::kNodeFault && line.node >= 0 && involved[line.node]) {
      lines.push_back(i);
    } else if (line.kind == LineKind::kGlobal && i > chosen.front()) {
      lines.push_back(i);
    }
  }
  return lines;
}

History::Excerpt History::ExcerptOf(const Violation& v, const std::vector<core::PeerId>& node_ids,
                                    size_t tail) const {
  Excerpt excerpt;
  const std::vector<size_t> chosen = LinesTagged(WantedTags(v, &excerpt.of));
  if (chosen.empty()) {
    excerpt.of = absl::StrCat("the last ", tail, " events");
    const size_t from = lines_.size() > tail ? lines_.size() - tail : 0;
    for (size_t i = from; i < lines_.size(); ++i) excerpt.lines.push_back(lines_[i].text);
    return excerpt;
  }
  const std::vector<size_t> lines = WithContext(chosen, node_ids);
  // A hot key's history can be long: keep its start and its end.
  constexpr size_t kHead = 100, kTail = 500;
  for (size_t j = 0; j < lines.size(); ++j) {
    if (lines.size() > kHead + kTail && j == kHead) {
      excerpt.lines.push_back(
          absl::StrCat("... ", lines.size() - kHead - kTail, " events of the excerpt left out"));
      j = lines.size() - kTail;
    }
    excerpt.lines.push_back(lines_[lines[j]].text);
  }
  return excerpt;
}

}  // namespace replicator::sim
