#include "core/check.h"

#include <cstdio>
#include <cstdlib>

namespace replicator::core::internal {

void CheckFailed(const char* file, int line, const char* condition, const std::string& message) {
  std::fprintf(stderr, "%s:%d: RP_CHECK(%s) failed: %s\n", file, line, condition,
               message.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace replicator::core::internal
