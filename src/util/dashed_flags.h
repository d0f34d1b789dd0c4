// Command lines use dashed flag names (--data-dir) as the README documents;
// Abseil flags are declared with underscores (data_dir). This rewrites the
// name part of every "--flag[=value]" argument before "--" so that both
// spellings work. Header-only; call before absl::ParseCommandLine.
#pragma once

#include <cstring>
#include <string>
#include <vector>

namespace replicator::util {

// Owns the rewritten arguments; argv() points into them.
class DashedFlags {
 public:
  DashedFlags(int argc, char** argv) {
    bool flags_done = false;
    for (int i = 0; i < argc; ++i) {
      std::string arg = argv[i];
      if (arg == "--") flags_done = true;
      if (!flags_done && i > 0 && arg.size() > 2 && arg[0] == '-' && arg[1] == '-') {
        size_t end = arg.find('=');
        if (end == std::string::npos) end = arg.size();
        for (size_t j = 2; j < end; ++j) {
          if (arg[j] == '-') arg[j] = '_';
        }
      }
      storage_.push_back(std::move(arg));
    }
    for (std::string& s : storage_) pointers_.push_back(s.data());
    pointers_.push_back(nullptr);
  }
  int argc() const { return static_cast<int>(storage_.size()); }
  char** argv() { return pointers_.data(); }

 private:
  std::vector<std::string> storage_;
  std::vector<char*> pointers_;
};

}  // namespace replicator::util
