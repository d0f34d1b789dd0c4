// AsioStream's buffering on real loopback sockets: reads served from its
// buffer keep byte order and message boundaries, writes of one turn are sent
// together and in order, a slow reader holds writers back, and a dead peer
// fails the writer.
#include "net/asio_stream.h"

#include <gtest/gtest.h>

#include <asio/ip/tcp.hpp>
#include <asio/use_awaitable.hpp>
#include <memory>
#include <string>
#include <vector>

#include "net/bridge.h"
#include "test_util.h"

namespace replicator::net {
namespace {

using testing::RunToCompletion;
using testing::Sleep;

struct Pair {
  std::unique_ptr<AsioStream> a;
  std::unique_ptr<AsioStream> b;
};

asio::awaitable<Pair> Connected(Reactor& reactor) {
  asio::ip::tcp::acceptor acceptor(reactor.io(),
                                   asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  asio::ip::tcp::socket client(reactor.io());
  co_await client.async_connect(acceptor.local_endpoint(), asio::use_awaitable);
  asio::ip::tcp::socket server = co_await acceptor.async_accept(asio::use_awaitable);
  co_return Pair{std::make_unique<AsioStream>(std::move(client)),
                 std::make_unique<AsioStream>(std::move(server))};
}

// Reads exactly `n` bytes through tryRead calls of at most `chunk` bytes.
asio::awaitable<std::string> ReadExactly(AsioStream& s, size_t n, size_t chunk) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    size_t want = std::min(chunk, n - got);
    size_t r = co_await Await(s.tryRead(out.data() + got, want, want));
    if (r == 0) throw std::runtime_error("unexpected EOF");
    got += r;
  }
  co_return out;
}

TEST(AsioStreamTest, ManyWritesOfOneTurnArriveWholeAndInOrder) {
  Reactor reactor;
  RunToCompletion(reactor, [&]() -> asio::awaitable<void> {
    Pair p = co_await Connected(reactor);
    std::string expected;
    // Written back to back without yielding: all go out after this turn.
    for (int i = 0; i < 5000; ++i) {
      std::string piece = "message " + std::to_string(i) + ";";
      expected += piece;
      kj::Promise<void> w = p.a->write(piece.data(), piece.size());
      co_await Await(kj::mv(w));  // resolves at once: the bytes were copied
    }
    // Small reads (like Cap'n Proto's 8-byte headers) and large ones mixed.
    std::string got = co_await ReadExactly(*p.b, 8, 8);
    got += co_await ReadExactly(*p.b, 1000, 3);
    got += co_await ReadExactly(*p.b, expected.size() - got.size(), 1 << 20);
    EXPECT_EQ(got, expected);
  }());
}

TEST(AsioStreamTest, PiecesOfOneWriteStayTogetherAndLargeReadsBypassTheBuffer) {
  Reactor reactor;
  RunToCompletion(reactor, [&]() -> asio::awaitable<void> {
    Pair p = co_await Connected(reactor);
    std::string head = "header--";
    std::string body(3 << 20, 'x');
    for (size_t i = 0; i < body.size(); i += 4096) body[i] = static_cast<char>('a' + i % 26);
    kj::ArrayPtr<const kj::byte> pieces[] = {
        kj::arrayPtr(reinterpret_cast<const kj::byte*>(head.data()), head.size()),
        kj::arrayPtr(reinterpret_cast<const kj::byte*>(body.data()), body.size())};
    kj::Promise<void> w = p.a->write(kj::arrayPtr(pieces, 2));
    co_await Await(kj::mv(w));
    EXPECT_EQ(co_await ReadExactly(*p.b, head.size(), head.size()), head);
    EXPECT_EQ(co_await ReadExactly(*p.b, body.size(), body.size()), body);
  }());
}

TEST(AsioStreamTest, ASlowReaderHoldsTheWriterBackUntilItReads) {
  Reactor reactor;
  RunToCompletion(reactor, [&]() -> asio::awaitable<void> {
    Pair p = co_await Connected(reactor);
    // Far more than the socket buffers and the stream's 4 MiB allowance.
    const std::string block(1 << 20, 'z');
    std::vector<kj::Promise<void>> writes;
    for (int i = 0; i < 32; ++i) writes.push_back(p.a->write(block.data(), block.size()));
    co_await Sleep(std::chrono::milliseconds(50));
    // The last write cannot have completed: nobody read anything yet.
    bool last_done = false;
    kj::Promise<void> last = writes.back().then([&] { last_done = true; }).eagerlyEvaluate(nullptr);
    co_await Sleep(std::chrono::milliseconds(50));
    EXPECT_FALSE(last_done);
    std::string all = co_await ReadExactly(*p.b, 32 * block.size(), 1 << 20);
    EXPECT_EQ(all.size(), 32 * block.size());
    EXPECT_EQ(all.find_first_not_of('z'), std::string::npos);
    co_await Await(kj::mv(last));
    EXPECT_TRUE(last_done);
  }());
}

TEST(AsioStreamTest, WritingToAClosedPeerFails) {
  Reactor reactor;
  RunToCompletion(reactor, [&]() -> asio::awaitable<void> {
    Pair p = co_await Connected(reactor);
    p.b.reset();  // closes the peer's socket
    const std::string block(64 << 10, 'q');
    bool failed = false;
    // Bounded: the kernel reports the reset within a few sends.
    for (int i = 0; i < 200 && !failed; ++i) {
      try {
        kj::Promise<void> w = p.a->write(block.data(), block.size());
        co_await Await(kj::mv(w));
      } catch (const std::exception&) {
        failed = true;
      }
      co_await Sleep(std::chrono::milliseconds(2));
    }
    EXPECT_TRUE(failed);
  }());
}

}  // namespace
}  // namespace replicator::net
