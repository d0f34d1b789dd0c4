// The client against a real local deployment over TLS 1.3 (1 cluster x 3 replicatord, the
// launcher's throw-away CA): every call a user makes, bad input, certificates of each kind,
// and no unhandled rejection left behind.
import { unhandled, settle } from "./unhandled.mjs";

import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { connect, ReplicatorError } from "../dist/index.js";
import { startDeployment, replicatorCli } from "./deployment.mjs";
import { startMute } from "./fake-node.mjs";

let deployment;
let address; // a node of the deployment
let writer; // a client with a `write` certificate
const decoder = new TextDecoder();

before(async () => {
  deployment = await startDeployment({ clusters: 1, nodes: 3 });
  address = deployment.addresses[0].address;
  const certs = deployment.certsDir;
  replicatorCli(["cert", "create-client", "alice", "--role=write", `--certs-dir=${certs}`]);
  replicatorCli(["cert", "create-client", "reader", "--role=read", `--certs-dir=${certs}`]);
  // Another federation's CA, and a client of it.
  const other = join(deployment.dir, "other-ca");
  mkdirSync(other);
  replicatorCli(["cert", "create-ca", `--certs-dir=${other}`]);
  replicatorCli(["cert", "create-client", "mallory", "--role=admin", `--certs-dir=${other}`]);
  writer = await connect({ address, certsDir: certs, user: "alice" });
});

after(async () => {
  writer?.close();
  await deployment?.stop();
});

test("put, get and status over TLS with a client certificate", async () => {
  const put = await writer.put("greeting", "hello");
  assert.equal(put.kind, "ok");
  assert.equal(typeof put.requestId, "bigint");
  const got = await writer.get("greeting");
  assert.equal(got.kind, "found");
  assert.equal(decoder.decode(got.value), "hello");
  // From another node of the cluster, linearizable: sees the put that answered ok.
  const other = await connect({
    address: deployment.addresses[2].address,
    certsDir: deployment.certsDir,
    user: "alice",
  });
  try {
    const lin = await other.get("greeting", { consistency: "linearizable" });
    assert.equal(decoder.decode(lin.value), "hello");
  } finally {
    other.close();
  }
  assert.deepEqual(await writer.get("never-put"), { kind: "notFound" });
  const status = await writer.status();
  assert.equal(status.self.address, address);
  assert.equal(status.self.cluster, "c1");
  assert.equal(status.self.state, "voter");
  assert.equal(status.members.length, 3);
  assert.equal(status.insecure, false);
  assert.equal(status.safetyViolations, 0);
  assert.ok(status.committedKeys >= 1);
  assert.ok(status.putsOk >= 1);
  assert.equal(status.configurations[0].cluster, "c1");
  assert.equal(status.configurations[0].voters.length, 3);
});

test("a second put of a key answers keyExists with the committed value", async () => {
  assert.equal((await writer.put("taken", "first")).kind, "ok");
  const again = await writer.put("taken", "second");
  assert.equal(again.kind, "keyExists");
  assert.equal(decoder.decode(again.existing), "first");
});

test("a put sent again with its request id answers ok (applied), as a number or a bigint", async () => {
  const byNumber = await writer.put("retried-n", "v", { requestId: 123456789 });
  assert.deepEqual(byNumber, { kind: "ok", requestId: 123456789n });
  assert.equal((await writer.put("retried-n", "v", { requestId: 123456789 })).kind, "ok");
  const big = (1n << 63n) + 12345n; // beyond Number's exact range
  assert.equal((await writer.put("retried-b", "v", { requestId: big })).kind, "ok");
  const again = await writer.put("retried-b", "v", { requestId: big });
  assert.deepEqual(again, { kind: "ok", requestId: big });
  // Another request id for the same key is another put: the key is taken.
  assert.equal((await writer.put("retried-b", "v", { requestId: big + 1n })).kind, "keyExists");
});

