// Replicator's TypeScript client: a connection to one replicatord node, over Cap'n Proto
// two-party RPC on TCP, with TLS 1.3 (the default for nodes) or plaintext (nodes run with
// --insecure). Mirrors the C++ client (include/replicator/client.h): the same retries, the
// same request-id rules, protocol outcomes as values, failures as rejected promises.
//
//   import { connect } from "@replicator/client";
//   const client = await connect({ address: "127.0.0.1:7001", certsDir: "certs", user: "alice" });
//   const put = await client.put("user/42", "alice");
//   if (put.kind === "keyExists") { /* choose another key */ }
//   const got = await client.get("user/42", { consistency: "linearizable" });
//   if (got.kind === "found") console.log(new TextDecoder().decode(got.value));
//   client.close();
//
// Every promise this module returns settles: each call is bounded by callTimeoutMs, and a
// lost connection fails the calls that were on it at once. No promise is left rejected
// without a handler, whatever the node does.
import { readFileSync } from "node:fs";
import * as net from "node:net";
import { join } from "node:path";
import * as tls from "node:tls";
import { randomBytes } from "node:crypto";

import * as capnp from "capnp-es";

import { ReplicatorError } from "./errors.js";
import {
  Consistency as WireConsistency,
  GetResult as WireGetResult,
  KeyValue$Client,
  Node,
  type Node$Client,
  PeerState as WirePeerState,
  PutResult as WirePutResult,
  type Configuration as WireConfiguration,
  type NodeStatus as WireNodeStatus,
  type PeerInfo as WirePeerInfo,
} from "./gen/replicator.js";
import { SocketTransport } from "./transport.js";

export { ReplicatorError, type ErrorCode } from "./errors.js";

// Keys and values: bytes, or a string (sent as its UTF-8 bytes).
export type Bytes = Uint8Array | string;
// A UInt64 of the schema: a non-negative safe integer, or a bigint below 2^64.
export type UInt64 = number | bigint;

// The schema's ceilings (node flags --max-key-bytes, --max-value-bytes may be lower; the node
// answers an oversized request with invalidArgument, which rejects as below).
export const kMaxKeyBytesCeiling = 64 * 1024;
export const kMaxValueBytesCeiling = 32 * 1024 * 1024;

// PEM text, or its bytes.
export type Pem = string | Uint8Array;

export interface ConnectOptions {
  // "HOST:PORT" where the node serves (IPv6: "[::1]:7001").
  address: string;
  // Plaintext, for a node run with --insecure. Exclusive with the certificate options.
  insecure?: boolean;
  // TLS: the federation's CA certificate, and this client's certificate (role read, write or
  // admin; `replicator cert create-client NAME --role=write`) with its key, as PEM.
  ca?: Pem;
  cert?: Pem;
  key?: Pem;
  // Or, as the CLI's --certs-dir/--user: DIR/ca.crt and DIR/client.USER.crt/.key ("root" by
  // default). `ca`, `cert` and `key` override single files.
  certsDir?: string;
  user?: string;
  // Bound on establishing a connection (TCP, TLS, the node accepting the certificate, the
  // bootstrap round trip). Default 5000.
  connectTimeoutMs?: number;
  // Bound on one call. Default 10000.
  callTimeoutMs?: number;
  // A put whose outcome is unknown (timed out, lost its connection, or the node answered
  // outcomeUnknown) is sent again with the same request id, up to this many attempts in all.
  // Default 3.
  putAttempts?: number;
  // Called before each such retry (for logging).
  onPutRetry?: (failure: ReplicatorError, nextAttempt: number) => void;
}

// A put's outcome. `invalidArgument` answers reject instead (ReplicatorError, code
// invalidArgument), as do failures; `outcomeUnknown` is retried, then rejects with
// outcomeUnknown: true.
export type PutResult =
  // Committed: durable at a majority of every cluster. Also the answer to a retry (same
  // request id) of a put that was applied.
  | { kind: "ok"; requestId: bigint }
  // The key already holds `existing` (committed): choose another key.
  | { kind: "keyExists"; existing: Uint8Array; requestId: bigint }
  // A concurrent put held the key past the retry bound; nothing stored. Retry later.
  | { kind: "conflict"; message: string; requestId: bigint }
  // Too few nodes voted; nothing stored. The message names the cluster.
  | { kind: "unavailable"; message: string; requestId: bigint };

