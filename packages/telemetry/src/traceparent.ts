/**
 * W3C Trace Context `traceparent`: parse, format and generate. ztunnel sends a fresh random
 * `00-<trace-id>-<parent-id>-00` on every outbound HBONE CONNECT (flags 00: not sampled) and uses
 * the trace id as a connection id; inbound, it requires length 55. Universal: randomness comes
 * from `globalThis.crypto.getRandomValues`.
 *
 * Sources: W3C Trace Context §3.2; istio/ztunnel `src/proxy.rs` (`TraceParent`).
 */
import { TelemetryError, type TelemetryResult } from "./errors.js";

/** A parsed `traceparent`. Ids are lowercase hex. */
export interface TraceParent {
  /** 0–254 (`ff` is invalid). */
  readonly version: number;
  /** 32 lowercase hex digits, not all zero. */
  readonly traceId: string;
  /** 16 lowercase hex digits, not all zero. */
  readonly parentId: string;
  /** The trace-flags byte (bit 0 = sampled). */
  readonly flags: number;
}

/** Length of a version-00 traceparent. */
export const TRACEPARENT_LENGTH = 55;

const HEX = "0123456789abcdef";
const HEX_BYTE: readonly string[] = Array.from(
  { length: 256 },
  (_, i) => `${HEX[i >> 4]}${HEX[i & 15]}`,
);

function isLowerHex(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return false;
  }
  return true;
}
function allZero(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (s.charCodeAt(i) !== 0x30) return false;
  return true;
}

function fail(
  code:
    | "ERR_TELEMETRY_TRACEPARENT_MALFORMED"
    | "ERR_TELEMETRY_TRACEPARENT_VERSION"
    | "ERR_TELEMETRY_TRACEPARENT_ZERO_ID",
  msg: string,
): TelemetryResult<TraceParent> {
  return {
    ok: false,
    error: new TelemetryError(
      code,
      `${msg}; expected "00-<32 lowercase hex>-<16 lowercase hex>-<2 hex>" (W3C Trace Context)`,
    ),
  };
}

/**
 * Parses a `traceparent` per W3C Trace Context: version-00 headers are exactly 55 characters; a
 * higher version may carry more fields after a `-` (ignored); version `ff`, uppercase hex and
 * all-zero ids are rejected. Never throws (for the hot path): see {@link parseTraceparent}.
 */
export function tryParseTraceparent(header: string | undefined): TelemetryResult<TraceParent> {
  if (header === undefined)
    return fail("ERR_TELEMETRY_TRACEPARENT_MALFORMED", "traceparent is missing");
  const s = header.trim();
  if (s.length < TRACEPARENT_LENGTH) {
    return fail(
      "ERR_TELEMETRY_TRACEPARENT_MALFORMED",
      `traceparent malformed length was ${s.length}`,
    );
  }
  if (s.charCodeAt(2) !== 0x2d || s.charCodeAt(35) !== 0x2d || s.charCodeAt(52) !== 0x2d) {
    return fail(
      "ERR_TELEMETRY_TRACEPARENT_MALFORMED",
      "traceparent fields are not separated by '-'",
    );
  }
  if (!isLowerHex(s, 0, 2)) {
    return fail(
      "ERR_TELEMETRY_TRACEPARENT_MALFORMED",
      "traceparent version is not 2 lowercase hex digits",
    );
  }
  const version = Number.parseInt(s.slice(0, 2), 16);
  if (version === 0xff)
    return fail("ERR_TELEMETRY_TRACEPARENT_VERSION", "traceparent version ff is invalid");
  if (
    s.length > TRACEPARENT_LENGTH &&
    (version === 0 || s.charCodeAt(TRACEPARENT_LENGTH) !== 0x2d)
  ) {
    return fail(
      "ERR_TELEMETRY_TRACEPARENT_MALFORMED",
      `traceparent malformed length was ${s.length}`,
    );
  }
  if (!isLowerHex(s, 3, 35) || !isLowerHex(s, 36, 52) || !isLowerHex(s, 53, 55)) {
    return fail(
      "ERR_TELEMETRY_TRACEPARENT_MALFORMED",
      "traceparent has a non-lowercase-hex character",
    );
  }
  if (allZero(s, 3, 35))
    return fail("ERR_TELEMETRY_TRACEPARENT_ZERO_ID", "traceparent trace-id is all zeros");
  if (allZero(s, 36, 52))
    return fail("ERR_TELEMETRY_TRACEPARENT_ZERO_ID", "traceparent parent-id is all zeros");
  return {
    ok: true,
    value: {
      version,
      traceId: s.slice(3, 35),
      parentId: s.slice(36, 52),
      flags: Number.parseInt(s.slice(53, 55), 16),
    },
  };
}

