// KeyValue.putMany and getMany on real processes, and the C++ client's
// coalescing: each item is checked and applied as a put or get of its own
// (an invalid item fails alone, results keep the items' order, request ids
// work per item), an over-long list is refused whole, a read client may
// getMany but not putMany, and the client sends the calls its coroutines
// make in one turn as fewer messages (NodeStatus.batchedCalls says so).
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/wire_limits.h"
#include "harness.h"
#include "net/bridge.h"
#include "net/reactor.h"
#include "net/rpc.h"
#include "schema/replicator.capnp.h"

namespace replicator {
namespace {

using std::chrono::milliseconds;
using Tls = std::shared_ptr<const net::TlsContext>;

struct Item {
  std::string key;
  std::string value;
  uint64_t request_id = 0;
};

// A putMany or getMany answer, each result as text ("ok", "keyExists v",
// "invalidArgument ...", "found v", "notFound"), or why the call failed.
struct ManyReply {
  std::string error;  // empty: answered
  std::string refused;
  std::vector<std::string> results;
};

std::string Text(capnp::Data::Reader d) {
  return std::string(reinterpret_cast<const char*>(d.begin()), d.size());
}
capnp::Data::Reader Data(const std::string& s) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

std::string Render(wire::PutResult::Reader r) {
  switch (r.which()) {
    case wire::PutResult::OK:
      return "ok";
    case wire::PutResult::KEY_EXISTS:
      return "keyExists " + Text(r.getKeyExists());
    case wire::PutResult::INVALID_ARGUMENT:
      return absl::StrCat("invalidArgument ", r.getInvalidArgument().cStr());
    default:
      return absl::StrCat("other (", static_cast<int>(r.which()), ")");
  }
}
std::string Render(wire::GetResult::Reader r) {
  switch (r.which()) {
    case wire::GetResult::FOUND:
      return "found " + Text(r.getFound());
    case wire::GetResult::NOT_FOUND:
      return "notFound";
    case wire::GetResult::INVALID_ARGUMENT:
      return absl::StrCat("invalidArgument ", r.getInvalidArgument().cStr());
    default:
      return absl::StrCat("other (", static_cast<int>(r.which()), ")");
  }
}

// Runs `work(&reactor, args...)` on a reactor of its own until it returns.
asio::awaitable<void> ThenStop(net::Reactor* reactor, asio::awaitable<void> work) {
  co_await std::move(work);
  reactor->Stop();
}
template <typename... Params, typename... Args>
void RunOnReactor(asio::awaitable<void> (*work)(net::Reactor*, Params...), Args&&... args) {
  net::Reactor reactor;
  asio::co_spawn(reactor.io(), ThenStop(&reactor, work(&reactor, std::forward<Args>(args)...)),
                 asio::detached);
  reactor.Run();
}

// One raw putMany (`items`) or, with `items` empty and `keys` not, one raw
// getMany, as any Cap'n Proto client could send it.
asio::awaitable<void> ManyCall(net::Reactor* reactor, std::string address, Tls tls,
                               std::vector<Item> items, std::vector<std::string> keys,
                               ManyReply* out) {
  auto c = co_await net::RpcConnection::Connect(*reactor, address, milliseconds(5000), tls);
  if (!c.ok()) {
    out->error = "connect: " + std::string(c.status().message());
    co_return;
  }
  auto kv = (*c)->Bootstrap<wire::Node>().keyValueRequest().send().getKeyValue();
  if (keys.empty()) {
    auto req = kv.putManyRequest();
    auto list = req.initItems(items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      list[i].setKey(Data(items[i].key));
      list[i].setValue(Data(items[i].value));
      list[i].setRequestId(items[i].request_id);
    }
    auto sent = req.send();
    auto r = co_await net::AwaitWithin(kj::mv(sent), milliseconds(20000));
    if (!r.ok()) {
      out->error = std::string(r.status().message());
      co_return;
    }
    out->refused = r->getRefused().cStr();
    for (auto result : r->getResults()) out->results.push_back(Render(result));
  } else {
    auto req = kv.getManyRequest();
    req.setConsistency(wire::Consistency::LINEARIZABLE);
    auto list = req.initKeys(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) list.set(i, Data(keys[i]));
    auto sent = req.send();
    auto r = co_await net::AwaitWithin(kj::mv(sent), milliseconds(20000));
    if (!r.ok()) {
      out->error = std::string(r.status().message());
      co_return;
    }
    out->refused = r->getRefused().cStr();
    for (auto result : r->getResults()) out->results.push_back(Render(result));
  }
}

ManyReply PutMany(const std::string& address, Tls tls, std::vector<Item> items) {
  ManyReply out;
  RunOnReactor(&ManyCall, address, std::move(tls), std::move(items), std::vector<std::string>{},
               &out);
  return out;
}
ManyReply GetMany(const std::string& address, Tls tls, std::vector<std::string> keys) {
  ManyReply out;
  RunOnReactor(&ManyCall, address, std::move(tls), std::vector<Item>{}, std::move(keys), &out);
  return out;
}

asio::awaitable<void> OnePut(Client* client, std::string key, std::string value,
                             absl::StatusOr<PutResult>* out, size_t* left,
                             asio::steady_timer* all_done) {
  *out = co_await client->Put(key, value);
  if (--*left == 0) all_done->cancel();
}

// `keys` put (value "v-" + key) from one coroutine each, all started in one
// turn, through one client; then that node's status.
struct ClientRun {
  std::vector<absl::StatusOr<PutResult>> puts;
  absl::StatusOr<NodeStatus> before = absl::UnknownError("not run");
  absl::StatusOr<NodeStatus> after = absl::UnknownError("not run");
};
asio::awaitable<void> ConcurrentPuts(net::Reactor* reactor, std::string address,
                                     ClientOptions options, std::vector<std::string> keys,
                                     ClientRun* out) {
  auto client = co_await Client::Connect(*reactor, address, options);
  if (!client.ok()) {
    out->before = client.status();
    co_return;
  }
  out->before = co_await (*client)->Status();
  out->puts.assign(keys.size(), absl::UnknownError("not run"));
  size_t remaining = keys.size();
  asio::steady_timer all_done(reactor->io(), asio::steady_timer::time_point::max());
  for (size_t i = 0; i < keys.size(); ++i) {
    asio::co_spawn(
        reactor->io(),
        OnePut(client->get(), keys[i], "v-" + keys[i], &out->puts[i], &remaining, &all_done),
        asio::detached);
  }
  while (remaining > 0) {
    asio::error_code ec;
    co_await all_done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  out->after = co_await (*client)->Status();
}

class BatchTest : public DeploymentTest {
 protected:
  void SetUp() override {
    StartDeployment(1, 3);
    node_ = deployment_->nodes()[0].address;
  }
  std::string node_;
};

TEST_F(BatchTest, EachItemIsAPutOfItsOwnAnsweredInOrder) {
  Tls tls = TestClientOptions().tls;
  const std::string too_long(2000, 'k');  // over --max-key-bytes (1024)
  ManyReply first = PutMany(node_, tls,
                            {{"b1", "v1", 11},
                             {"", "empty key", 12},
                             {"b3", "v3", 13},
                             {too_long, "long key", 14},
                             {"b5", "v5", 15}});
  ASSERT_EQ(first.error, "");
  EXPECT_EQ(first.refused, "");
  ASSERT_EQ(first.results.size(), 5u);
  EXPECT_EQ(first.results[0], "ok");
  EXPECT_TRUE(absl::StartsWith(first.results[1], "invalidArgument ")) << first.results[1];
  EXPECT_EQ(first.results[2], "ok");
  EXPECT_TRUE(absl::StartsWith(first.results[3], "invalidArgument ")) << first.results[3];
  EXPECT_EQ(first.results[4], "ok");

  // Request ids per item: the same put again answers ok; another value for
  // a committed key answers keyExists with the committed value.
  ManyReply again = PutMany(node_, tls, {{"b3", "other", 99}, {"b1", "v1", 11}});
  ASSERT_EQ(again.error, "");
  EXPECT_EQ(again.results, (std::vector<std::string>{"keyExists v3", "ok"}));

  ManyReply got = GetMany(node_, tls, {"b5", "missing", "b1", "", "b3"});
  ASSERT_EQ(got.error, "");
  ASSERT_EQ(got.results.size(), 5u);
  EXPECT_EQ(got.results[0], "found v5");
  EXPECT_EQ(got.results[1], "notFound");
  EXPECT_EQ(got.results[2], "found v1");
  EXPECT_TRUE(absl::StartsWith(got.results[3], "invalidArgument ")) << got.results[3];
  EXPECT_EQ(got.results[4], "found v3");
  // Committed at every node, as a single put would be.
  ExpectEventually(deployment_->nodes()[2].address, "b5", "v5");
}

TEST_F(BatchTest, AnOverLongListIsRefusedWholeAndNothingApplied) {
  Tls tls = TestClientOptions().tls;
  std::vector<Item> items;
  std::vector<std::string> keys;
  for (size_t i = 0; i <= core::kMaxBatchCalls; ++i) {
    items.push_back({absl::StrCat("over-", i), "v", 1000 + i});
    keys.push_back(absl::StrCat("over-", i));
  }
  ManyReply puts = PutMany(node_, tls, items);
  ASSERT_EQ(puts.error, "");
  EXPECT_NE(puts.refused.find("1025 puts in one call, over the limit of 1024"), std::string::npos)
      << puts.refused;
  EXPECT_TRUE(puts.results.empty());
  ManyReply gets = GetMany(node_, tls, keys);
  ASSERT_EQ(gets.error, "");
  EXPECT_NE(gets.refused.find("1025 gets in one call, over the limit of 1024"), std::string::npos)
      << gets.refused;
  // Nothing was applied, and the node still serves.
  CommandResult get = Get(node_, "over-0");
  EXPECT_EQ(get.exit_code, 4) << get.out << get.err;  // not found
  items.resize(core::kMaxBatchCalls);
  ManyReply at_limit = PutMany(node_, tls, items);
  ASSERT_EQ(at_limit.error, "");
  EXPECT_EQ(at_limit.refused, "");
  ASSERT_EQ(at_limit.results.size(), core::kMaxBatchCalls);
  for (const std::string& r : at_limit.results) EXPECT_EQ(r, "ok");
}

TEST_F(BatchTest, AReadClientCanGetManyButNotPutMany) {
  const std::string certs = deployment_->certs_dir();
  CommandResult created =
      Cli({"cert", "create-client", "reader", "--certs-dir=" + certs, "--role=read"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  Tls reader = ClientTls(certs, "reader");
  ASSERT_NE(reader, nullptr);
  ASSERT_EQ(Put(node_, "r1", "v1").exit_code, 0);

  ManyReply puts = PutMany(node_, reader, {{"r2", "v2", 1}, {"r3", "v3", 2}});
  EXPECT_NE(puts.error.find("permission denied: "), std::string::npos) << puts.error;
  EXPECT_NE(puts.error.find("put needs role write or admin"), std::string::npos) << puts.error;
  EXPECT_TRUE(puts.results.empty());
  EXPECT_EQ(Get(node_, "r2").exit_code, 4);

  ManyReply gets = GetMany(node_, reader, {"r1", "r2"});
  EXPECT_EQ(gets.error, "");
  EXPECT_EQ(gets.results, (std::vector<std::string>{"found v1", "notFound"}));

  // Through the client: every coalesced put fails PermissionDenied.
  ClientOptions options = TestClientOptions();
  options.tls = reader;
  ClientRun run;
  RunOnReactor(&ConcurrentPuts, node_, options, std::vector<std::string>{"r4", "r5", "r6"}, &run);
  ASSERT_EQ(run.puts.size(), 3u);
  for (const auto& p : run.puts) {
    EXPECT_TRUE(absl::IsPermissionDenied(p.status())) << p.status();
  }
}

TEST_F(BatchTest, TheClientSendsTheCallsOfOneTurnAsFewerMessages) {
  std::vector<std::string> keys;
  for (int i = 0; i < 20; ++i) keys.push_back(absl::StrCat("c", i));
  ClientRun on;
  RunOnReactor(&ConcurrentPuts, node_, TestClientOptions(), keys, &on);
  ASSERT_TRUE(on.before.ok()) << on.before.status();
  ASSERT_TRUE(on.after.ok()) << on.after.status();
  for (size_t i = 0; i < keys.size(); ++i) {
    ASSERT_TRUE(on.puts[i].ok()) << on.puts[i].status();
    EXPECT_EQ(on.puts[i]->kind, PutResult::Kind::kOk) << on.puts[i]->message;
  }
  const uint64_t calls = on.after->batched_calls - on.before->batched_calls;
  const uint64_t items = on.after->batched_items - on.before->batched_items;
  EXPECT_EQ(items, keys.size()) << "every put went in a batch";
  EXPECT_GE(calls, 1u);
  EXPECT_LT(calls, keys.size()) << "fewer messages than puts";
  EXPECT_EQ(on.after->puts_ok - on.before->puts_ok, keys.size());
  // Each caller got its own put: its own value is stored under its key.
  ExpectEventually(node_, "c7", "v-c7");
  ExpectEventually(node_, "c19", "v-c19");

  // Coalescing off: the same calls, each a message of its own.
  ClientOptions off = TestClientOptions();
  off.coalesce = false;
  std::vector<std::string> more;
  for (int i = 0; i < 20; ++i) more.push_back(absl::StrCat("d", i));
  ClientRun plain;
  RunOnReactor(&ConcurrentPuts, node_, off, more, &plain);
  ASSERT_TRUE(plain.after.ok()) << plain.after.status();
  EXPECT_EQ(plain.after->batched_calls, plain.before->batched_calls);
  EXPECT_EQ(plain.after->puts_ok - plain.before->puts_ok, more.size());

  // A single put, coalescing on, is a plain put and works.
  ClientRun single;
  RunOnReactor(&ConcurrentPuts, node_, TestClientOptions(), std::vector<std::string>{"alone"},
               &single);
  ASSERT_EQ(single.puts.size(), 1u);
  ASSERT_TRUE(single.puts[0].ok()) << single.puts[0].status();
  EXPECT_EQ(single.puts[0]->kind, PutResult::Kind::kOk);
  ASSERT_TRUE(single.after.ok()) << single.after.status();
  EXPECT_EQ(single.after->batched_calls, single.before->batched_calls);
  ExpectEventually(node_, "alone", "v-alone");
}

}  // namespace
}  // namespace replicator
