// The C++ client against a scripted node: which answers it retries (with the
// same request id) and which it hands back as final.
#include "replicator/client.h"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <chrono>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "net/reactor.h"
#include "net/rpc.h"
#include "schema/replicator.capnp.h"

namespace replicator {
namespace {

// Answers puts from a script, one entry per call, and records request ids.
class ScriptedKeyValue final : public wire::KeyValue::Server {
 public:
  enum class Answer { kOk, kUnavailable, kOutcomeUnknown };
  ScriptedKeyValue(std::vector<Answer> script, std::vector<uint64_t>* ids)
      : script_(std::move(script)), ids_(ids) {}

  kj::Promise<void> put(PutContext context) override {
    ids_->push_back(context.getParams().getRequestId());
    Answer a = calls_ < script_.size() ? script_[calls_] : Answer::kOk;
    ++calls_;
    auto result = context.getResults().initResult();
    switch (a) {
      case Answer::kOk:
        result.setOk();
        break;
      case Answer::kUnavailable:
        result.setUnavailable("cluster c2 has 1 of 3 voters reachable; aborted, nothing stored");
        break;
      case Answer::kOutcomeUnknown:
        result.setOutcomeUnknown("the decision could not be recorded in time");
        break;
    }
    return kj::READY_NOW;
  }

 private:
  std::vector<Answer> script_;
  std::vector<uint64_t>* ids_;
  size_t calls_ = 0;
};

class ScriptedNode final : public wire::Node::Server {
 public:
  explicit ScriptedNode(wire::KeyValue::Client kv) : kv_(kv) {}
  kj::Promise<void> keyValue(KeyValueContext context) override {
    context.getResults().setKeyValue(kv_);
    return kj::READY_NOW;
  }
  kj::Promise<void> echo(EchoContext context) override {
    context.getResults().setPayload(context.getParams().getPayload());
    return kj::READY_NOW;
  }

