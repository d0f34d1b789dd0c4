// RP_CHECK: an engine bug aborts the process with a message, at once and
// loudly, instead of throwing (an exception would unwind through protocol
// state half-changed) or reading past a container's end. For conditions
// that are the engine's own invariants, never for bad input from outside.
//
//   RP_CHECK(it != puts_.end(), "put ", id, " is not in flight");
#pragma once

#include <string>

#include "absl/strings/str_cat.h"

namespace replicator::core::internal {

[[noreturn]] void CheckFailed(const char* file, int line, const char* condition,
                              const std::string& message);

}  // namespace replicator::core::internal

#define RP_CHECK(condition, ...)                                                   \
  do {                                                                             \
    if (!(condition)) [[unlikely]] {                                               \
      ::replicator::core::internal::CheckFailed(__FILE__, __LINE__, #condition,    \
                                                ::absl::StrCat(__VA_ARGS__));      \
    }                                                                              \
  } while (false)
