// Stand-ins for a replicatord on 127.0.0.1, for what a real node cannot be made to do on
// demand: never answer a put, drop the connection mid-put, answer outcomeUnknown, fail
// Node.keyValue(). The node runs in a child process (test/fake-node-server.mjs), stopped by
// its PID.
import { fork } from "node:child_process";
import * as net from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

// mode: "silent" (never answers a put), "drop" (closes the connection on a put),
// "unknown" (answers outcomeUnknown, then ok on the next attempt), "ok" (answers ok),
// "refuseKeyValue" (fails Node.keyValue() itself, so every call pipelined on it fails).
export async function startFakeNode(mode) {
  const child = fork(join(here, "fake-node-server.mjs"), [mode], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const next = (key) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`fake node: no ${key} within 10 s`)), 10000);
      const onMessage = (m) => {
        if (m && key in m) {
          clearTimeout(timer);
          child.off("message", onMessage);
          resolve(m[key]);
        }
      };
      child.on("message", onMessage);
    });
  const address = await next("address");
  return {
    address,
    // The request id of every put it received, in order (bigints), once it has received at
    // least `count` (a put the client sent may still be on its way; bounded wait).
    async requestIds(count = 0) {
      for (let i = 0; ; i++) {
        const reply = next("requestIds");
        child.send("requestIds");
        const ids = (await reply).map(BigInt);
        if (ids.length >= count || i >= 100) return ids;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    // Ends every connection (the node restarted, say); the listener stays.
    async dropConnections() {
      const reply = next("dropped");
      child.send("drop");
      await reply;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        process.kill(child.pid, "SIGKILL");
        await exited;
      }
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
