// The node's log: one line per event on stderr,
//   2026-12-02T13:05:01.123Z INFO  directory peer=12D3KooW...: cluster c2 founded by ...
// an RFC 3339 UTC timestamp, the level, the component, this node's peer id
// and the message. Lines under the level set by SetLogLevel are dropped.
// Log() may be called from any thread (one write per line); SetLogLevel and
// SetLogPeer are called at start, before other threads log. Header-only.
//
//   util::Log(util::LogLevel::kWarn, "storage", "slow fsync: {} ms", ms);
#pragma once

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "fmt/format.h"

namespace replicator::util {

enum class LogLevel : int { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

namespace log_internal {
inline std::atomic<int> level{static_cast<int>(LogLevel::kInfo)};
inline std::string peer = "-";  // set before other threads log
}  // namespace log_internal

// "debug", "info", "warn" (or "warning"), "error"; nullopt for anything else.
inline std::optional<LogLevel> ParseLogLevel(std::string_view s) {
  if (s == "debug") return LogLevel::kDebug;
  if (s == "info") return LogLevel::kInfo;
  if (s == "warn" || s == "warning") return LogLevel::kWarn;
  if (s == "error") return LogLevel::kError;
  return std::nullopt;
}

inline void SetLogLevel(LogLevel l) {
  log_internal::level.store(static_cast<int>(l), std::memory_order_relaxed);
}
inline void SetLogPeer(std::string peer) { log_internal::peer = std::move(peer); }

inline bool LogEnabled(LogLevel l) {
  return static_cast<int>(l) >= log_internal::level.load(std::memory_order_relaxed);
}

// "2026-12-02T13:05:01.123Z".
inline std::string Rfc3339Now() {
  auto now = std::chrono::system_clock::now();
  std::time_t secs = std::chrono::system_clock::to_time_t(now);
  auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm utc{};
  gmtime_r(&secs, &utc);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &utc);
  return fmt::format("{}.{:03d}Z", buf, static_cast<int>(millis));
}

inline const char* LevelName(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug:
      return "DEBUG";
    case LogLevel::kInfo:
      return "INFO ";
    case LogLevel::kWarn:
      return "WARN ";
    case LogLevel::kError:
      return "ERROR";
  }
  return "?    ";
}

template <typename... Args>
void Log(LogLevel level, std::string_view component, fmt::format_string<Args...> format,
         Args&&... args) {
  if (!LogEnabled(level)) return;
  std::string line = fmt::format("{} {} {} peer={}: ", Rfc3339Now(), LevelName(level), component,
                                 log_internal::peer);
  line += fmt::format(format, std::forward<Args>(args)...);
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace replicator::util
