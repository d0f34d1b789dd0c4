// Duration flags as operators write them: "500ms", "10s", "1.5s", "2m",
// "1h" (Go/etcd syntax, absl::ParseDuration), or a bare number in the unit
// the flag names: milliseconds for a flag ending in -ms, seconds for one
// that names no unit. Negative durations are refused. Header-only.
//
//   ABSL_FLAG(util::Millis, lease_ms, util::Millis{2000}, "...");
//   std::chrono::milliseconds lease = absl::GetFlag(FLAGS_lease_ms).value;
#pragma once

#include <chrono>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace replicator::util {

namespace duration_flag_internal {

// Parses `text` into `*out`; a bare number counts `unit`s.
inline bool Parse(absl::string_view text, absl::Duration unit, absl::Duration* out,
                  std::string* error) {
  std::string t(absl::StripAsciiWhitespace(text));
  double bare = 0;
  if (absl::SimpleAtod(t, &bare)) {
    *out = unit * bare;
  } else if (!absl::ParseDuration(t, out)) {
    *error = absl::StrCat("'", t, "' is not a duration (write it as 500ms, 10s, 1.5s, 2m, 1h)");
    return false;
  }
  if (*out < absl::ZeroDuration()) {
    *error = absl::StrCat("'", t, "' is negative");
    return false;
  }
  return true;
}

}  // namespace duration_flag_internal

// A flag whose bare numbers are milliseconds.
struct Millis {
  std::chrono::milliseconds value{0};
};
inline bool AbslParseFlag(absl::string_view text, Millis* out, std::string* error) {
  absl::Duration d;
  if (!duration_flag_internal::Parse(text, absl::Milliseconds(1), &d, error)) return false;
  out->value = std::chrono::duration_cast<std::chrono::milliseconds>(absl::ToChronoNanoseconds(d));
  return true;
}
inline std::string AbslUnparseFlag(const Millis& m) { return absl::StrCat(m.value.count(), "ms"); }

// A flag whose bare numbers are seconds.
struct Seconds {
  absl::Duration value = absl::ZeroDuration();
};
inline bool AbslParseFlag(absl::string_view text, Seconds* out, std::string* error) {
  return duration_flag_internal::Parse(text, absl::Seconds(1), &out->value, error);
}
inline std::string AbslUnparseFlag(const Seconds& s) { return absl::FormatDuration(s.value); }

}  // namespace replicator::util
