// One-line text forms of protocol values for simulation traces and failure
// reports. Pure functions; the exact text feeds the run's history digest, so it
// must depend only on the values themselves.
#pragma once

#include <string>

#include "core/engine.h"
#include "core/messages.h"
#include "core/types.h"

namespace replicator::sim {

std::string Describe(const core::ProposalId& p);
std::string Describe(const core::Ballot& b);
std::string Describe(core::Decision d);
std::string Describe(const core::Vote& v);
std::string Describe(const core::ReplicaOp& op);
std::string Describe(const core::Request& r);
std::string Describe(const core::Response& r);
std::string Describe(const core::Mutation& m);
std::string Describe(const core::PutOutcome& o);
std::string Describe(const core::GetOutcome& o);
// "c1@3{c1n0,c1n2,c1n3}": cluster, epoch and voters.
std::string Describe(const core::Configuration& c);
std::string Describe(const core::MembershipChange& c);
std::string Describe(const core::ChangeOutcome& o);
// Long values are shortened; the simulator's values are short anyway.
std::string Quote(const std::string& bytes);

}  // namespace replicator::sim
