// The stand-in node's process (test/fake-node.mjs starts it with fork): serves `Node` over the
// same framing as a node (plaintext) with capnp-es's own RPC server, in a process of its own
// so that whatever capnp-es's server side leaves unhandled is not counted against the client.
// argv[2]: the mode. Tells the parent {address}; answers {requestIds} to "requestIds" and
// drops every connection on "drop".
import * as net from "node:net";

import * as capnp from "capnp-es";

import { SocketTransport } from "../dist/transport.js";
import { KeyValue, Node } from "../dist/gen/replicator.js";

process.on("unhandledRejection", () => {}); // capnp-es's server side, not the client under test

// mode: "silent" (never answers a put), "drop" (closes the connection on a put),
// "unknown" (answers outcomeUnknown, then ok on the next attempt), "ok" (answers ok),
// "refuseKeyValue" (fails Node.keyValue() itself, so every call pipelined on it fails).
// capnp-es's server loses a call pipelined on an answer it has not fulfilled yet (a put on
// `keyValue()` that arrived with it); a real node does not. So each message is handled a turn
// of the event loop after the one before, when the earlier call's answer is done.
class OneAtATime extends SocketTransport {
  async recvMessage() {
    const m = await super.recvMessage();
    await new Promise((resolve) => setImmediate(resolve));
    return m;
  }
}

async function serve(mode) {
  const requestIds = [];
  const sockets = new Set();
  const keyValue = {
    async put(params, results) {
      requestIds.push(params.requestId);
      if (mode === "silent") return new Promise(() => {});
      if (mode === "drop") {
        for (const s of sockets) s.destroy();
        return new Promise(() => {});
      }
      if (mode === "unknown" && requestIds.length === 1) {
        results._initResult().outcomeUnknown = "decision not recorded in time (fake)";
      } else {
        results._initResult().ok = true;
      }
    },
    async get() {},
    async status() {},
    async changeMember() {},
  };
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    const conn = new capnp.Conn(new OneAtATime(socket));
    conn.onError = () => socket.destroy();
    conn.initMain(Node, {
      async keyValue(_params, results) {
        if (mode === "refuseKeyValue")
          throw new Error("permission denied: keyValue refused (fake)");
        results.keyValue = new KeyValue.Client(new KeyValue.Server(keyValue));
      },
      async peer() {},
      async directory() {},
      async echo() {},
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  process.on("message", (m) => {
    if (m === "requestIds") process.send({ requestIds: requestIds.map(String) });
    if (m === "drop") {
      for (const s of sockets) s.destroy();
      process.send({ dropped: true });
    }
  });
  process.send({ address: `127.0.0.1:${server.address().port}` });
}

await serve(process.argv[2]);
