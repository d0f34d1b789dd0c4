// Which membership map a node keeps when join replies and change
// notifications arrive out of order, or from a restarted directory.
#include "node/directory_client.h"

#include <gtest/gtest.h>

namespace replicator::node {
namespace {

TEST(MapVersionTest, OnlyALaterMapOfTheSameDirectoryRunReplacesTheApplied) {
  const MapVersion applied{7, 5};
  EXPECT_TRUE(Supersedes(MapVersion{7, 6}, applied));
  // A join reply overtaken by the notification that followed it.
  EXPECT_FALSE(Supersedes(MapVersion{7, 4}, applied));
  EXPECT_FALSE(Supersedes(MapVersion{7, 5}, applied)) << "the same map again";
}

TEST(MapVersionTest, ARestartedDirectoryCountsAgainAndIsTaken) {
  EXPECT_TRUE(Supersedes(MapVersion{9, 1}, MapVersion{7, 50}));
}

TEST(MapVersionTest, UnversionedMapsAreAlwaysTaken) {
  EXPECT_TRUE(Supersedes(MapVersion{0, 0}, MapVersion{7, 5}));
  EXPECT_TRUE(Supersedes(MapVersion{7, 1}, MapVersion{}));
}

}  // namespace
}  // namespace replicator::node
