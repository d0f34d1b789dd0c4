// The client's retry and request-id rules, and its bounds, against stand-ins for a node that
// hangs, drops connections, is down, or cannot learn a put's outcome (test/fake-node.mjs).
import { unhandled, settle } from "./unhandled.mjs";

import assert from "node:assert/strict";
import { test } from "node:test";

import { connect, ReplicatorError } from "../dist/index.js";
import { freePort, startFakeNode, startMute } from "./fake-node.mjs";

test("a put that times out is retried with the same request id, then rejects outcomeUnknown", async () => {
  const fake = await startFakeNode("silent");
  const retries = [];
  const client = await connect({
    address: fake.address,
    insecure: true,
    callTimeoutMs: 200,
    onPutRetry: (failure, next) => retries.push([failure.code, next]),
  });
  try {
    await assert.rejects(client.put("k", "v", { requestId: 77 }), (err) => {
      assert.ok(err instanceof ReplicatorError);
      assert.equal(err.code, "deadlineExceeded");
      assert.equal(err.outcomeUnknown, true);
      assert.match(err.message, /after 3 attempts with request id 77.*may still have been applied/);
      return true;
    });
    assert.deepEqual(await fake.requestIds(3), [77n, 77n, 77n]);
    assert.deepEqual(retries, [
      ["deadlineExceeded", 2],
      ["deadlineExceeded", 3],
    ]);
  } finally {
    client.close();
    await fake.stop();
  }
});

test("a random request id is non-zero and the same for every attempt of one put", async () => {
  const fake = await startFakeNode("silent");
  const client = await connect({
    address: fake.address,
    insecure: true,
    callTimeoutMs: 100,
    putAttempts: 2,
  });
  try {
    await assert.rejects(client.put("k", "v"), { code: "deadlineExceeded" });
    await assert.rejects(client.put("k2", "v"), { code: "deadlineExceeded" });
    const [a1, a2, b1, b2, ...more] = await fake.requestIds(4);
    assert.deepEqual(more, []);
    assert.equal(a1, a2);
    assert.equal(b1, b2);
    assert.notEqual(a1, b1);
    assert.notEqual(a1, 0n);
    assert.equal(a1 & 1n, 1n);
  } finally {
    client.close();
    await fake.stop();
  }
});

test("outcomeUnknown is retried with the same request id, and ok on the retry means applied", async () => {
  const fake = await startFakeNode("unknown");
  const client = await connect({ address: fake.address, insecure: true });
  try {
    const big = (1n << 64n) - 3n;
    const put = await client.put("k", "v", { requestId: big });
    assert.deepEqual(put, { kind: "ok", requestId: big });
    assert.deepEqual(await fake.requestIds(), [big, big]);
  } finally {
    client.close();
    await fake.stop();
  }
});

test("a put whose connection is lost is retried on a new connection with the same id", async () => {
  const fake = await startFakeNode("drop");
  const client = await connect({ address: fake.address, insecure: true });
  try {
    await assert.rejects(client.put("k", "v", { requestId: 5n }), (err) => {
      assert.equal(err.code, "unavailable");
      assert.equal(err.outcomeUnknown, true);
      assert.match(err.message, /connection to 127\.0\.0\.1:\d+ lost/);
      return true;
    });
    assert.deepEqual(await fake.requestIds(3), [5n, 5n, 5n]);
  } finally {
    client.close();
    await fake.stop();
  }
});

test("concurrent calls fail together when the connection drops, none left pending", async () => {
  const fake = await startFakeNode("drop");
  const client = await connect({ address: fake.address, insecure: true, putAttempts: 1 });
  try {
    const puts = [];
    for (let i = 0; i < 20; i++) puts.push(client.put(`k${i}`, "v"));
    const results = await Promise.allSettled(puts);
    for (const r of results) {
      assert.equal(r.status, "rejected");
      assert.equal(r.reason.code, "unavailable");
    }
  } finally {
    client.close();
    await fake.stop();
  }
});