test("binary keys and values round-trip byte for byte", async () => {
  const key = new Uint8Array(255);
  for (let i = 0; i < key.length; i++) key[i] = (i + 1) & 0xff; // every byte but a leading NUL
  key[100] = 0;
  const value = new Uint8Array(512);
  for (let i = 0; i < value.length; i++) value[i] = (i * 7) & 0xff;
  assert.equal((await writer.put(key, value)).kind, "ok");
  const got = await writer.get(key);
  assert.equal(got.kind, "found");
  assert.deepEqual(got.value, value);
  // The empty value is a value.
  assert.equal((await writer.put(new Uint8Array([0xff, 0xfe]), new Uint8Array(0))).kind, "ok");
  assert.deepEqual(await writer.get(new Uint8Array([0xff, 0xfe])), {
    kind: "found",
    value: new Uint8Array(0),
  });
});

test("a 1 MiB value (the default limit) is stored and read back", async () => {
  const value = new Uint8Array(1 << 20);
  for (let i = 0; i < value.length; i++) value[i] = (i * 31 + 7) & 0xff;
  assert.equal((await writer.put("big", value)).kind, "ok");
  const got = await writer.get("big");
  assert.equal(got.kind, "found");
  assert.equal(got.value.byteLength, value.byteLength);
  assert.ok(Buffer.from(got.value).equals(Buffer.from(value)));
});

test("invalid input rejects with invalidArgument and a clear message", async () => {
  const invalid = (message) => (err) => {
    assert.ok(err instanceof ReplicatorError, String(err));
    assert.equal(err.code, "invalidArgument");
    assert.match(err.message, message);
    return true;
  };
  await assert.rejects(writer.put("", "v"), invalid(/^key is empty$/));
  await assert.rejects(writer.put(new Uint8Array(0), "v"), invalid(/^key is empty$/));
  await assert.rejects(writer.get(""), invalid(/^key is empty$/));
  await assert.rejects(writer.put(42, "v"), invalid(/key must be a Uint8Array or a string/));
  // Over the node's limits (1 KiB keys, 1 MiB values): the node says so.
  await assert.rejects(writer.put("k".repeat(1025), "v"), invalid(/^put: .*key/i));
  await assert.rejects(
    writer.put("too-big", new Uint8Array((1 << 20) + 1)),
    invalid(/^put: .*value/i),
  );
  await assert.rejects(writer.get("k".repeat(1025)), invalid(/^get: .*key/i));
  // Over any node's ceiling: refused before sending.
  await assert.rejects(
    writer.put("huge", new Uint8Array(33 * 1024 * 1024)),
    invalid(/over the most any node accepts/),
  );
  await assert.rejects(writer.put("k", "v", { requestId: 0 }), invalid(/request id 0 means none/));
  await assert.rejects(writer.put("k", "v", { requestId: 0n }), invalid(/request id 0 means none/));
  await assert.rejects(
    writer.put("k", "v", { requestId: -1 }),
    invalid(/not a non-negative safe integer/),
  );
  await assert.rejects(
    writer.put("k", "v", { requestId: 1.5 }),
    invalid(/not a non-negative safe integer/),
  );
  await assert.rejects(writer.put("k", "v", { requestId: 2 ** 53 }), invalid(/pass a bigint/));
  await assert.rejects(writer.put("k", "v", { requestId: 1n << 64n }), invalid(/is not a UInt64/));
  await assert.rejects(writer.get("k", { consistency: "strong" }), invalid(/consistency must be/));
  // Nothing of the above was stored.
  assert.deepEqual(await writer.get("too-big"), { kind: "notFound" });
  assert.deepEqual(await writer.get("k"), { kind: "notFound" });
});

test("200 concurrent puts on one connection all commit", async () => {
  const puts = [];
  for (let i = 0; i < 200; i++) puts.push(writer.put(`concurrent/${i}`, `value ${i}`));
  const results = await Promise.all(puts);
  assert.deepEqual(
    results.map((r) => r.kind),
    results.map(() => "ok"),
  );
  assert.equal(new Set(results.map((r) => r.requestId)).size, 200);
  const gets = await Promise.all(results.map((_, i) => writer.get(`concurrent/${i}`)));
  gets.forEach((g, i) => assert.equal(decoder.decode(g.value), `value ${i}`));
});

