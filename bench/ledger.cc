#include "ledger.h"

#include <utility>

#include "fmt/format.h"

namespace replicator::bench {

std::string_view OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kOk:
      return "ok";
    case Outcome::kKeyExists:
      return "key_exists";
    case Outcome::kConflict:
      return "conflict";
    case Outcome::kUnavailable:
      return "unavailable";
    case Outcome::kInvalidArgument:
      return "invalid_argument";
    case Outcome::kError:
      return "error";
    case Outcome::kFound:
      return "found";
    case Outcome::kNotFound:
      return "not_found";
    case Outcome::kEcho:
      return "echo";
  }
  return "?";
}

uint64_t Ledger::NewKey() {
  records_.emplace_back();
  return records_.size() - 1;
}

void Ledger::OnPut(uint64_t key, uint64_t put_id, Outcome outcome, std::string_view existing) {
  KeyRecord& r = records_.at(key);
  if (outcome == Outcome::kOk) {
    if (r.ok_put == kNone) {
      r.ok_put = put_id;
    } else if (r.ok_put != put_id) {
      Violation(key, fmt::format("puts {} and {} were both answered ok", r.ok_put, put_id));
    }
  } else if (outcome == Outcome::kKeyExists) {
    if (existing == keyspace_->Value(put_id)) {
      Violation(key, fmt::format("put {} was answered keyExists naming its own value", put_id));
    }
    uint64_t h = Hash(existing);
    if (r.existing_hash == 0) {
      r.existing_hash = h;
    } else if (r.existing_hash != h) {
      Violation(key, "two keyExists answers named different values");
    }
  }
}

void Ledger::OnGet(uint64_t key, bool found, std::string_view value, bool authoritative) {
  const KeyRecord& r = records_.at(key);
  if (r.ok_put == kNone) return;
  if (found) {
    if (value != keyspace_->Value(r.ok_put)) {
      Violation(key, fmt::format("a get returned a value other than that of put {}, answered ok",
                                 r.ok_put));
    }
  } else if (authoritative) {
    Violation(
        key, fmt::format("not found by a linearizable get after put {} was answered ok", r.ok_put));
  }
}

std::optional<uint64_t> Ledger::OkPut(uint64_t key) const {
  const KeyRecord& r = records_.at(key);
  if (r.ok_put == kNone) return std::nullopt;
  return r.ok_put;
}

void Ledger::Finish() {
  for (uint64_t key = 0; key < records_.size(); ++key) {
    const KeyRecord& r = records_[key];
    if (r.ok_put == kNone || r.existing_hash == 0) continue;
    if (Hash(keyspace_->Value(r.ok_put)) != r.existing_hash) {
      Violation(key, fmt::format("a keyExists answer named a value other than that of put {}, "
                                 "answered ok",
                                 r.ok_put));
    }
  }
}

void Ledger::Violation(uint64_t key, std::string what) {
  ++violations_;
  if (examples_.size() < 10) {
    examples_.push_back(fmt::format("key {}: {}", keyspace_->Key(key), what));
  }
}

uint64_t Ledger::Hash(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a, then mixed
  for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ull;
  h = Keyspace::Mix(h);
  return h == 0 ? 1 : h;
}

}  // namespace replicator::bench
