// The C++ client against a scripted node: which answers it retries (with the
// same request id) and which it hands back as final.
#include <string>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>

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
        result.setUnavailable("outcome unknown: the decision could not be recorded in time");
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

TEST(ClientTest, EchoReturnsThePayloadByteForByte) {
  Outcome o = PutAgainst({A::kOk});
  ASSERT_TRUE(o.echo.ok()) << o.echo.status();
  EXPECT_EQ(*o.echo, std::string("echo\0\xff binary", 13));
}

}  // namespace
}  // namespace replicator