test("certificates as PEM options; a read client may get but not put", async () => {
  const certs = deployment.certsDir;
  const retries = [];
  const reader = await connect({
    address,
    ca: readFileSync(join(certs, "ca.crt"), "utf8"),
    cert: readFileSync(join(certs, "client.reader.crt")),
    key: readFileSync(join(certs, "client.reader.key")),
    onPutRetry: (failure, next) => retries.push([failure.code, next]),
  });
  try {
    assert.equal(decoder.decode((await reader.get("greeting")).value), "hello");
    await assert.rejects(reader.put("reader-key", "v"), (err) => {
      assert.equal(err.code, "permissionDenied");
      assert.match(
        err.message,
        /^permission denied: put needs role write or admin; this certificate \(CN reader\) has role read/,
      );
      assert.equal(err.outcomeUnknown, false);
      return true;
    });
    assert.deepEqual(retries, []); // final: not retried
    assert.deepEqual(await writer.get("reader-key"), { kind: "notFound" });
  } finally {
    reader.close();
  }
});

test("a node's certificate is no client: its calls are refused", async () => {
  const certs = join(deployment.dir, "c1-n2", "certs"); // node.crt/node.key of a node
  const node = await connect({
    address,
    ca: readFileSync(join(certs, "ca.crt")),
    cert: readFileSync(join(certs, "node.crt")),
    key: readFileSync(join(certs, "node.key")),
  });
  try {
    await assert.rejects(node.put("node-key", "v"), {
      code: "permissionDenied",
      message: /put needs role write or admin; .* has role node/,
    });
    await assert.rejects(node.get("greeting"), { code: "permissionDenied" });
  } finally {
    node.close();
  }
});

test("a certificate of another CA is refused at connect", async () => {
  const other = join(deployment.dir, "other-ca");
  await assert.rejects(connect({ address, certsDir: other, user: "mallory" }), (err) => {
    assert.ok(err instanceof ReplicatorError);
    assert.equal(err.code, "unauthenticated");
    // Our side refuses the node's certificate (it is not of mallory's CA).
    assert.match(err.message, /refused the certificate of the node at 127\.0\.0\.1:\d+/);
    return true;
  });
  // The right CA, a client certificate of another CA: the node refuses it.
  await assert.rejects(
    connect({
      address,
      ca: readFileSync(join(deployment.certsDir, "ca.crt")),
      cert: readFileSync(join(other, "client.mallory.crt")),
      key: readFileSync(join(other, "client.mallory.key")),
    }),
    (err) => {
      assert.equal(err.code, "unauthenticated");
      assert.match(err.message, /the node at 127\.0\.0\.1:\d+ refused this client's certificate/);
      return true;
    },
  );
});

test("no certificate: connect refuses to start, and a plaintext client is told why", async () => {
  await assert.rejects(connect({ address }), {
    code: "invalidArgument",
    message: /needs the CA and a client certificate/,
  });
  await assert.rejects(connect({ address, insecure: true }), (err) => {
    assert.equal(err.code, "unauthenticated");
    assert.match(err.message, /refused the connection: this server accepts only TLS connections/);
    return true;
  });
});

test("a TLS connect to a port that never answers is bounded by connectTimeoutMs", async () => {
  const mute = await startMute();
  try {
    await assert.rejects(
      connect({ address: mute.address, certsDir: deployment.certsDir, connectTimeoutMs: 300 }),
      {
        code: "deadlineExceeded",
        message: /no connection to 127\.0\.0\.1:\d+ within 300 ms/,
      },
    );
  } finally {
    await mute.stop();
  }
});

test("a failed pipelined call leaves no unhandled rejection", async () => {
  // The reader's put fails at the node (permission denied) on the pipelined keyValue(); the
  // plaintext client's bootstrap and keyValue() are aborted by the node.
  const reader = await connect({ address, certsDir: deployment.certsDir, user: "reader" });
  const results = await Promise.allSettled([
    reader.put("a", "b"),
    reader.put("c", "d"),
    connect({ address, insecure: true }),
  ]);
  reader.close();
  assert.deepEqual(
    results.map((r) => r.status),
    ["rejected", "rejected", "rejected"],
  );
  await settle();
  assert.deepEqual(unhandled, []);
});

test("no unhandled rejections in this file", async () => {
  await settle();
  assert.deepEqual(unhandled, []);
});
