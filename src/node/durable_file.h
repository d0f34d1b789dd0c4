// Small files in the data dir that must survive a crash whole: read one,
// write one atomically (a temp file, fsync, rename, fsync of the dir), so a
// reader finds the old contents or the new, never a torn mix. Blocking
// syscalls; called at start or on rare events. Thread-compatible.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace replicator::node {

// An errno as a status naming `message`: PermissionDenied for EACCES/EPERM,
// else FailedPrecondition (an operator must fix the file or the dir).
absl::Status ErrnoStatus(int err, const std::string& message);

// The whole file at `path`; NotFoundError if it does not exist. `what`
// names the file in errors ("identity key", "membership directory").
absl::StatusOr<std::string> ReadWholeFile(const std::string& path, const std::string& what);

// Writes all of `data` to `fd` and fsyncs it; errors name `path`.
absl::Status WriteAllAndSync(int fd, const std::string& data, const std::string& path,
                             const std::string& what);

// Makes the directory entries in `dir` durable (after a rename or link).
absl::Status SyncDir(const std::string& dir);

// Replaces `dir`/`name` with `data` atomically and durably (mode 0600).
absl::Status ReplaceFileDurably(const std::string& dir, const std::string& name,
                                const std::string& data, const std::string& what);

}  // namespace replicator::node
