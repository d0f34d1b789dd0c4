// End-to-end tests: real replicatord processes on 127.0.0.1, driven through
// the replicator CLI (exit codes and output are what users see) and the C++
// client library. Every process is stopped by its PID when a test ends.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "net/reactor.h"
#include "node/local_deployment.h"
#include "tests/integration/harness.h"
#include "replicator/client.h"

namespace replicator {
namespace {

using ReplicationTest = DeploymentTest;

TEST_F(ReplicationTest, PutInOneClusterIsReadFromEveryNodeOfAnother) {
  StartDeployment(2, 3);
  std::string a = AddressesOf("c1")[0];
  CommandResult put = Put(a, "greeting", "hello");
  ASSERT_EQ(put.exit_code, 0) << put.err;
  EXPECT_EQ(put.out, "ok\n");
  for (const std::string& b : AddressesOf("c2")) {
    // A linearizable read sees an acknowledged put at once...
    CommandResult lin = Get(b, "greeting", "linearizable");
    EXPECT_EQ(lin.exit_code, 0) << lin.err;
    EXPECT_EQ(lin.out, "hello");
    // ...and the asynchronous commit reaches every node's local store.
    ExpectEventually(b, "greeting", "hello");
  }
}

TEST_F(ReplicationTest, SameKeyThroughAnotherClusterIsRefusedWithTheStoredValue) {
  StartDeployment(2, 3);
  ASSERT_EQ(Put(AddressesOf("c1")[1], "user/42", "alice").exit_code, 0);
  CommandResult again = Put(AddressesOf("c2")[2], "user/42", "bob");
  EXPECT_EQ(again.exit_code, 2) << again.out << again.err;
  EXPECT_NE(again.err.find("user/42"), std::string::npos) << again.err;
  EXPECT_NE(again.err.find("choose another key"), std::string::npos) << again.err;
  // The first value stands everywhere.
  for (const auto& n : deployment_->nodes()) {
    CommandResult r = Get(n.address, "user/42", "linearizable");
    EXPECT_EQ(r.out, "alice") << n.address << " " << r.err;
  }
}

TEST_F(ReplicationTest, UnknownKeyIsNotFound) {
  StartDeployment(2, 3);
  for (const char* consistency : {"local", "linearizable"}) {
    CommandResult r = Get(AddressesOf("c2")[0], "no-such-key", consistency);
    EXPECT_EQ(r.exit_code, 4) << consistency << ": " << r.err;
    EXPECT_NE(r.err.find("not found"), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "");
  }
}

TEST_F(ReplicationTest, RacingPutsOfOneKeyEndWithExactlyOneOk) {
  StartDeployment(2, 3);
  const auto& nodes = deployment_->nodes();
  constexpr int kRacers = 16;
  std::vector<CommandResult> results(kRacers);
  std::vector<std::thread> threads;
  for (int i = 0; i < kRacers; ++i) {
    threads.emplace_back([&, i] {
      results[i] = Put(nodes[i % nodes.size()].address, "contended", absl::StrCat("value-", i));
    });
  }
  for (auto& t : threads) t.join();
  int oks = 0;
  std::string winner;
  for (int i = 0; i < kRacers; ++i) {
    const CommandResult& r = results[i];
    if (r.exit_code == 0) {
      ++oks;
      winner = absl::StrCat("value-", i);
    } else {
      // Losers are told the key is taken (or, past the retry bound, that it
      // is reserved by a concurrent put); never anything else.
      EXPECT_TRUE(r.exit_code == 2 || r.exit_code == 3)
          << "racer " << i << ": exit " << r.exit_code << " " << r.err;
    }
  }
  ASSERT_EQ(oks, 1);
  for (const auto& n : nodes) ExpectEventually(n.address, "contended", winner);
}

TEST_F(ReplicationTest, PutsSucceedWithOneNodeOfAClusterDown) {
  StartDeployment(2, 3);
  // Kill a non-bootstrap node of c1 and one of c2.
  deployment_->Kill(1);
  deployment_->Kill(4);
  for (int i = 0; i < 5; ++i) {
    std::string key = absl::StrCat("after-kill-", i);
    const auto& coordinator = deployment_->nodes()[i % 2 == 0 ? 0 : 3].address;
    CommandResult r = Put(coordinator, key, "v");
    EXPECT_EQ(r.exit_code, 0) << key << ": " << r.err;
    CommandResult g = Get(deployment_->nodes()[5].address, key, "linearizable");
    EXPECT_EQ(g.out, "v") << g.err;
  }
}

// A paused node (SIGSTOP: a GC pause, a VM stall) keeps its sockets open
// and answers nothing. A put whose representative in that cluster it would
// be must not wait it out: the call times out with half the attempt left,
// and the next representative gets the rest. Before, about a third of these
// puts answered "no representative of cluster c2 answered".
TEST_F(ReplicationTest, PutsSucceedWithOneNodeOfARemoteClusterPaused) {
  StartDeployment(2, 3);
  deployment_->Pause(4);  // c2; nodes 3 and 5 stay up
  constexpr int kPuts = 20;
  for (int i = 0; i < kPuts; ++i) {
    const std::string key = absl::StrCat("paused-", i);
    CommandResult r = Put(deployment_->nodes()[i % 3].address, key, "v");
    EXPECT_EQ(r.exit_code, 0) << key << ": " << r.out << r.err;
  }
  for (int i = 0; i < kPuts; ++i) {
    const std::string key = absl::StrCat("paused-", i);
    for (size_t reader : {size_t{1}, size_t{3}, size_t{5}}) {
      CommandResult g = Get(deployment_->nodes()[reader].address, key, "linearizable");
      EXPECT_EQ(g.out, "v") << key << " at node " << reader << ": " << g.err;
    }
  }
  deployment_->Resume(4);
}

// Down is a liveness hint, not a removal. A node paused across several of
// the directory's pings is shown down; once it runs again it is shown up,
// and it hears of the changes made meanwhile. (Its watcher used to be
// dropped for good, so it kept an old map of the voters forever.)
TEST_F(ReplicationTest, APausedNodeHearsTheChangesMadeWhileItWasPaused) {
  StartDeployment(1, 3);
  const std::string paused = deployment_->nodes()[2].address;
  deployment_->Pause(2);
  EXPECT_TRUE(Eventually([&] { return absl::StrContains(MemberLine(0, paused), "down"); }))
      << MemberLine(0, paused);
  absl::StatusOr<size_t> added = deployment_->AddNode("c1");
  ASSERT_TRUE(added.ok()) << added.status();
  const std::string newcomer = deployment_->nodes()[*added].address;
  ASSERT_FALSE(MemberLine(0, newcomer).empty());
  deployment_->Resume(2);
  EXPECT_TRUE(Eventually([&] { return !MemberLine(2, newcomer).empty(); }))
      << "the resumed node never heard of " << newcomer;
  EXPECT_TRUE(Eventually([&] { return absl::StrContains(MemberLine(0, paused), "voter"); }))
      << MemberLine(0, paused);
  // And it votes again: a put there is ok and reads back everywhere.
  CommandResult put = Put(paused, "after-pause", "v");
  EXPECT_EQ(put.exit_code, 0) << put.err;
  for (size_t reader : {size_t{0}, size_t{1}}) {
    EXPECT_EQ(Get(deployment_->nodes()[reader].address, "after-pause", "linearizable").out, "v");
  }
}

// The bootstrap peer keeps its directory in its data dir. Restarted while
// the other voters cannot re-register yet (paused), it still lists them as
// voters (down): a linearizable get there cannot pass one node off as a
// majority and miss a key committed while it was down; new nodes join as
// catching up instead of becoming voters of a fresh, empty voter set; and a
// key committed before is never written twice through them. (Before, it
// listed only itself, answered "not found" and made the newcomers voters.)
TEST_F(ReplicationTest, ARestartedBootstrapPeerKeepsItsVoters) {
  StartDeployment(1, 3, {}, "rocksdb");
  deployment_->Kill(0);
  ASSERT_EQ(Put(deployment_->nodes()[1].address, "before", "first").exit_code, 0);
  deployment_->Pause(1);
  deployment_->Pause(2);
  ASSERT_TRUE(deployment_->Restart(0).ok());
  const std::string bootstrap = deployment_->nodes()[0].address;
  CommandResult alone = Get(bootstrap, "before", "linearizable");
  EXPECT_EQ(alone.exit_code, 5) << alone.out << alone.err;
  EXPECT_TRUE(absl::StrContains(alone.err, "only 1 of 3 voters of cluster c1 answered"))
      << "one voter of three is no majority: " << alone.err;
  CommandResult status = Cli({"--node=" + bootstrap, "status"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  for (size_t i : {size_t{1}, size_t{2}}) {
    EXPECT_TRUE(absl::StrContains(MemberLine(0, deployment_->nodes()[i].address), "down"))
        << status.out;
  }
  std::vector<size_t> added;
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<size_t> n = deployment_->AddNode("c1");
    ASSERT_TRUE(n.ok()) << n.status();
    added.push_back(*n);
  }
  for (size_t n : added) {
    EXPECT_TRUE(absl::StrContains(MemberLine(0, deployment_->nodes()[n].address), "catching up"))
        << Cli({"--node=" + bootstrap, "status"}).out;
  }
  deployment_->Resume(1);
  deployment_->Resume(2);
  for (size_t n : added) {
    CommandResult again = Put(deployment_->nodes()[n].address, "before", "second");
    EXPECT_EQ(again.exit_code, 2) << again.out << again.err;  // the key already exists
  }
  for (size_t reader : {size_t{0}, size_t{1}, size_t{2}, added[0], added[1]}) {
    EXPECT_EQ(Get(deployment_->nodes()[reader].address, "before", "linearizable").out, "first")
        << "node " << reader;
  }
}

// A cluster grown to five voters keeps all five when the bootstrap peer and
// another voter restart: no re-registrant is demoted to catching up, so no
// majority of a "new" voter set can miss a key committed before. (Before,
// the rebuilt directory took the first re-registrants as the voters.)
TEST_F(ReplicationTest, AFiveVoterClusterKeepsItsVotersAcrossABootstrapRestart) {
  StartDeployment(1, 3, {}, "rocksdb");
  std::vector<size_t> added;
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<size_t> n = deployment_->AddNode("c1");
    ASSERT_TRUE(n.ok()) << n.status();
    added.push_back(*n);
  }
  // Each newcomer is added by consensus once it caught up, one voter per
  // configuration: allow for two additions.
  auto all_voters_at = [&](size_t at) {
    for (const auto& n : deployment_->nodes()) {
      std::string line = MemberLine(at, n.address);
      if (line.empty() || absl::StrContains(line, "catching up")) return false;
    }
    return true;
  };
  const auto grown_by = std::chrono::steady_clock::now() + 3 * kConvergeBound;
  while (!all_voters_at(0) && std::chrono::steady_clock::now() < grown_by) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_TRUE(all_voters_at(0)) << Cli({"--node=" + deployment_->nodes()[0].address, "status"}).out;
  ASSERT_EQ(Put(deployment_->nodes()[added[0]].address, "grown", "v").exit_code, 0);

  deployment_->Kill(0);
  deployment_->Kill(1);
  ASSERT_TRUE(deployment_->Restart(0).ok());
  ASSERT_TRUE(deployment_->Restart(1).ok());
  EXPECT_TRUE(all_voters_at(0)) << Cli({"--node=" + deployment_->nodes()[0].address, "status"}).out;
  EXPECT_TRUE(Eventually([&] { return all_voters_at(1) && all_voters_at(added[1]); }));
  for (size_t n : {size_t{0}, size_t{1}, added[1]}) {
    CommandResult again = Put(deployment_->nodes()[n].address, "grown", "other");
    EXPECT_EQ(again.exit_code, 2) << "node " << n << ": " << again.out << again.err;
  }
  for (size_t n = 0; n < deployment_->nodes().size(); ++n) {
    EXPECT_EQ(Get(deployment_->nodes()[n].address, "grown", "linearizable").out, "v") << n;
  }
}

// `member list` shows every member as an operator expects from etcdctl: a
// header, one line each with cluster, role, liveness, peer id and address;
// a killed voter turns down and stays a voter; a wrong subcommand is a
// usage error.
TEST_F(ReplicationTest, MemberListShowsRolesAndLiveness) {
  StartDeployment(2, 3);
  const std::string at = deployment_->nodes()[0].address;
  auto lines_of = [&] {
    CommandResult r = Cli({"--node=" + at, "member", "list"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
    return lines;
  };
  std::vector<std::string> lines = lines_of();
  ASSERT_EQ(lines.size(), 7u) << absl::StrJoin(lines, "\n");
  EXPECT_TRUE(absl::StartsWith(lines[0], "CLUSTER  EPOCH  ROLE     LIVENESS  PEER ID")) << lines[0];
  for (size_t i = 0; i < deployment_->nodes().size(); ++i) {
    const auto& n = deployment_->nodes()[i];
    bool found = false;
    for (const std::string& line : lines) {
      if (!absl::StrContains(line, n.address)) continue;
      found = true;
      EXPECT_TRUE(absl::StartsWith(line, n.cluster + "       1      ")) << line;
      EXPECT_TRUE(absl::StrContains(line, " voter    up ")) << line;
    }
    EXPECT_TRUE(found) << n.address;
  }
  const std::string killed = deployment_->nodes()[4].address;
  deployment_->Kill(4);
  EXPECT_TRUE(Eventually([&] {
    for (const std::string& line : lines_of()) {
      if (absl::StrContains(line, killed)) return absl::StrContains(line, " voter    down ");
    }
    return false;
  })) << absl::StrJoin(lines_of(), "\n");
  CommandResult unknown = Cli({"--node=" + at, "member", "remove", "12D3KooWx"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(unknown.err, "peer 12D3KooWx is not a member of any cluster"))
      << unknown.err;
  CommandResult bad = Cli({"--node=" + at, "member", "rename"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(bad.err, "member takes a subcommand: list, promote")) << bad.err;
  // The killed voter is removed from a cluster of three only when forced.
  std::string killed_id;
  for (const std::string& line : lines_of()) {
    std::vector<std::string> cols = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (cols.size() == 6 && cols[5] == killed) killed_id = cols[4];
  }
  ASSERT_FALSE(killed_id.empty());
  CommandResult refused = Cli({"--node=" + at, "member", "remove", killed_id});
  EXPECT_EQ(refused.exit_code, 1) << refused.out << refused.err;
  EXPECT_TRUE(absl::StrContains(refused.err, "would leave cluster c2 with 2 voters"))
      << refused.err;
}

TEST_F(ReplicationTest, BadInputIsRefusedAndTheNodeKeepsServing) {
  StartDeployment(2, 3);
  std::string node = AddressesOf("c1")[0];
  CommandResult empty = Put(node, "", "v");
  EXPECT_EQ(empty.exit_code, 1);
  EXPECT_NE(empty.err.find("key is empty"), std::string::npos) << empty.err;

  CommandResult long_key = Put(node, std::string(2048, 'k'), "v");
  EXPECT_EQ(long_key.exit_code, 1);
  EXPECT_NE(long_key.err.find("2048 bytes"), std::string::npos) << long_key.err;

  CommandResult big_value =
      Cli({"--node=" + node, "put", "big", "--value-file=-"}, std::string(2 << 20, 'x'));
  EXPECT_EQ(big_value.exit_code, 1);
  EXPECT_NE(big_value.err.find("value is 2097152 bytes"), std::string::npos) << big_value.err;

  // Nothing was stored, and the node still serves.
  EXPECT_EQ(Get(node, "big", "linearizable").exit_code, 4);
  EXPECT_EQ(Put(node, "after-bad-input", "fine").exit_code, 0);
  EXPECT_EQ(Get(node, "after-bad-input").out, "fine");
}

TEST_F(ReplicationTest, BinaryValuesRoundTripThroughValueFile) {
  StartDeployment(2, 3);
  std::string value;
  for (int i = 0; i < 4096; ++i) value.push_back(static_cast<char>(i * 7 % 256));
  CommandResult put =
      Cli({"--node=" + AddressesOf("c1")[2], "put", "blob", "--value-file=-"}, value);
  ASSERT_EQ(put.exit_code, 0) << put.err;
  CommandResult get = Get(AddressesOf("c2")[1], "blob", "linearizable");
  EXPECT_EQ(get.exit_code, 0);
  EXPECT_EQ(get.out, value);
}

TEST_F(ReplicationTest, ClusterWithTooFewVotersRefusesPuts) {
  StartDeployment(2, 2);
  CommandResult r = Put(AddressesOf("c1")[0], "k", "v");
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("is not founded yet"), std::string::npos) << r.err;
}

TEST_F(ReplicationTest, StatusListsClustersPeersAndCounts) {
  StartDeployment(2, 3);
  ASSERT_EQ(Put(AddressesOf("c1")[0], "counted", "v").exit_code, 0);
  CommandResult s = Cli({"--node=" + AddressesOf("c1")[0], "status"});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  EXPECT_NE(s.out.find("cluster c1"), std::string::npos) << s.out;
  EXPECT_NE(s.out.find("cluster c2"), std::string::npos) << s.out;
  EXPECT_NE(s.out.find("1 ok"), std::string::npos) << s.out;
  for (const auto& n : deployment_->nodes()) {
    EXPECT_NE(s.out.find(n.address), std::string::npos) << n.address << "\n" << s.out;
  }
  EXPECT_NE(s.out.find("12D3KooW"), std::string::npos) << s.out;
}

TEST_F(ReplicationTest, ClientLibraryPutsAndGetsFromCoroutines) {
  StartDeployment(2, 3);
  net::Reactor reactor;
  struct Run {
    net::Reactor& reactor;
    std::string a, b;
    std::vector<std::string> log;
    asio::awaitable<void> Go() {
      auto ca = co_await Client::Connect(reactor, a, TestClientOptions());
      auto cb = co_await Client::Connect(reactor, b, TestClientOptions());
      if (!ca.ok() || !cb.ok()) {
        log.push_back("connect failed");
        reactor.Stop();
        co_return;
      }
      auto put = co_await (*ca)->Put("lib-key", "lib-value");
      log.push_back(put.ok() && put->kind == PutResult::Kind::kOk ? "put ok" : "put failed");
      auto again = co_await (*cb)->Put("lib-key", "other");
      log.push_back(again.ok() && again->kind == PutResult::Kind::kKeyExists
                        ? "exists " + again->existing
                        : "no exists");
      auto get = co_await (*cb)->Get("lib-key", Consistency::kLinearizable);
      log.push_back(get.ok() && get->kind == GetResult::Kind::kFound ? "got " + get->value
                                                                      : "get failed");
      reactor.Stop();
    }
  } run{reactor, AddressesOf("c1")[0], AddressesOf("c2")[0], {}};
  asio::co_spawn(reactor.io(), run.Go(), asio::detached);
  reactor.Run();
  EXPECT_EQ(run.log, (std::vector<std::string>{"put ok", "exists lib-value", "got lib-value"}));
}

// Batching sends many protocol calls to one peer in one message, and the
// answers can carry large values (a read returns the committed value, a
// reserve's vote the stored one): a batch's reply must never outgrow what a
// connection accepts, or the connection drops with every call in flight.
TEST_F(ReplicationTest, ConcurrentCallsOnLargeValuesAllGetAnswers) {
  // A generous call deadline: the point is the size of the answers, not
  // how fast this machine moves a few hundred MiB.
  StartDeployment(1, 3, {"--max-value-bytes=4194304", "--call-deadline-ms=20000"});
  net::Reactor reactor;
  struct Run {
    net::Reactor& reactor;
    std::string address;
    std::string big = std::string(4 << 20, 'x');
    int found_big = 0, fresh_ok = 0, other = 0, pending = 0;
    std::string first_other{};
    std::vector<std::unique_ptr<Client>> clients{};
    void Other(std::string what) {
      if (other++ == 0) first_other = std::move(what);
    }
    void Done() {
      if (--pending == 0) reactor.Stop();
    }
    asio::awaitable<void> Read(Client* client, std::string key) {
      auto r = co_await client->Get(key, Consistency::kLinearizable);
      if (r.ok() && r->kind == GetResult::Kind::kFound && r->value == big) {
        ++found_big;
      } else {
        Other(r.ok() ? absl::StrCat("get ", key, ": ", r->message)
                     : std::string(r.status().message()));
      }
      Done();
    }
    asio::awaitable<void> Write(Client* client, std::string key) {
      std::string value = "small";
      auto r = co_await client->Put(key, value);
      if (r.ok() && r->kind == PutResult::Kind::kOk) {
        ++fresh_ok;
      } else {
        Other(r.ok() ? absl::StrCat("put ", key, ": ", r->message)
                     : std::string(r.status().message()));
      }
      Done();
    }
    asio::awaitable<void> Go() {
      auto client = co_await Client::Connect(reactor, address, TestClientOptions());
      if (!client.ok()) {
        Other("connect failed");
        reactor.Stop();
        co_return;
      }
      for (int i = 0; i < 12; ++i) {
        std::string key = absl::StrCat("big/", i);
        auto r = co_await (*client)->Put(key, big);
        if (!r.ok() || r->kind != PutResult::Kind::kOk) {
          Other(absl::StrCat("preload of ", key, " failed"));
          reactor.Stop();
          co_return;
        }
      }
      // 24 linearizable reads of 4 MiB values (each asks every voter, and
      // each voter answers with the value: 96 MiB from each peer, past Cap'n
      // Proto's default 64 MiB per message) and 8 fresh puts, all at once.
      Client* c = client->get();
      clients.push_back(std::move(*client));
      pending = 32;
      for (int i = 0; i < 32; ++i) {
        if (i % 4 == 0) {
          asio::co_spawn(reactor.io(), Write(c, absl::StrCat("fresh/", i)), asio::detached);
        } else {
          asio::co_spawn(reactor.io(), Read(c, absl::StrCat("big/", i % 12)), asio::detached);
        }
      }
    }
  } run{reactor, AddressesOf("c1")[0]};
  asio::co_spawn(reactor.io(), run.Go(), asio::detached);
  reactor.Run();
  EXPECT_EQ(run.found_big, 24) << run.first_other;
  EXPECT_EQ(run.fresh_ok, 8) << run.first_other;
  EXPECT_EQ(run.other, 0) << run.first_other;
}

TEST(StartupTest, UnreachableBootstrapPeerExitsWithAClearError) {
  std::string dir = TempDir("bootstrap");
  // Port 1 on loopback: nothing listens there. The node must give up by
  // itself within 10 s (the promise users script against); RunCommand kills
  // it at that bound and reports -1.
  CommandResult r = RunCommand({REPLICATORD_PATH, "--cluster=c1", "--data-dir=" + dir,
                                "--storage=memory", "--bootstrap=127.0.0.1:1", "--insecure"},
                               milliseconds(10000));
  EXPECT_NE(r.exit_code, -1) << "replicatord did not exit within 10 s";
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("127.0.0.1:1"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("bootstrap"), std::string::npos) << r.err;
  std::filesystem::remove_all(dir);
}

TEST(StartupTest, HelpListsEachProgramsOwnFlagsWithDefaults) {
  const struct {
    const char* binary;
    std::vector<const char*> shows;
  } programs[] = {
      {REPLICATORD_PATH,
       {"--data-dir=", "--bootstrap=", "--lease-ms=2000",
        "Membership:", "--certs-dir=", "--insecure"}},
      {REPLICATOR_CLI_PATH,
       {"--node=", "--timeout-ms=10000", "member remove", "--certs-dir=", "--user=root",
        "cert create-node", "--role="}},
  };
  for (const auto& p : programs) {
    CommandResult r = RunCommand({p.binary, "--help"}, milliseconds(10000));
    EXPECT_EQ(r.exit_code, 0) << p.binary << r.err;
    for (const char* s : p.shows) EXPECT_NE(r.out.find(s), std::string::npos) << s << r.out;
    EXPECT_EQ(r.out.find("No flags matched"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("absl"), std::string::npos) << "only the program's own flags";
  }
}

TEST(StartupTest, BadFlagsAreRefusedClearly) {
  std::string dir = TempDir("flags");
  CommandResult r = RunCommand({REPLICATORD_PATH, "--cluster=bad cluster!", "--data-dir=" + dir,
                                "--storage=memory", "--insecure"},
                               milliseconds(20000));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("cluster id"), std::string::npos) << r.err;
  CommandResult huge = RunCommand({REPLICATORD_PATH, "--cluster=c1", "--data-dir=" + dir,
                                   "--storage=memory", "--max-value-bytes=100000000", "--insecure"},
                                  milliseconds(20000));
  EXPECT_EQ(huge.exit_code, 1);
  EXPECT_NE(huge.err.find("--max-value-bytes at most"), std::string::npos) << huge.err;
  CommandResult no_node = RunCommand({REPLICATOR_CLI_PATH, "get", "k"}, milliseconds(20000));
  EXPECT_EQ(no_node.exit_code, 1);
  EXPECT_NE(no_node.err.find("--node"), std::string::npos) << no_node.err;
  CommandResult nobody = RunCommand(
      {REPLICATOR_CLI_PATH, "--node=127.0.0.1:1", "--insecure", "get", "k"}, milliseconds(20000));
  EXPECT_EQ(nobody.exit_code, 1);
  EXPECT_NE(nobody.err.find("127.0.0.1:1"), std::string::npos) << nobody.err;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace replicator