export type GetResult =
  | { kind: "found"; value: Uint8Array }
  | { kind: "notFound" }
  // Linearizable reads only: no majority of the node's cluster answered.
  | { kind: "unavailable"; message: string };

export type ConsistencyLevel = "local" | "linearizable";

export interface PutOptions {
  // A non-zero request id chosen by the caller, for retries across processes or clients.
  // Default: a random one, the same for every attempt of this put.
  requestId?: UInt64;
}

export interface GetOptions {
  // "local" (default): this node's committed value, which may lag a put that just finished
  // elsewhere. "linearizable": asks a majority of the node's cluster.
  consistency?: ConsistencyLevel;
}

export type PeerState = "voter" | "catchingUp" | "down" | "unknown";

export interface PeerInfo {
  id: string;
  cluster: string;
  address: string;
  state: PeerState;
  stamp: bigint;
}

export interface Configuration {
  cluster: string;
  epoch: number;
  voters: string[];
  generation: number;
  removed: number;
}

// NodeStatus of the schema, field for field. Counters are numbers (exact below 2^53).
export interface NodeStatus {
  self: PeerInfo;
  members: PeerInfo[];
  configurations: Configuration[];
  committedKeys: number;
  reservations: number;
  putsOk: number;
  putsKeyExists: number;
  putsConflict: number;
  putsUnavailable: number;
  putsInvalid: number;
  putsOutcomeUnknown: number;
  gets: number;
  uptimeMs: number;
  safetyViolations: number;
  storageWrites: number;
  storageBatches: number;
  storageSyncs: number;
  putRetries: number;
  putsJoined: number;
  catchupRounds: number;
  catchupKeysPulled: number;
  storageMutations: number;
  storageWriteErrors: number;
  storageWritesRefused: number;
  configEpoch: number;
  configChanges: number;
  staleEpochRefusals: number;
  federationGeneration: number;
  federationSettled: boolean;
  generationRefusals: number;
  insecure: boolean;
}

// ---------------------------------------------------------------------------------------------
// Input checks.

const encoder = new TextEncoder();

function toBytes(what: string, data: Bytes): Uint8Array {
  if (typeof data === "string") return encoder.encode(data);
  if (data instanceof Uint8Array) return data;
  throw new ReplicatorError(
    "invalidArgument",
    `${what} must be a Uint8Array or a string, not ${typeof data}`,
  );
}

function checkKey(key: Bytes): Uint8Array {
  const bytes = toBytes("key", key);
  if (bytes.byteLength === 0) throw new ReplicatorError("invalidArgument", "key is empty");
  if (bytes.byteLength > kMaxKeyBytesCeiling) {
    throw new ReplicatorError(
      "invalidArgument",
      `key is ${bytes.byteLength} bytes, over the most any node accepts (${kMaxKeyBytesCeiling})`,
    );
  }
  return bytes;
}

function checkValue(value: Bytes): Uint8Array {
  const bytes = toBytes("value", value);
  if (bytes.byteLength > kMaxValueBytesCeiling) {
    throw new ReplicatorError(
      "invalidArgument",
      `value is ${bytes.byteLength} bytes, over the most any node accepts (${kMaxValueBytesCeiling})`,
    );
  }
  return bytes;
}

const kMaxUInt64 = (1n << 64n) - 1n;

// A UInt64 given as a number or a bigint, as a bigint; invalidArgument otherwise.
export function toUInt64(what: string, v: UInt64): bigint {
  if (typeof v === "bigint") {
    if (v < 0n || v > kMaxUInt64)
      throw new ReplicatorError("invalidArgument", `${what} ${v} is not a UInt64`);
    return v;
  }
  if (typeof v === "number") {
    if (!Number.isSafeInteger(v) || v < 0) {
      throw new ReplicatorError(
        "invalidArgument",
        `${what} ${v} is not a non-negative safe integer (pass a bigint for values of 2^53 and up)`,
      );
    }
    return BigInt(v);
  }
  throw new ReplicatorError(
    "invalidArgument",
    `${what} must be a number or a bigint, not ${typeof v}`,
  );
}

function positive(what: string, v: number | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
    throw new ReplicatorError(
      "invalidArgument",
      `${what} must be a positive number, not ${String(v)}`,
    );
  }
  return v;
}

