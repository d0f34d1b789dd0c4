// The C++ client against a scripted node: which answers it retries (with the
// same request id) and which it hands back as final.
#include <string>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <chrono>

#include "gtest/gtest.h"
#include "net/reactor.h"
#include "net/rpc.h"
#include "replicator/client.h"
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

}  // namespace
}  // namespace replicator