 private:
  wire::KeyValue::Client kv_;
};

struct Outcome {
  absl::StatusOr<PutResult> put = absl::UnknownError("not run");
  absl::StatusOr<std::string> echo = absl::UnknownError("not run");
  std::vector<uint64_t> request_ids;
  int retries_reported = 0;
};

struct Run {
  net::Reactor& reactor;
  std::string address;
  Outcome* out;
  asio::awaitable<void> Go() {
    ClientOptions options;
    options.on_put_retry = [this](const absl::Status&, int) { ++out->retries_reported; };
    auto client = co_await Client::Connect(reactor, address, options);
    if (client.ok()) {
      out->put = co_await (*client)->Put("k", "v");
      std::string payload("echo\0\xff binary", 13);
      out->echo = co_await (*client)->Echo(payload);
    } else {
      out->put = client.status();
    }
    reactor.Stop();
  }
};

Outcome PutAgainst(std::vector<ScriptedKeyValue::Answer> script) {
  Outcome out;
  net::Reactor reactor;
  {
    wire::KeyValue::Client kv = kj::heap<ScriptedKeyValue>(std::move(script), &out.request_ids);
    auto server = net::RpcServer::Listen(reactor, "127.0.0.1:0", kj::heap<ScriptedNode>(kv));
    EXPECT_TRUE(server.ok()) << server.status();
    if (!server.ok()) return out;
    Run run{reactor, (*server)->address(), &out};
    asio::co_spawn(reactor.io(), run.Go(), asio::detached);
    reactor.Run();
  }
  return out;
}

using A = ScriptedKeyValue::Answer;

TEST(ClientTest, OutcomeUnknownIsRetriedWithTheSameRequestId) {
  Outcome o = PutAgainst({A::kOutcomeUnknown, A::kOk});
  ASSERT_TRUE(o.put.ok()) << o.put.status();
  EXPECT_EQ(o.put->kind, PutResult::Kind::kOk);
  ASSERT_EQ(o.request_ids.size(), 2u);
  EXPECT_NE(o.request_ids[0], 0u);
  EXPECT_EQ(o.request_ids[0], o.request_ids[1]);
  EXPECT_EQ(o.retries_reported, 1);
}

TEST(ClientTest, OutcomeStillUnknownAfterEveryAttemptIsAnError) {
  Outcome o = PutAgainst({A::kOutcomeUnknown, A::kOutcomeUnknown, A::kOutcomeUnknown});
  ASSERT_FALSE(o.put.ok());
  EXPECT_TRUE(absl::IsUnavailable(o.put.status())) << o.put.status();
  EXPECT_NE(o.put.status().message().find("outcome unknown"), absl::string_view::npos);
  EXPECT_EQ(o.request_ids.size(), 3u);  // ClientOptions::put_attempts
}

TEST(ClientTest, UnavailableWithNothingStoredIsFinal) {
  Outcome o = PutAgainst({A::kUnavailable, A::kOk});
  ASSERT_TRUE(o.put.ok()) << o.put.status();
  EXPECT_EQ(o.put->kind, PutResult::Kind::kUnavailable);
  EXPECT_NE(o.put->message.find("nothing stored"), std::string::npos);
  EXPECT_EQ(o.request_ids.size(), 1u);
  EXPECT_EQ(o.retries_reported, 0);
}

// Serves gets: every key is found with the value "v".
class FoundKeyValue final : public wire::KeyValue::Server {
 public:
  kj::Promise<void> get(GetContext context) override {
    context.getResults().initResult().setFound(
        capnp::Data::Reader(reinterpret_cast<const kj::byte*>("v"), 1));
    return kj::READY_NOW;
  }
};

TEST(ClientTest, CallsAfterTheNodeRestartedConnectAgain) {
  net::Reactor reactor;
  std::string address;
  std::vector<std::string> got;
  {
    auto first = net::RpcServer::Listen(reactor, "127.0.0.1:0",
                                        kj::heap<ScriptedNode>(kj::heap<FoundKeyValue>()));
    ASSERT_TRUE(first.ok()) << first.status();
    address = (*first)->address();
    std::unique_ptr<net::RpcServer> server = std::move(*first);
    asio::co_spawn(
        reactor.io(),
        [&]() -> asio::awaitable<void> {
          auto client = co_await Client::Connect(reactor, address);
          if (!client.ok()) {
            got.push_back("connect: " + std::string(client.status().message()));
            reactor.Stop();
            co_return;
          }
          auto record = [&](const absl::StatusOr<GetResult>& r) {
            got.push_back(r.ok() ? r->value : "error: " + std::string(r.status().message()));
          };
          std::string key = "k";
          absl::StatusOr<GetResult> before = co_await (*client)->Get(key);
          record(before);
          // The node goes away and comes back at the same address.
          server.reset();
          asio::steady_timer pause(reactor.io(), std::chrono::milliseconds(20));
          co_await pause.async_wait(asio::use_awaitable);
          auto again = net::RpcServer::Listen(reactor, address,
                                              kj::heap<ScriptedNode>(kj::heap<FoundKeyValue>()));
          if (!again.ok()) {
            got.push_back("listen again: " + std::string(again.status().message()));
            reactor.Stop();
            co_return;
          }
          server = std::move(*again);
          absl::StatusOr<GetResult> after = co_await (*client)->Get(key);
          record(after);
          absl::StatusOr<std::string> echo = co_await (*client)->Echo("e");
          got.push_back(echo.ok() ? *echo : "error: " + std::string(echo.status().message()));
          server.reset();
          reactor.Stop();
        },
        asio::detached);
    reactor.Run();
  }
  EXPECT_EQ(got, (std::vector<std::string>{"v", "v", "e"}));
}

TEST(ClientTest, EchoReturnsThePayloadByteForByte) {
  Outcome o = PutAgainst({A::kOk});
  ASSERT_TRUE(o.echo.ok()) << o.echo.status();
  EXPECT_EQ(*o.echo, std::string("echo\0\xff binary", 13));
}

// Serves put and putMany, counting messages: item or put with key K is
// answered keyExists(K), except that a key starting "unknown" is answered
// outcomeUnknown the first time it is seen. Records every request id.
class CountingKeyValue final : public wire::KeyValue::Server {
 public:
  struct Seen {
    int puts = 0;
    int put_many = 0;
    std::vector<size_t> put_many_sizes;
    std::vector<std::pair<std::string, uint64_t>> ids;  // key, request id
    int gets = 0;
    int get_many = 0;
    int refused_many = 0;  // putMany/getMany answered "not implemented"
  };
  // `batches` false: a node of a release without putMany and getMany.
  explicit CountingKeyValue(Seen* seen, bool batches = true) : seen_(seen), batches_(batches) {}

