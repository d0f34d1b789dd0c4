// Cap'n Proto's two-party transport over a Node.js stream socket (TCP or TLS): the standard
// stream framing (segment count, segment sizes, segments; little-endian words), which is what
// a replicatord serves. capnp-es implements the RPC protocol (`Conn`) over an abstract
// `Transport` and ships no socket transport; this is it. One per connection, on Node's event
// loop.
//
// Incoming messages queue until the RPC loop asks for them, so none is lost between two
// `recvMessage` calls. When the socket fails or closes, `recvMessage` rejects with
// `undefined` (capnp-es's quiet stop) and `closed` resolves with the reason, once.
import type { Socket } from "node:net";

import * as capnp from "capnp-es";
import { Message as RpcMessage } from "capnp-es/capnp/rpc";

// What the node accepts (schema/replicator.capnp); a larger incoming frame is a broken peer.
export const kMaxMessageBytes = 1 << 30;

export class FramingError extends Error {}

// Splits a byte stream into Cap'n Proto frames.
export class FrameReader {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private needed = -1; // the current frame's total size, once its header is in

  // Feeds bytes; returns every frame completed by them (each its own ArrayBuffer).
  push(chunk: Uint8Array): ArrayBuffer[] {
    this.chunks.push(chunk);
    this.buffered += chunk.byteLength;
    const frames: ArrayBuffer[] = [];
    for (;;) {
      if (this.needed < 0) {
        if (this.buffered < 4) break;
        const head = this.peek(4);
        const segments = new DataView(head.buffer, head.byteOffset, 4).getUint32(0, true) + 1;
        if (segments > 512)
          throw new FramingError(`frame of ${segments} segments: not Cap'n Proto`);
        const headerBytes = 4 + segments * 4 + (segments % 2 === 0 ? 4 : 0);
        if (this.buffered < headerBytes) break;
        const header = this.peek(headerBytes);
        const view = new DataView(header.buffer, header.byteOffset, headerBytes);
        let total = headerBytes;
        for (let i = 0; i < segments; i++) total += view.getUint32(4 + i * 4, true) * 8;
        if (total > kMaxMessageBytes) {
          throw new FramingError(`incoming message of ${total} bytes, over ${kMaxMessageBytes}`);
        }
        this.needed = total;
      }
      if (this.buffered < this.needed) break;
      const frame = this.take(this.needed);
      this.needed = -1;
      frames.push(frame.buffer as ArrayBuffer);
    }
    return frames;
  }

  // The first n buffered bytes (n <= buffered), copied only if they span chunks.
  private peek(n: number): Uint8Array {
    if (this.chunks[0].byteLength >= n) return this.chunks[0];
    const out = new Uint8Array(n);
    let at = 0;
    for (const c of this.chunks) {
      const part = c.subarray(0, Math.min(c.byteLength, n - at));
      out.set(part, at);
      at += part.byteLength;
      if (at === n) break;
    }
    return out;
  }

  // Removes the first n bytes into a fresh, exactly sized buffer.
  private take(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let at = 0;
    while (at < n) {
      const c = this.chunks[0];
      const part = Math.min(c.byteLength, n - at);
      out.set(c.subarray(0, part), at);
      at += part;
      if (part === c.byteLength) {
        this.chunks.shift();
      } else {
        this.chunks[0] = c.subarray(part);
      }
    }
    this.buffered -= n;
    return out;
  }
}

export class SocketTransport implements capnp.Transport {
  private readonly reader = new FrameReader();
  private readonly queue: RpcMessage[] = [];
  private waiter?: { resolve: (m: RpcMessage) => void; reject: (e: unknown) => void };
  private failure?: Error;
  private resolveClosed!: (reason: Error) => void;
  // Resolves (never rejects) when the connection is gone, with why.
  readonly closed: Promise<Error>;
  // The reason of an Abort message the peer sent, if any (it explains the close).
  abortReason?: string;

  constructor(private readonly socket: Socket) {
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", (err) => this.fail(err));
    socket.on("close", () => this.fail(new Error("connection closed by the node")));
  }

  get failed(): boolean {
    return this.failure !== undefined;
  }

  sendMessage(msg: RpcMessage): void {
    if (this.failure) return; // the caller's own deadline or the closed promise reports it
    const bytes = new Uint8Array(msg.segment.message.toArrayBuffer());
    this.socket.write(bytes);
  }

  recvMessage(): Promise<RpcMessage> {
    const next = this.queue.shift();
    if (next) return Promise.resolve(next);
    // eslint-disable-next-line prefer-promise-reject-errors
    if (this.failure) return Promise.reject(undefined);
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  close(): void {
    this.fail(new Error("connection closed"));
  }

  // Ends the connection with `reason` (the first reason wins).
  fail(reason: Error): void {
    if (this.failure) return;
    this.failure = reason;
    this.socket.destroy();
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(undefined);
    this.resolveClosed(reason);
  }

  private onData(chunk: Buffer): void {
    if (this.failure) return;
    let frames: ArrayBuffer[];
    try {
      frames = this.reader.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    } catch (err) {
      this.fail(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    for (const frame of frames) {
      let msg: RpcMessage;
      try {
        msg = new capnp.Message(frame, false).getRoot(RpcMessage);
        if (msg.which() === RpcMessage.ABORT) this.abortReason = msg.abort.reason;
      } catch (err) {
        this.fail(new FramingError(`malformed message from the node: ${String(err)}`));
        return;
      }
      const w = this.waiter;
      if (w) {
        this.waiter = undefined;
        w.resolve(msg);
      } else {
        this.queue.push(msg);
      }
    }
  }
}
