// The pure parts: stream framing across arbitrary chunk boundaries, address and UInt64
// parsing.
import assert from "node:assert/strict";
import { test } from "node:test";

import * as capnp from "capnp-es";

import { parseAddress, toUInt64 } from "../dist/index.js";
import { FrameReader, FramingError, kMaxMessageBytes } from "../dist/transport.js";
import { KeyValue_Put$Params } from "../dist/gen/replicator.js";

function frame(key, valueBytes, requestId) {
  const m = new capnp.Message();
  const p = m.initRoot(KeyValue_Put$Params);
  p._initKey(key.length).copyBuffer(new TextEncoder().encode(key));
  p._initValue(valueBytes).copyBuffer(new Uint8Array(valueBytes).fill(7));
  p.requestId = requestId;
  return new Uint8Array(m.toArrayBuffer());
}

function decode(buffer) {
  return new capnp.Message(buffer, false).getRoot(KeyValue_Put$Params);
}

test("frames split at every byte, and several in one chunk, come out whole and in order", () => {
  const frames = [frame("a", 0, 1n), frame("bb", 100, 2n), frame("ccc", 70000, 3n)];
  const stream = new Uint8Array(frames.reduce((n, f) => n + f.byteLength, 0));
  let at = 0;
  for (const f of frames) {
    stream.set(f, at);
    at += f.byteLength;
  }
  for (const step of [1, 3, 8, 4096, stream.byteLength]) {
    const reader = new FrameReader();
    const out = [];
    for (let i = 0; i < stream.byteLength; i += step)
      out.push(...reader.push(stream.subarray(i, i + step)));
    assert.equal(out.length, 3, `chunks of ${step}`);
    assert.deepEqual(
      out.map((b) => decode(b).requestId),
      [1n, 2n, 3n],
    );
    assert.equal(decode(out[2]).value.length, 70000);
  }
});

test("a multi-segment frame (even segment count: padded header) is read whole", () => {
  // Four segments by hand: header 4 + 4*4 + 4 padding, segments of 1, 0, 2, 1 words.
  const sizes = [1, 0, 2, 1];
  const header = 4 + sizes.length * 4 + 4;
  const bytes = new Uint8Array(header + 8 * sizes.reduce((a, b) => a + b, 0));
  const view = new DataView(bytes.buffer);
  view.setUint32(0, sizes.length - 1, true);
  sizes.forEach((s, i) => view.setUint32(4 + i * 4, s, true));
  const reader = new FrameReader();
  assert.deepEqual(reader.push(bytes.subarray(0, bytes.byteLength - 1)), []);
  const out = reader.push(bytes.subarray(bytes.byteLength - 1));
  assert.equal(out.length, 1);
  assert.equal(out[0].byteLength, bytes.byteLength);
});

test("a frame header over the size bound or with too many segments is refused", () => {
  const big = new Uint8Array(8);
  new DataView(big.buffer).setUint32(4, kMaxMessageBytes / 8 + 1, true);
  assert.throws(() => new FrameReader().push(big), FramingError);
  const many = new Uint8Array(4);
  new DataView(many.buffer).setUint32(0, 100000, true);
  assert.throws(() => new FrameReader().push(many), /segments: not Cap'n Proto/);
});

test("addresses", () => {
  assert.deepEqual(parseAddress("127.0.0.1:7001"), { host: "127.0.0.1", port: 7001 });
  assert.deepEqual(parseAddress("node-a.example:1"), { host: "node-a.example", port: 1 });
  assert.deepEqual(parseAddress("[::1]:7001"), { host: "::1", port: 7001 });
  for (const bad of [
    "",
    "host",
    "host:",
    ":7001",
    "host:0",
    "host:65536",
    "::1:7001",
    "host:12x",
  ]) {
    assert.throws(() => parseAddress(bad), { code: "invalidArgument" }, bad);
  }
});

test("UInt64 as a number or a bigint", () => {
  assert.equal(toUInt64("id", 0), 0n);
  assert.equal(toUInt64("id", Number.MAX_SAFE_INTEGER), 2n ** 53n - 1n);
  assert.equal(toUInt64("id", 2n ** 64n - 1n), 2n ** 64n - 1n);
  for (const bad of [-1, 0.5, 2 ** 53, NaN, Infinity, -1n, 2n ** 64n, "1", null]) {
    assert.throws(() => toUInt64("id", bad), { code: "invalidArgument" }, String(bad));
  }
});