  kj::Promise<void> put(PutContext context) override {
    ++seen_->puts;
    auto p = context.getParams();
    Answer(ToString(p.getKey()), p.getRequestId(), context.getResults().initResult());
    return kj::READY_NOW;
  }
  kj::Promise<void> putMany(PutManyContext context) override {
    if (!batches_) {
      ++seen_->refused_many;
      return wire::KeyValue::Server::putMany(context);  // Cap'n Proto's "not implemented"
    }
    ++seen_->put_many;
    auto items = context.getParams().getItems();
    seen_->put_many_sizes.push_back(items.size());
    auto out = context.getResults().initResults(items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      const std::string key = ToString(items[i].getKey());
      if (key.rfind("big", 0) == 0) {
        seen_->ids.emplace_back(key, items[i].getRequestId());
        out[i].setAnswerTooLarge();
        continue;
      }
      Answer(key, items[i].getRequestId(), out[i]);
    }
    return kj::READY_NOW;
  }
  kj::Promise<void> get(GetContext context) override {
    ++seen_->gets;
    context.getResults().initResult().setFound(context.getParams().getKey());
    return kj::READY_NOW;
  }
  kj::Promise<void> getMany(GetManyContext context) override {
    if (!batches_) {
      ++seen_->refused_many;
      return wire::KeyValue::Server::getMany(context);
    }
    ++seen_->get_many;
    auto keys = context.getParams().getKeys();
    auto out = context.getResults().initResults(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      if (ToString(keys[i]).rfind("big", 0) == 0) {
        out[i].setAnswerTooLarge();
      } else {
        out[i].setFound(keys[i]);
      }
    }
    return kj::READY_NOW;
  }

