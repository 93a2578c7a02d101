// Symbol.for, not Symbol(): two installed copies of this package must recognise each other's errors.
const kBrand = Symbol.for("@ambientkit/inpod.InpodError");

/** Stable codes of every failure @ambientkit/inpod reports; add new ones, never rename. */
export type InpodErrorCode =
  /** Not Linux, or the FFI library (koffi) or libc could not be loaded. */
  | "ERR_INPOD_UNSUPPORTED"
  /** A network namespace could not be opened or entered, or an fd is not a network namespace. */
  | "ERR_INPOD_NETNS"
  /** A socket call (socket, setsockopt, bind, listen, connect) failed. */
  | "ERR_INPOD_SOCKET"
  /** SO_ORIGINAL_DST could not be read: the connection was not redirected by netfilter. */
  | "ERR_INPOD_ORIGINAL_DST"
  /** A ZDS request was malformed or not allowed now; the node agent gets it in the Ack. */
  | "ERR_INPOD_ZDS_PROTOCOL"
  /** The ZDS connection to the node agent failed or ended. */
  | "ERR_INPOD_ZDS_CONNECTION"
  /** The workload handler refused a workload (its error is the cause). */
  | "ERR_INPOD_ZDS_HANDLER"
  /** The client was closed. */
  | "ERR_INPOD_CLOSED"
  /**
   * `@ambientkit/inpod/testing` cannot do what was asked: no root or a tool missing, a command that
   * builds the pods failed, or the fake node agent did not answer.
   */
  | "ERR_INPOD_TESTING";

/** The one error class of @ambientkit/inpod; `code` is stable, `cause` keeps the underlying error. */
export class InpodError extends Error {
  override readonly name = "InpodError";
  readonly code: InpodErrorCode;
  constructor(code: InpodErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    Object.defineProperty(this, kBrand, { value: true });
  }
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === "object" && value !== null && kBrand in value;
  }
}