// "HOST:PORT" / "[V6]:PORT" -> host and port.
export function parseAddress(address: string): { host: string; port: number } {
  if (typeof address !== "string")
    throw new ReplicatorError("invalidArgument", "address must be a string HOST:PORT");
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(address) ?? /^([^:[\]]+):(\d+)$/.exec(address);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port >= 1 && port <= 65535)) {
    throw new ReplicatorError("invalidArgument", `address "${address}" is not HOST:PORT`);
  }
  return { host: m[1], port };
}

function randomRequestId(): bigint {
  // Never 0 (0 means none), as the C++ client's `ids() | 1`.
  return randomBytes(8).readBigUInt64LE() | 1n;
}

// ---------------------------------------------------------------------------------------------
// Connections.

interface Settings {
  host: string;
  port: number;
  address: string;
  tls?: { ca: Pem; cert: Pem; key: Pem };
  connectTimeoutMs: number;
  callTimeoutMs: number;
  putAttempts: number;
  onPutRetry?: (failure: ReplicatorError, nextAttempt: number) => void;
}

function readPem(what: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ReplicatorError(
      "invalidArgument",
      `${what}: cannot read ${path}: ${(err as Error).message}`,
    );
  }
}

function settingsOf(options: ConnectOptions): Settings {
  if (options === null || typeof options !== "object") {
    throw new ReplicatorError("invalidArgument", "connect needs options {address, ...}");
  }
  const { host, port } = parseAddress(options.address);
  const s: Settings = {
    host,
    port,
    address: options.address,
    connectTimeoutMs: positive("connectTimeoutMs", options.connectTimeoutMs, 5000),
    callTimeoutMs: positive("callTimeoutMs", options.callTimeoutMs, 10000),
    putAttempts: Math.max(1, Math.floor(positive("putAttempts", options.putAttempts, 3))),
    onPutRetry: options.onPutRetry,
  };
  const anyTls = options.ca ?? options.cert ?? options.key ?? options.certsDir;
  if (options.insecure) {
    if (anyTls !== undefined) {
      throw new ReplicatorError(
        "invalidArgument",
        "insecure: true cannot be combined with ca/cert/key/certsDir",
      );
    }
    return s;
  }
  const dir = options.certsDir;
  const user = options.user ?? "root";
  const ca = options.ca ?? (dir !== undefined ? readPem("ca", join(dir, "ca.crt")) : undefined);
  const cert =
    options.cert ??
    (dir !== undefined ? readPem("cert", join(dir, `client.${user}.crt`)) : undefined);
  const key =
    options.key ??
    (dir !== undefined ? readPem("key", join(dir, `client.${user}.key`)) : undefined);
  if (ca === undefined || cert === undefined || key === undefined) {
    throw new ReplicatorError(
      "invalidArgument",
      "connect needs the CA and a client certificate and key (ca, cert, key, or certsDir), " +
        "or insecure: true for a node run with --insecure",
    );
  }
  s.tls = { ca, cert, key };
  try {
    tls.createSecureContext({
      ca: pemText(ca),
      cert: pemText(cert),
      key: pemText(key),
      minVersion: "TLSv1.3",
    });
  } catch (err) {
    throw new ReplicatorError(
      "invalidArgument",
      `TLS: the CA, certificate or key is not usable PEM: ${(err as Error).message}`,
      { cause: err },
    );
  }
  return s;
}

// What a TLS error says, for a person.
function describeTlsError(err: NodeJS.ErrnoException, address: string): ReplicatorError {
  const code = err.code ?? "";
  if (
    /ALERT_(CERTIFICATE_REQUIRED|UNKNOWN_CA|BAD_CERTIFICATE|CERTIFICATE_UNKNOWN|CERTIFICATE_EXPIRED|CERTIFICATE_REVOKED|UNSUPPORTED_CERTIFICATE|ACCESS_DENIED|DECRYPT_ERROR)/.test(
      code,
    )
  ) {
    return new ReplicatorError(
      "unauthenticated",
      `the node at ${address} refused this client's certificate (${code}): is it of the federation's CA, and valid?`,
      { cause: err },
    );
  }
  if (
    /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/.test(code) ||
    err.message.includes("certificate")
  ) {
    return new ReplicatorError(
      "unauthenticated",
      `refused the certificate of the node at ${address}: ${err.message} (${code}); is ca the federation's CA?`,
      { cause: err },
    );
  }
  if (
    /WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|UNEXPECTED_EOF|RECORD_LAYER/.test(code) ||
    code === "ECONNRESET"
  ) {
    return new ReplicatorError(
      "unauthenticated",
      `TLS handshake with ${address} failed: ${err.message} (${code || "no code"}); a node run with --insecure? (then connect with insecure: true)`,
      { cause: err },
    );
  }
  return new ReplicatorError("unavailable", `cannot connect to ${address}: ${err.message}`, {
    cause: err,
  });
}