 private:
  static std::string ToString(capnp::Data::Reader d) {
    return std::string(reinterpret_cast<const char*>(d.begin()), d.size());
  }
  void Answer(const std::string& key, uint64_t request_id, wire::PutResult::Builder out) {
    seen_->ids.emplace_back(key, request_id);
    if (key.rfind("unknown", 0) == 0 && !answered_unknown_.contains(key)) {
      answered_unknown_.insert(key);
      out.setOutcomeUnknown("the decision could not be recorded in time");
      return;
    }
    out.setKeyExists(
        capnp::Data::Reader(reinterpret_cast<const kj::byte*>(key.data()), key.size()));
  }
  Seen* seen_;
  bool batches_;
  std::set<std::string> answered_unknown_;
};

struct ManyOutcome {
  CountingKeyValue::Seen seen;
  std::vector<absl::StatusOr<PutResult>> puts;
  std::vector<absl::StatusOr<GetResult>> gets;
};

asio::awaitable<void> OneCall(Client* client, std::string key, bool get, ManyOutcome* out,
                              size_t at, size_t* left, asio::steady_timer* all_done) {
  if (get) {
    out->gets[at] = co_await client->Get(key);
  } else {
    out->puts[at] = co_await client->Put(key, "v");
  }
  if (--*left == 0) all_done->cancel();
}

// `keys.size()` puts, then as many gets, each from a coroutine of its own,
// all started in one turn of the loop.
asio::awaitable<void> Drive(net::Reactor* reactor, std::string address, bool coalesce,
                            std::vector<std::string> keys, ManyOutcome* out) {
  ClientOptions options;
  options.coalesce = coalesce;
  auto client = co_await Client::Connect(*reactor, address, options);
  if (!client.ok()) {
    out->puts[0] = client.status();
    reactor->Stop();
    co_return;
  }
  for (bool gets : {false, true}) {
    size_t remaining = keys.size();
    asio::steady_timer all_done(reactor->io(), asio::steady_timer::time_point::max());
    for (size_t i = 0; i < keys.size(); ++i) {
      asio::co_spawn(reactor->io(),
                     OneCall(client->get(), keys[i], gets, out, i, &remaining, &all_done),
                     asio::detached);
    }
    while (remaining > 0) {
      asio::error_code ec;
      co_await all_done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  }
  reactor->Stop();
}

ManyOutcome ConcurrentCalls(std::vector<std::string> keys, bool coalesce,
                            bool node_batches = true) {
  ManyOutcome out;
  out.puts.assign(keys.size(), absl::UnknownError("not run"));
  out.gets.assign(keys.size(), absl::UnknownError("not run"));
  net::Reactor reactor;
  {
    wire::KeyValue::Client kv = kj::heap<CountingKeyValue>(&out.seen, node_batches);
    auto server = net::RpcServer::Listen(reactor, "127.0.0.1:0", kj::heap<ScriptedNode>(kv));
    EXPECT_TRUE(server.ok()) << server.status();
    if (!server.ok()) return out;
    asio::co_spawn(reactor.io(),
                   Drive(&reactor, (*server)->address(), coalesce, std::move(keys), &out),
                   asio::detached);
    reactor.Run();
  }
  return out;
}

TEST(ClientCoalescingTest, CallsOfOneTurnGoAsOneMessageEachAnsweredInOrder) {
  std::vector<std::string> keys;
  for (int i = 0; i < 10; ++i) keys.push_back("key-" + std::to_string(i));
  ManyOutcome o = ConcurrentCalls(keys, /*coalesce=*/true);
  EXPECT_EQ(o.seen.puts, 0);
  EXPECT_EQ(o.seen.put_many, 1);
  EXPECT_EQ(o.seen.put_many_sizes, std::vector<size_t>{10});
  EXPECT_EQ(o.seen.gets, 0);
  EXPECT_EQ(o.seen.get_many, 1);
  for (size_t i = 0; i < keys.size(); ++i) {
    ASSERT_TRUE(o.puts[i].ok()) << o.puts[i].status();
    EXPECT_EQ(o.puts[i]->kind, PutResult::Kind::kKeyExists);
    EXPECT_EQ(o.puts[i]->existing, keys[i]) << "caller " << i << " got another item's result";
    ASSERT_TRUE(o.gets[i].ok()) << o.gets[i].status();
    EXPECT_EQ(o.gets[i]->value, keys[i]);
  }
}

// A node of a release before putMany/getMany answers them "not implemented"
// (and applies nothing): the client asks each call of that message alone and
// sends no batch to it again.
TEST(ClientCoalescingTest, ANodeWithoutBatchesGetsEveryCallAlone) {
  std::vector<std::string> keys = {"a", "b", "c", "d", "e"};
  ManyOutcome o = ConcurrentCalls(keys, /*coalesce=*/true, /*node_batches=*/false);
  EXPECT_EQ(o.seen.refused_many, 1) << "only the first putMany; the gets went alone";
  EXPECT_EQ(o.seen.put_many, 0);
  EXPECT_EQ(o.seen.puts, 5);
  EXPECT_EQ(o.seen.gets, 5);
  for (size_t i = 0; i < keys.size(); ++i) {
    ASSERT_TRUE(o.puts[i].ok()) << o.puts[i].status();
    EXPECT_EQ(o.puts[i]->existing, keys[i]);
    ASSERT_TRUE(o.gets[i].ok()) << o.gets[i].status();
    EXPECT_EQ(o.gets[i]->value, keys[i]);
  }
}

TEST(ClientCoalescingTest, OffSendsEveryCallAlone) {
  std::vector<std::string> keys = {"a", "b", "c", "d"};
  ManyOutcome o = ConcurrentCalls(keys, /*coalesce=*/false);
  EXPECT_EQ(o.seen.puts, 4);
  EXPECT_EQ(o.seen.put_many, 0);
  EXPECT_EQ(o.seen.gets, 4);
  EXPECT_EQ(o.seen.get_many, 0);
  for (size_t i = 0; i < keys.size(); ++i) {
    ASSERT_TRUE(o.puts[i].ok()) << o.puts[i].status();
    EXPECT_EQ(o.puts[i]->existing, keys[i]);
  }
}

TEST(ClientCoalescingTest, ACallAloneInItsTurnIsAPlainCall) {
  ManyOutcome o = ConcurrentCalls({"only"}, /*coalesce=*/true);
  EXPECT_EQ(o.seen.puts, 1);
  EXPECT_EQ(o.seen.put_many, 0);
  EXPECT_EQ(o.seen.gets, 1);
  EXPECT_EQ(o.seen.get_many, 0);
  ASSERT_TRUE(o.puts[0].ok()) << o.puts[0].status();
  EXPECT_EQ(o.puts[0]->existing, "only");
}

TEST(ClientCoalescingTest, AnItemWhoseOutcomeIsUnknownIsRetriedAloneWithItsRequestId) {
  ManyOutcome o = ConcurrentCalls({"a", "unknown-b", "c"}, /*coalesce=*/true);
  // The first message carried all three; the retry of the one left unknown
  // went alone, as a plain put, with the same request id.
  EXPECT_EQ(o.seen.put_many_sizes, std::vector<size_t>{3});
  EXPECT_EQ(o.seen.puts, 1);
  uint64_t first = 0;
  int sent = 0;
  for (const auto& [key, id] : o.seen.ids) {
    if (key != "unknown-b") continue;
    if (++sent == 1) first = id;
    EXPECT_EQ(id, first);
    EXPECT_NE(id, 0u);
  }
  EXPECT_EQ(sent, 2);
  ASSERT_TRUE(o.puts[1].ok()) << o.puts[1].status();
  EXPECT_EQ(o.puts[1]->existing, "unknown-b");
}

TEST(ClientCoalescingTest, AnItemWhoseAnswerDidNotFitIsAskedAgainAlone) {
  ManyOutcome o = ConcurrentCalls({"a", "big-b", "c"}, /*coalesce=*/true);
  EXPECT_EQ(o.seen.put_many_sizes, std::vector<size_t>{3});
  EXPECT_EQ(o.seen.puts, 1);  // big-b again, alone
  EXPECT_EQ(o.seen.get_many, 1);
  EXPECT_EQ(o.seen.gets, 1);
  int sent = 0;
  uint64_t first = 0;
  for (const auto& [key, id] : o.seen.ids) {
    if (key != "big-b") continue;
    if (++sent == 1) first = id;
    EXPECT_EQ(id, first) << "the same request id";
  }
  EXPECT_EQ(sent, 2);
  for (size_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(o.puts[i].ok()) << o.puts[i].status();
    ASSERT_TRUE(o.gets[i].ok()) << o.gets[i].status();
  }
  EXPECT_EQ(o.puts[1]->existing, "big-b");
  EXPECT_EQ(o.gets[1]->value, "big-b");
}

TEST(ClientCoalescingTest, AMessageCarriesAtMost32Calls) {
  std::vector<std::string> keys;
  for (int i = 0; i < 65; ++i) keys.push_back("k" + std::to_string(i));
  ManyOutcome o = ConcurrentCalls(keys, /*coalesce=*/true);
  EXPECT_EQ(o.seen.put_many_sizes, (std::vector<size_t>{32, 32}));
  EXPECT_EQ(o.seen.puts, 1);  // the 65th, alone
  for (size_t i = 0; i < keys.size(); ++i) {
    ASSERT_TRUE(o.puts[i].ok()) << o.puts[i].status();
    EXPECT_EQ(o.puts[i]->existing, keys[i]);
  }
}

}  // namespace
}  // namespace replicator
