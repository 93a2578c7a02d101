// Symbol.for, not Symbol(): two installed copies of this package must recognise each other's errors.
const kBrand = Symbol.for("@ambientkit/hbone.HboneError");

/** Every failure @ambientkit/hbone reports. Codes are stable API; add new ones, never rename. */
export type HboneErrorCode =
  /** `:authority` is not `ip:port`, `[v6]:port` or `host:port`. */
  | "ERR_HBONE_BAD_AUTHORITY"
  /** A header (baggage, forwarded, traceparent) could not be built or parsed. */
  | "ERR_HBONE_BAD_HEADER"
  /** Options given to a client, pool or server are invalid. */
  | "ERR_HBONE_CONFIG"
  /** The peer answered the CONNECT with a status other than 200; `status` holds it. */
  | "ERR_HBONE_STATUS"
  /** TCP connect to the HBONE peer failed (refused, unreachable). */
  | "ERR_HBONE_CONNECT_FAILED"
  /** A connect, TLS handshake or CONNECT response did not complete in time. */
  | "ERR_HBONE_TIMEOUT"
  /** The TLS handshake failed (untrusted chain, protocol version, alert from the peer). */
  | "ERR_HBONE_TLS"
  /** The peer's certificate chains but does not carry an expected SPIFFE identity / trust domain. */
  | "ERR_HBONE_PEER_IDENTITY"
  /** The HTTP/2 stream was reset with an error code (not NO_ERROR/CANCEL); `rstCode` holds it. */
  | "ERR_HBONE_STREAM_RESET"
  /** The HTTP/2 session failed (protocol error, GOAWAY with error, PING timeout, socket error). */
  | "ERR_HBONE_SESSION"
  /** The peer stopped answering PINGs within the timeout. */
  | "ERR_HBONE_PING_TIMEOUT"
  /** The client, pool or server was closed, or the connection is draining (GOAWAY). */
  | "ERR_HBONE_CLOSED"
  /** A PROXY protocol v2 header is malformed or cannot be encoded. */
  | "ERR_HBONE_PROXY_PROTOCOL";

/**
 * The one error class of @ambientkit/hbone. `status` is set for ERR_HBONE_STATUS (the CONNECT
 * response status), `rstCode` for stream resets.
 */
export class HboneError extends Error {
  override readonly name = "HboneError";
  readonly code: HboneErrorCode;
  readonly status: number | undefined;
  readonly rstCode: number | undefined;
  constructor(
    code: HboneErrorCode,
    message: string,
    options?: ErrorOptions & { status?: number; rstCode?: number },
  ) {
    super(message, options);
    this.code = code;
    this.status = options?.status;
    this.rstCode = options?.rstCode;
    Object.defineProperty(this, kBrand, { value: true });
  }
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === "object" && value !== null && kBrand in value;
  }
}