// One RPC connection. Once failed it stays failed; the Client opens another.
class Connection {
  private readonly conn: capnp.Conn;
  readonly kv: KeyValue$Client;
  // Rejecters of the calls in flight, failed at once when the connection goes.
  private readonly inFlight = new Set<(e: ReplicatorError) => void>();
  private failure?: ReplicatorError;
  private readonly bootstrapped: Promise<unknown>;

  private constructor(
    private readonly transport: SocketTransport,
    private readonly address: string,
  ) {
    this.conn = new capnp.Conn(transport);
    // An RPC protocol error inside capnp-es ends the connection instead of escaping.
    this.conn.onError = (err?: Error) =>
      transport.fail(new Error(`RPC protocol error: ${err?.message ?? "unknown"}`));
    const node = this.conn.bootstrap(Node) as Node$Client;
    this.bootstrapped = quiet(answerOf(node.client));
    const pipeline = node.keyValue();
    quiet(pipeline.promise());
    this.kv = pipeline.getKeyValue();
    void transport.closed.then((reason) => {
      const abort = transport.abortReason;
      this.failure = new ReplicatorError(
        "unavailable",
        `connection to ${address} lost: ${abort !== undefined ? `the node aborted it: ${abort}` : reason.message}`,
        { cause: reason },
      );
      for (const reject of [...this.inFlight]) reject(this.failure);
      this.inFlight.clear();
    });
  }

  get failed(): boolean {
    return this.failure !== undefined || this.transport.failed;
  }

  close(): void {
    this.transport.fail(new Error("client closed"));
  }

  static async open(s: Settings): Promise<Connection> {
    const socket = await openSocket(s);
    const transport = new SocketTransport(socket);
    const connection = new Connection(transport, s.address);
    // One round trip: the node answered the bootstrap, so it speaks Cap'n Proto to us (a TLS
    // node refuses a plaintext client here, with an Abort that says so).
    try {
      await connection.bounded("connect", s.connectTimeoutMs, () => connection.bootstrapped);
    } catch (err) {
      connection.close();
      const abort = transport.abortReason;
      if (abort !== undefined) {
        // Refused before any call: a TLS node's answer to a plaintext client, say.
        throw new ReplicatorError(
          "unauthenticated",
          `the node at ${s.address} refused the connection: ${abort}`,
          { cause: err },
        );
      }
      throw err;
    }
    return connection;
  }

  // Runs one call: settles with its answer, or rejects on its deadline or the connection's loss.
  bounded<T>(what: string, timeoutMs: number, send: () => Promise<T>): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<T>((resolve, reject) => {
      let done = false;
      const finish = (f: () => void) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.inFlight.delete(fail);
        f();
      };
      const fail = (e: ReplicatorError) => finish(() => reject(e));
      const timer = setTimeout(
        () =>
          fail(
            new ReplicatorError(
              "deadlineExceeded",
              `${what}: no answer from ${this.address} within ${timeoutMs} ms`,
            ),
          ),
        timeoutMs,
      );
      this.inFlight.add(fail);
      let answer: Promise<T>;
      try {
        answer = send();
      } catch (err) {
        fail(classify(what, err));
        return;
      }
      answer.then(
        (v) => finish(() => resolve(v)),
        (err) => fail(this.failure ?? classify(what, err)),
      );
    });
  }
}

// The answer of a bootstrap pipeline client (capnp-es keeps it inside).
function answerOf(client: capnp.Client): Promise<unknown> {
  const answer = (client as unknown as { pipeline?: { answer?: { struct(): Promise<unknown> } } })
    .pipeline?.answer;
  return answer ? answer.struct() : Promise.resolve();
}

// Marks a promise as handled (its failure is reported elsewhere) and returns it.
function quiet<T>(p: Promise<T>): Promise<T> {
  p.catch(() => {});
  return p;
}

