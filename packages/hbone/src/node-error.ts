// The one place that turns Node's TLS / net / HTTP/2 failures into HboneError.
import { constants as h2c } from "node:http2";
import { HboneError, type HboneErrorCode } from "./errors.js";

/** RST_STREAM / GOAWAY error codes (RFC 9113 §7). */
export const RST_NO_ERROR: number = h2c.NGHTTP2_NO_ERROR;
export const RST_PROTOCOL_ERROR: number = h2c.NGHTTP2_PROTOCOL_ERROR;
export const RST_INTERNAL_ERROR: number = h2c.NGHTTP2_INTERNAL_ERROR;
export const RST_REFUSED_STREAM: number = h2c.NGHTTP2_REFUSED_STREAM;
export const RST_CANCEL: number = h2c.NGHTTP2_CANCEL;
export const RST_CONNECT_ERROR: number = h2c.NGHTTP2_CONNECT_ERROR;
export const RST_ENHANCE_YOUR_CALM: number = h2c.NGHTTP2_ENHANCE_YOUR_CALM;

const RST_NAMES: Record<number, string> = {
  0: "NO_ERROR",
  1: "PROTOCOL_ERROR",
  2: "INTERNAL_ERROR",
  3: "FLOW_CONTROL_ERROR",
  4: "SETTINGS_TIMEOUT",
  5: "STREAM_CLOSED",
  6: "FRAME_SIZE_ERROR",
  7: "REFUSED_STREAM",
  8: "CANCEL",
  9: "COMPRESSION_ERROR",
  10: "CONNECT_ERROR",
  11: "ENHANCE_YOUR_CALM",
  12: "INADEQUATE_SECURITY",
  13: "HTTP_1_1_REQUIRED",
};

export function rstCodeName(code: number): string {
  return RST_NAMES[code] ?? `0x${code.toString(16)}`;
}

/** ztunnel treats RST_STREAM(NO_ERROR) and RST_STREAM(CANCEL) as a clean end of stream. */
export function isCleanReset(code: number | undefined): boolean {
  return code === undefined || code === RST_NO_ERROR || code === RST_CANCEL;
}

/** A stream reset by the peer with a non-clean code. */
export function resetError(code: number, where: string): HboneError {
  return new HboneError(
    "ERR_HBONE_STREAM_RESET",
    `${where}: the peer reset the stream with ${rstCodeName(code)}`,
    { rstCode: code },
  );
}

const NET_CODES = new Set([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EADDRNOTAVAIL",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EADDRINUSE",
]);

/**
 * Maps any error from node:net, node:tls or node:http2 to an HboneError with a code and an operator
 * hint. HboneErrors pass through unchanged.
 */
export function toHboneError(error: unknown, where: string): HboneError {
  if (error instanceof HboneError) return error;
  const e = error as { code?: unknown; message?: unknown } | undefined;
  const code = typeof e?.code === "string" ? e.code : "";
  const message = typeof e?.message === "string" ? e.message : String(error);
  const make = (c: HboneErrorCode, hint: string): HboneError =>
    new HboneError(
      c,
      `${where}: ${message}${code && !message.includes(code) ? ` (${code})` : ""}; ${hint}`,
      { cause: error },
    );
  if (code === "ERR_IDENTITY_TLS_PEER") {
    // @ambientkit/identity's TLS checks (when its helpers supply the TLS options)
    return new HboneError("ERR_HBONE_PEER_IDENTITY", `${where}: ${message}`, { cause: error });
  }
  if (NET_CODES.has(code)) {
    return make(
      "ERR_HBONE_CONNECT_FAILED",
      "check the address and that an HBONE listener (port 15008) is reachable",
    );
  }
  if (code === "ETIMEDOUT") {
    return make(
      "ERR_HBONE_TIMEOUT",
      "connection timed out, maybe a NetworkPolicy is blocking HBONE port 15008",
    );
  }
  if (code === "ECONNRESET" || code === "EPIPE" || code === "ERR_STREAM_PREMATURE_CLOSE") {
    return make(
      "ERR_HBONE_SESSION",
      "the peer closed the connection; check its logs (it may have rejected our certificate)",
    );
  }
  if (
    code.startsWith("ERR_SSL_") ||
    code.startsWith("ERR_TLS_") ||
    /^(UNABLE_TO_|CERT_|SELF_SIGNED|DEPTH_ZERO|UNABLE_TO_VERIFY)/.test(code) ||
    /SSL routines|alert/i.test(message)
  ) {
    return make(
      "ERR_HBONE_TLS",
      "check that both sides use certificates from the same mesh CA and TLS 1.3",
    );
  }
  if (code === "ERR_HTTP2_STREAM_ERROR") {
    const m = /NGHTTP2_([A-Z_0-9]+)/.exec(message);
    const name = m?.[1] ?? "";
    const num = Object.entries(RST_NAMES).find(([, n]) => n === name)?.[0];
    return new HboneError(
      "ERR_HBONE_STREAM_RESET",
      `${where}: the stream was reset with ${name || "an error"}`,
      {
        cause: error,
        ...(num !== undefined ? { rstCode: Number(num) } : {}),
      },
    );
  }
  if (
    code === "ERR_HTTP2_GOAWAY_SESSION" ||
    code === "ERR_HTTP2_INVALID_SESSION" ||
    code === "ERR_HTTP2_SESSION_ERROR"
  ) {
    return make("ERR_HBONE_CLOSED", "the HTTP/2 connection is going away; open a new one");
  }
  if (code.startsWith("ERR_HTTP2_")) {
    return make("ERR_HBONE_SESSION", "HTTP/2 protocol failure between the peers");
  }
  return make("ERR_HBONE_SESSION", "unexpected failure on the HBONE connection");
}