test("a node that is down rejects connect at once", async () => {
  const address = await freePort();
  await assert.rejects(connect({ address, insecure: true }), (err) => {
    assert.equal(err.code, "unavailable");
    assert.match(err.message, new RegExp(`cannot connect to ${address}: .*ECONNREFUSED`));
    return true;
  });
});

test("a node that accepts and never answers fails connect within connectTimeoutMs", async () => {
  const mute = await startMute();
  try {
    await assert.rejects(
      connect({ address: mute.address, insecure: true, connectTimeoutMs: 300 }),
      {
        code: "deadlineExceeded",
        message: /connect: no answer from 127\.0\.0\.1:\d+ within 300 ms/,
      },
    );
  } finally {
    await mute.stop();
  }
});

test("a client whose node is gone rejects every call; after close() they reject as closed", async () => {
  const fake = await startFakeNode("ok");
  const client = await connect({
    address: fake.address,
    insecure: true,
    putAttempts: 1,
    connectTimeoutMs: 500,
  });
  await fake.stop();
  await assert.rejects(client.put("k", "v"), { code: "unavailable" });
  await assert.rejects(client.get("k"), { code: "unavailable", message: /ECONNREFUSED/ });
  client.close();
  await assert.rejects(client.status(), { code: "closed" });
  await assert.rejects(client.put("k", "v"), { code: "closed" });
});

test("bad options reject clearly", async () => {
  await assert.rejects(connect({ address: "nohost", insecure: true }), {
    code: "invalidArgument",
    message: 'address "nohost" is not HOST:PORT',
  });
  await assert.rejects(connect({ address: "127.0.0.1:1" }), {
    code: "invalidArgument",
    message: /needs the CA and a client certificate/,
  });
  await assert.rejects(connect({ address: "127.0.0.1:1", insecure: true, certsDir: "/x" }), {
    code: "invalidArgument",
  });
  await assert.rejects(connect({ address: "127.0.0.1:1", certsDir: "/nonexistent" }), {
    code: "invalidArgument",
    message: /ca: cannot read \/nonexistent\/ca\.crt/,
  });
  await assert.rejects(connect({ address: "127.0.0.1:1", ca: "x", cert: "y", key: "z" }), {
    code: "invalidArgument",
    message: /TLS: the CA, certificate or key is not usable PEM/,
  });
});

test("a call after the connection was lost connects again", async () => {
  const fake = await startFakeNode("ok");
  const client = await connect({ address: fake.address, insecure: true });
  try {
    assert.equal((await client.put("a", "v")).kind, "ok");
    await fake.dropConnections();
    // Whether the loss is seen before the next call or during it, the call goes through on a
    // new connection (a put by its retry with the same id).
    assert.equal((await client.put("b", "v", { requestId: 9 })).kind, "ok");
    await fake.dropConnections();
    assert.equal((await client.put("c", "v", { requestId: 10 })).kind, "ok");
    assert.deepEqual((await fake.requestIds()).slice(-1), [10n]);
  } finally {
    client.close();
    await fake.stop();
  }
});

test("a failed pipelined keyValue() fails the calls made on it, and leaves no unhandled rejection", async () => {
  const fake = await startFakeNode("refuseKeyValue");
  const client = await connect({ address: fake.address, insecure: true });
  try {
    await assert.rejects(client.put("k", "v"), {
      code: "permissionDenied",
      message: /keyValue refused/,
    });
    await assert.rejects(client.get("k"), { code: "permissionDenied" });
    await assert.rejects(client.status(), { code: "permissionDenied" });
    assert.deepEqual(await fake.requestIds(), []);
    await settle();
    assert.deepEqual(unhandled, []);
  } finally {
    client.close();
    await fake.stop();
  }
});

test("no unhandled rejections", async () => {
  await settle();
  assert.deepEqual(unhandled, []);
});