// An RPC exception from the node, as an error: "permission denied: ..." is final; anything
// else is the transport or the node failing (Unavailable, as in the C++ client).
function classify(what: string, err: unknown): ReplicatorError {
  if (err instanceof ReplicatorError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const denied = "permission denied: ";
  const at = message.indexOf(denied);
  if (at >= 0) return new ReplicatorError("permissionDenied", message.slice(at), { cause: err });
  return new ReplicatorError("unavailable", `${what} failed: ${message}`, { cause: err });
}

function pemText(pem: Pem): string {
  return typeof pem === "string"
    ? pem
    : Buffer.from(pem.buffer, pem.byteOffset, pem.byteLength).toString("utf8");
}

function openSocket(s: Settings): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    let socket: net.Socket;
    let done = false;
    const finish = (err: ReplicatorError | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.removeListener("error", onError);
      socket.removeListener("close", onClose);
      if (err) {
        socket.destroy();
        reject(err);
      } else {
        resolve(socket);
      }
    };
    const onError = (err: NodeJS.ErrnoException) =>
      finish(
        s.tls
          ? describeTlsError(err, s.address)
          : new ReplicatorError("unavailable", `cannot connect to ${s.address}: ${err.message}`, {
              cause: err,
            }),
      );
    const onClose = () =>
      finish(
        new ReplicatorError(
          s.tls ? "unauthenticated" : "unavailable",
          `the node at ${s.address} closed the connection during ${s.tls ? "the TLS handshake" : "connect"}`,
        ),
      );
    let timer: NodeJS.Timeout | undefined;
    if (!s.tls) {
      socket = net.connect({ host: s.host, port: s.port });
      socket.setNoDelay(true);
      socket.once("connect", () => finish(null));
    } else {
      let secure = false;
      let accepted = false;
      const maybeDone = () => {
        if (secure && accepted) finish(null);
      };
      socket = tls.connect({
        host: s.host,
        port: s.port,
        ca: pemText(s.tls.ca),
        cert: pemText(s.tls.cert),
        key: pemText(s.tls.key),
        minVersion: "TLSv1.3",
        maxVersion: "TLSv1.3",
        // A node's certificate names its peer id, not a host: trust is the CA's signature, and
        // the certificate's role (OU) must be `node`, as the C++ client checks (net/tls.cc).
        checkServerIdentity: (_host, cert) => {
          const ou = cert.subject?.OU;
          if (ou === "node" || (Array.isArray(ou) && ou.length === 1 && ou[0] === "node"))
            return undefined;
          return new Error(
            `the server's certificate "${String(cert.subject?.CN)}" has role ${String(ou)}: only a node (role node) serves`,
          );
        },
      });
      socket.setNoDelay(true);
      socket.once("secureConnect", () => {
        secure = true;
        maybeDone();
      });
      // In TLS 1.3 the server checks our certificate after our side of the handshake is done;
      // it sends one session ticket once it accepted it (net/tls.h). Wait for that, so a
      // refused certificate fails connect, not the first call.
      // The event fires inside OpenSSL's callback: writing from there (as the RPC's first
      // message would) breaks the connection, so go on from the next turn of the loop.
      socket.once("session", () => {
        setImmediate(() => {
          accepted = true;
          maybeDone();
        });
      });
    }
    timer = setTimeout(
      () =>
        finish(
          new ReplicatorError(
            "deadlineExceeded",
            `no connection to ${s.address} within ${s.connectTimeoutMs} ms`,
          ),
        ),
      s.connectTimeoutMs,
    );
    socket.on("error", onError);
    socket.on("close", onClose);
    // Errors after this point are the transport's to report; none may go unheard.
    socket.on("error", () => {});
  });
}

// ---------------------------------------------------------------------------------------------
// The client.

export class Client {
  private connection?: Connection;
  private connecting?: Promise<Connection>;
  private closed = false;

  private constructor(private readonly s: Settings) {}

  // Connects to the node; rejects (ReplicatorError) if it cannot.
  static async connect(options: ConnectOptions): Promise<Client> {
    const client = new Client(settingsOf(options));
    client.connection = await Connection.open(client.s);
    return client;
  }

  get address(): string {
    return this.s.address;
  }

