// A stand-in for a replicatord on 127.0.0.1, for what a real node cannot be made to do on
// demand: never answer a put, or drop the connection mid-put. It serves `Node` over the same
// framing as a node (plaintext), with capnp-es's own RPC server, and records every put's
// request id.
import * as net from "node:net";

import * as capnp from "capnp-es";

import { SocketTransport } from "../dist/transport.js";
import { KeyValue, Node, PutResult } from "../dist/gen/replicator.js";

// mode: "silent" (never answers a put), "drop" (closes the connection on a put),
// "unknown" (answers outcomeUnknown, then ok on the next attempt).
export async function startFakeNode(mode) {
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
      if (requestIds.length === 1) {
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
    const conn = new capnp.Conn(new SocketTransport(socket));
    conn.onError = () => socket.destroy();
    conn.initMain(Node, {
      async keyValue(_params, results) {
        results.keyValue = new KeyValue.Client(new KeyValue.Server(keyValue));
      },
      async peer() {},
      async directory() {},
      async echo() {},
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    address: `127.0.0.1:${port}`,
    requestIds,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

// A listener that accepts connections and never says a word (a hung node, or a TLS node's
// port seen through a firewall that eats packets).
export async function startMute() {
  const sockets = new Set();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    address: `127.0.0.1:${server.address().port}`,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

// A port with nothing listening on it (a node that is down): bound, then closed.
export async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return `127.0.0.1:${port}`;
}
