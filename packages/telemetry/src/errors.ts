// Symbol.for, not Symbol(): two installed copies of this package must recognise each other's errors.
const kBrand = Symbol.for("@ambientkit/telemetry.TelemetryError");

/**
 * Every failure @ambientkit/telemetry reports. Codes are stable API; add new ones, never rename.
 */
export type TelemetryErrorCode =
  // W3C / Istio baggage
  | "ERR_TELEMETRY_BAGGAGE_MALFORMED"
  | "ERR_TELEMETRY_BAGGAGE_VALUE"
  | "ERR_TELEMETRY_BAGGAGE_TOO_LONG"
  // W3C traceparent
  | "ERR_TELEMETRY_TRACEPARENT_MALFORMED"
  | "ERR_TELEMETRY_TRACEPARENT_VERSION"
  | "ERR_TELEMETRY_TRACEPARENT_ZERO_ID"
  // label model
  | "ERR_TELEMETRY_LABEL"
  // randomness unavailable (no globalThis.crypto.getRandomValues)
  | "ERR_TELEMETRY_NO_RANDOM";

/** The one error class of @ambientkit/telemetry. */
export class TelemetryError extends Error {
  override readonly name = "TelemetryError";
  readonly code: TelemetryErrorCode;
  constructor(code: TelemetryErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    Object.defineProperty(this, kBrand, { value: true });
  }
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === "object" && value !== null && kBrand in value;
  }
}

/** A result returned by the non-throwing `try*` functions (for the hot path). */
export type TelemetryResult<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: TelemetryError };