  // Stores key -> value once. Retries as ConnectOptions.putAttempts says, with one request id
  // for every attempt: `ok` on a retry means an earlier attempt was applied.
  async put(key: Bytes, value: Bytes, options: PutOptions = {}): Promise<PutResult> {
    const k = checkKey(key);
    const v = checkValue(value);
    const requestId =
      options.requestId === undefined
        ? randomRequestId()
        : toUInt64("requestId", options.requestId);
    if (requestId === 0n) throw new ReplicatorError("invalidArgument", "request id 0 means none");
    let failure: ReplicatorError = new ReplicatorError("unavailable", "no attempt made");
    let reached = false;
    for (let attempt = 1; attempt <= this.s.putAttempts; attempt++) {
      if (attempt > 1) this.s.onPutRetry?.(failure, attempt);
      let connection: Connection;
      try {
        connection = await this.ensureConnected();
      } catch (err) {
        failure = err as ReplicatorError;
        if (
          failure.code === "closed" ||
          failure.code === "unauthenticated" ||
          failure.code === "invalidArgument"
        )
          break;
        continue;
      }
      try {
        return await this.putOnce(connection, k, v, requestId);
      } catch (err) {
        failure = err as ReplicatorError;
        // A failed call, or a node that could not learn its own decision, leaves the outcome
        // unknown: the same request id asks again. Every other answer is final.
        if (failure.code !== "unavailable" && failure.code !== "deadlineExceeded") throw failure;
        reached = true;
      }
    }
    if (reached) {
      throw new ReplicatorError(
        failure.code,
        `${failure.message} (after ${this.s.putAttempts} attempts with request id ${requestId}: the put may still have been applied; read the key)`,
        { outcomeUnknown: true, cause: failure },
      );
    }
    throw failure;
  }

  private async putOnce(
    c: Connection,
    key: Uint8Array,
    value: Uint8Array,
    requestId: bigint,
  ): Promise<PutResult> {
    const r = await c.bounded("put", this.s.callTimeoutMs, async () => {
      const answer = c.kv.put((p) => {
        p._initKey(key.byteLength).copyBuffer(key);
        p._initValue(value.byteLength).copyBuffer(value);
        p.requestId = requestId;
      });
      return (await answer.promise()).result;
    });
    switch (r.which()) {
      case WirePutResult.OK:
        return { kind: "ok", requestId };
      case WirePutResult.KEY_EXISTS:
        return { kind: "keyExists", existing: r.keyExists.toUint8Array().slice(), requestId };
      case WirePutResult.CONFLICT:
        return { kind: "conflict", message: r.conflict, requestId };
      case WirePutResult.UNAVAILABLE:
        return { kind: "unavailable", message: r.unavailable, requestId };
      case WirePutResult.INVALID_ARGUMENT:
        throw new ReplicatorError("invalidArgument", `put: ${r.invalidArgument}`);
      case WirePutResult.OUTCOME_UNKNOWN:
        throw new ReplicatorError("unavailable", `put: outcome unknown: ${r.outcomeUnknown}`, {
          outcomeUnknown: true,
        });
      default:
        throw new ReplicatorError(
          "internal",
          `the node answered put with an unknown result kind ${String(r.which())}`,
        );
    }
  }

  // Reads key. A get changes nothing, so one lost with its connection is asked once more on a
  // new connection.
  async get(key: Bytes, options: GetOptions = {}): Promise<GetResult> {
    const k = checkKey(key);
    const level = options.consistency ?? "local";
    if (level !== "local" && level !== "linearizable") {
      throw new ReplicatorError(
        "invalidArgument",
        `consistency must be "local" or "linearizable", not ${String(level)}`,
      );
    }
    let failure: ReplicatorError = new ReplicatorError("unavailable", "no attempt made");
    for (let attempt = 1; attempt <= 2; attempt++) {
      const connection = await this.ensureConnected();
      try {
        return await this.getOnce(connection, k, level);
      } catch (err) {
        failure = err as ReplicatorError;
        if (!connection.failed) break;
      }
    }
    throw failure;
  }

  private async getOnce(
    c: Connection,
    key: Uint8Array,
    level: ConsistencyLevel,
  ): Promise<GetResult> {
    const r = await c.bounded("get", this.s.callTimeoutMs, async () => {
      const answer = c.kv.get((p) => {
        p._initKey(key.byteLength).copyBuffer(key);
        p.consistency =
          level === "linearizable" ? WireConsistency.LINEARIZABLE : WireConsistency.LOCAL;
      });
      return (await answer.promise()).result;
    });
    switch (r.which()) {
      case WireGetResult.FOUND:
        return { kind: "found", value: r.found.toUint8Array().slice() };
      case WireGetResult.NOT_FOUND:
        return { kind: "notFound" };
      case WireGetResult.UNAVAILABLE:
        return { kind: "unavailable", message: r.unavailable };
      case WireGetResult.INVALID_ARGUMENT:
        throw new ReplicatorError("invalidArgument", `get: ${r.invalidArgument}`);
      default:
        throw new ReplicatorError(
          "internal",
          `the node answered get with an unknown result kind ${String(r.which())}`,
        );
    }
  }

