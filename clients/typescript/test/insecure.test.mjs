// The client against a real deployment run with --insecure (plaintext), and what a TLS
// client is told by such a node.
import { unhandled, settle } from "./unhandled.mjs";

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { connect } from "../dist/index.js";
import { replicatorCli, startDeployment } from "./deployment.mjs";

let deployment;
let client;

before(async () => {
  deployment = await startDeployment({ clusters: 1, nodes: 3, insecure: true });
  client = await connect({ address: deployment.addresses[1].address, insecure: true });
});

after(async () => {
  client?.close();
  await deployment?.stop();
});

test("put, get and status in plaintext", async () => {
  assert.equal((await client.put("plain", "text")).kind, "ok");
  assert.equal((await client.put("plain", "other")).kind, "keyExists");
  const got = await client.get("plain", { consistency: "linearizable" });
  assert.equal(new TextDecoder().decode(got.value), "text");
  const status = await client.status();
  assert.equal(status.insecure, true);
  assert.equal(status.members.length, 3);
});

test("a TLS client of an insecure node is told it does not speak TLS", async () => {
  const certs = join(deployment.dir, "tls-client");
  mkdirSync(certs);
  replicatorCli(["cert", "create-ca", `--certs-dir=${certs}`]);
  replicatorCli(["cert", "create-client", "root", "--role=admin", `--certs-dir=${certs}`]);
  await assert.rejects(
    connect({ address: deployment.addresses[0].address, certsDir: certs, connectTimeoutMs: 3000 }),
    (err) => {
      assert.equal(err.code, "unauthenticated", err.message);
      assert.match(
        err.message,
        /TLS handshake with 127\.0\.0\.1:\d+ failed: .*a node run with --insecure\? \(then connect with insecure: true\)/,
      );
      return true;
    },
  );
});

test("calls to a node that went down reject, and do not hang", async () => {
  // Last in this file: the launcher stops the deployment when one of its nodes exits.
  const retries = [];
  const down = await connect({
    address: deployment.addresses[2].address,
    insecure: true,
    onPutRetry: (failure, next) => retries.push([failure.code, next]),
  });
  assert.equal((await down.put("before", "down")).kind, "ok");
  process.kill(deployment.nodePid(2), "SIGKILL");
  try {
    await assert.rejects(down.put("after", "down"), (err) => {
      assert.equal(err.code, "unavailable", err.message);
      assert.match(err.message, /127\.0\.0\.1:\d+/);
      return true;
    });
    await assert.rejects(down.get("before"), { code: "unavailable" });
    await assert.rejects(down.status(), { code: "unavailable" });
    // Each attempt failed to connect, or lost its connection: retried up to putAttempts (3).
    assert.deepEqual(retries, [
      ["unavailable", 2],
      ["unavailable", 3],
    ]);
  } finally {
    down.close();
  }
});

test("no unhandled rejections in this file", async () => {
  await settle();
  assert.deepEqual(unhandled, []);
});