/** Parses a `traceparent`; throws `TelemetryError` on malformed input. */
export function parseTraceparent(header: string): TraceParent {
  const r = tryParseTraceparent(header);
  if (!r.ok) throw r.error;
  return r.value;
}

/** Formats as a version-00 header (`00-<trace-id>-<parent-id>-<flags>`). */
export function formatTraceparent(tp: TraceParent): string {
  return `00-${tp.traceId}-${tp.parentId}-${HEX_BYTE[tp.flags & 0xff]}`;
}

interface RandomSource {
  getRandomValues<T extends ArrayBufferView>(array: T): T;
}

/** A source of random bytes (defaults to `globalThis.crypto`). */
export type RandomBytes = (out: Uint8Array) => void;

// Random bytes are drawn in blocks so generating an id is a few array reads, not a syscall.
const POOL_SIZE = 4096;
let pool: Uint8Array | undefined;
let poolPos = POOL_SIZE;

function takeFromPool(n: number): Uint8Array {
  const c = (globalThis as { crypto?: RandomSource }).crypto;
  if (c === undefined || typeof c.getRandomValues !== "function") {
    throw new TelemetryError(
      "ERR_TELEMETRY_NO_RANDOM",
      "globalThis.crypto.getRandomValues is not available; pass options.random",
    );
  }
  if (pool === undefined) pool = new Uint8Array(POOL_SIZE);
  if (poolPos + n > POOL_SIZE) {
    c.getRandomValues(pool);
    poolPos = 0;
  }
  poolPos += n;
  return pool;
}

function hexOf(bytes: Uint8Array, from: number, to: number): string {
  let s = "";
  for (let i = from; i < to; i++) s += HEX_BYTE[bytes[i] as number];
  return s;
}

/** Options for {@link generateTraceparent}. */
export interface GenerateTraceparentOptions {
  /** Keep this trace id (a child span of an existing trace); default: a new random one. */
  traceId?: string;
  /** Trace flags; default 0 (not sampled), as ztunnel sends. */
  flags?: number;
  /** Random source; default `globalThis.crypto.getRandomValues`. */
  random?: RandomBytes;
}

/**
 * A new `traceparent` with random ids (re-drawn in the astronomically rare all-zero case).
 * Throws `ERR_TELEMETRY_NO_RANDOM` only where the runtime has no WebCrypto.
 */
export function generateTraceparent(options?: GenerateTraceparentOptions): TraceParent {
  const traceIdIn = options?.traceId;
  if (
    traceIdIn !== undefined &&
    (traceIdIn.length !== 32 || !isLowerHex(traceIdIn, 0, 32) || allZero(traceIdIn, 0, 32))
  ) {
    throw new TelemetryError(
      "ERR_TELEMETRY_TRACEPARENT_MALFORMED",
      `trace id "${traceIdIn}" is not 32 lowercase hex digits (not all zero)`,
    );
  }
  const flags = (options?.flags ?? 0) & 0xff;
  const random = options?.random;
  for (;;) {
    let bytes: Uint8Array;
    let off: number;
    if (random === undefined) {
      // Read straight from the pool (no copy); each byte is handed out once.
      bytes = takeFromPool(24);
      off = poolPos - 24;
    } else {
      bytes = new Uint8Array(24);
      random(bytes);
      off = 0;
    }
    const traceId = traceIdIn ?? hexOf(bytes, off, off + 16);
    const parentId = hexOf(bytes, off + 16, off + 24);
    if (!allZero(traceId, 0, 32) && !allZero(parentId, 0, 16)) {
      return { version: 0, traceId, parentId, flags };
    }
  }
}

/** A fresh version-00 `traceparent` header string, as ztunnel puts on an outbound CONNECT. */
export function newTraceparentHeader(options?: GenerateTraceparentOptions): string {
  return formatTraceparent(generateTraceparent(options));
}

/** Whether the sampled flag (bit 0) is set. */
export function isSampled(tp: TraceParent): boolean {
  return (tp.flags & 1) === 1;
}