  // The node's status (`replicator status`).
  async status(): Promise<NodeStatus> {
    const c = await this.ensureConnected();
    const s = await c.bounded(
      "status",
      this.s.callTimeoutMs,
      async () => (await c.kv.status().promise()).status,
    );
    return statusFromWire(s);
  }

  // Closes the connection; calls in flight reject, later ones reject with code "closed".
  close(): void {
    this.closed = true;
    this.connection?.close();
  }

  // The current connection, or a new one if it failed (the node restarted, say); concurrent
  // callers share one reconnect.
  private async ensureConnected(): Promise<Connection> {
    if (this.closed) throw new ReplicatorError("closed", "the client was closed");
    if (this.connection && !this.connection.failed) return this.connection;
    if (!this.connecting) {
      this.connecting = Connection.open(this.s).finally(() => (this.connecting = undefined));
    }
    const c = await this.connecting;
    if (this.closed) {
      c.close();
      throw new ReplicatorError("closed", "the client was closed");
    }
    this.connection = c;
    return c;
  }
}

// Connects to one node: `connect({address, ca, cert, key})`, `connect({address, certsDir,
// user})`, or `connect({address, insecure: true})`.
export function connect(options: ConnectOptions): Promise<Client> {
  return Client.connect(options);
}

// ---------------------------------------------------------------------------------------------
// Wire -> plain objects.

function num(v: bigint): number {
  return Number(v);
}

function peerFromWire(p: WirePeerInfo): PeerInfo {
  let state: PeerState = "unknown";
  switch (p.state) {
    case WirePeerState.VOTER:
      state = "voter";
      break;
    case WirePeerState.CATCHING_UP:
      state = "catchingUp";
      break;
    case WirePeerState.DOWN:
      state = "down";
      break;
  }
  return { id: p.id, cluster: p.cluster, address: p.address, state, stamp: p.stamp };
}

function configurationFromWire(c: WireConfiguration): Configuration {
  const voters: string[] = [];
  for (let i = 0; i < c.voters.length; i++) voters.push(c.voters.get(i));
  return {
    cluster: c.cluster,
    epoch: num(c.epoch),
    voters,
    generation: num(c.generation),
    removed: num(c.removed),
  };
}

function statusFromWire(s: WireNodeStatus): NodeStatus {
  const members: PeerInfo[] = [];
  for (let i = 0; i < s.members.length; i++) members.push(peerFromWire(s.members.get(i)));
  const configurations: Configuration[] = [];
  for (let i = 0; i < s.configurations.length; i++)
    configurations.push(configurationFromWire(s.configurations.get(i)));
  return {
    self: peerFromWire(s.self),
    members,
    configurations,
    committedKeys: num(s.committedKeys),
    reservations: num(s.reservations),
    putsOk: num(s.putsOk),
    putsKeyExists: num(s.putsKeyExists),
    putsConflict: num(s.putsConflict),
    putsUnavailable: num(s.putsUnavailable),
    putsInvalid: num(s.putsInvalid),
    putsOutcomeUnknown: num(s.putsOutcomeUnknown),
    gets: num(s.gets),
    uptimeMs: num(s.uptimeMs),
    safetyViolations: num(s.safetyViolations),
    storageWrites: num(s.storageWrites),
    storageBatches: num(s.storageBatches),
    storageSyncs: num(s.storageSyncs),
    putRetries: num(s.putRetries),
    putsJoined: num(s.putsJoined),
    catchupRounds: num(s.catchupRounds),
    catchupKeysPulled: num(s.catchupKeysPulled),
    storageMutations: num(s.storageMutations),
    storageWriteErrors: num(s.storageWriteErrors),
    storageWritesRefused: num(s.storageWritesRefused),
    configEpoch: num(s.configEpoch),
    configChanges: num(s.configChanges),
    staleEpochRefusals: num(s.staleEpochRefusals),
    federationGeneration: num(s.federationGeneration),
    federationSettled: s.federationSettled,
    generationRefusals: num(s.generationRefusals),
    insecure: s.insecure,
  };
}
