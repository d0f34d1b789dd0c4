// TempDir: a fresh directory under gtest's temp dir, removed with the object.
// For unit tests that need real files (storage, identity keys).
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

#include "gtest/gtest.h"

namespace replicator::test_util {

class TempDir {
 public:
  // `name` prefixes the directory's name, to tell tests' leftovers apart.
  explicit TempDir(std::string_view name) {
    std::string pattern = ::testing::TempDir() + std::string(name) + ".XXXXXX";
    EXPECT_NE(mkdtemp(pattern.data()), nullptr) << "mkdtemp " << pattern;
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace replicator::test_util
