// The one error type the client rejects with. `code` says how a caller may react, as the C++
// client's absl::Status codes do (include/replicator/client.h).

export type ErrorCode =
  // Bad input (an empty or oversized key, an oversized value, a request id of 0, malformed
  // options), found by the client or the node. Do not retry.
  | "invalidArgument"
  // No connection, or the connection failed, or the node failed the call, after every retry
  // the client makes. Retry later, or ask another node. For a put: see `outcomeUnknown`.
  | "unavailable"
  // No answer within callTimeoutMs (connectTimeoutMs for a connect), after every retry.
  | "deadlineExceeded"
  // The node refused the call for this certificate's role (a `read` client's put). Final.
  | "permissionDenied"
  // The TLS handshake failed: the node refused this certificate (another CA's, expired), the
  // node's certificate is not of the CA given, or one side does not speak TLS. Final.
  | "unauthenticated"
  // The client was closed.
  | "closed"
  // The node answered something this client does not know (a newer schema?).
  | "internal";

export class ReplicatorError extends Error {
  readonly code: ErrorCode;
  // A put only: true when some attempt reached the node and its outcome stayed unknown, so
  // the put may still have been applied. Read the key (or put again with the same requestId)
  // before choosing another key.
  readonly outcomeUnknown: boolean;

  constructor(
    code: ErrorCode,
    message: string,
    options: { outcomeUnknown?: boolean; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ReplicatorError";
    this.code = code;
    this.outcomeUnknown = options.outcomeUnknown ?? false;
  }
}
