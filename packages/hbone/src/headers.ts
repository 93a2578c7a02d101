import { randomBytes } from "node:crypto";
import { parseIp } from "@ambientkit/xds-types/ip";
import { formatSocketAddress } from "./authority.js";
import { HboneError } from "./errors.js";

/** Header names ztunnel uses on the CONNECT (constants in ztunnel `src/proxy.rs`). */
export const HEADER_BAGGAGE = "baggage";
export const HEADER_FORWARDED = "forwarded";
export const HEADER_TRACEPARENT = "traceparent";
/** Sent only on the inner CONNECT of double HBONE, carrying the source network. */
export const HEADER_X_FORWARDED_NETWORK = "x-forwarded-network";

/** The parts of `forwarded` ztunnel sends: `for="<src ip:port>"[;host=<service hostname>]`. */
export interface Forwarded {
  /** Source address, `ip:port` or `[v6]:port` (or a bare IP). */
  for?: string;
  /** The intended Service hostname. */
  host?: string;
}

/** Builds `for="10.0.0.1:4000";host=svc.ns.svc.cluster.local` from a source address and service. */
export function formatForwarded(
  source: { host: string; port: number } | string,
  host?: string,
): string {
  const forValue =
    typeof source === "string" ? source : formatSocketAddress(source.host, source.port);
  if (/["\r\n;,]/.test(forValue)) {
    throw new HboneError(
      "ERR_HBONE_BAD_HEADER",
      `forwarded for=${forValue} holds a forbidden character`,
    );
  }
  let out = `for="${forValue}"`;
  if (host !== undefined && host !== "") {
    if (!/^[A-Za-z0-9._:-]+$/.test(host)) {
      throw new HboneError("ERR_HBONE_BAD_HEADER", `forwarded host=${host} is not a hostname`);
    }
    out += `;host=${host}`;
  }
  return out;
}

/**
 * Parses the first element of a `forwarded` header (RFC 7239); unknown parameters are ignored.
 * Returns an empty object when nothing usable is present (ztunnel treats it as absent).
 */
export function parseForwarded(value: string | undefined): Forwarded {
  const out: Forwarded = {};
  if (!value) return out;
  const first = value.split(",")[0] ?? "";
  for (const pair of first.split(";")) {
    const eq = pair.indexOf("=");
    if (eq < 0) continue;
    const key = pair.slice(0, eq).trim().toLowerCase();
    let v = pair.slice(eq + 1).trim();
    if (v.startsWith('"') && v.endsWith('"') && v.length >= 2) v = v.slice(1, -1);
    if (key === "for") out.for = v;
    else if (key === "host") out.host = v;
  }
  return out;
}

/**
 * A fresh random W3C traceparent header (`00-<trace id>-<parent id>-00`), as ztunnel sends one per
 * outbound connection. Only generated here: parsing and formatting trace context is
 * @ambientkit/telemetry's (`parseTraceparent`, `formatTraceparent`); this package carries the
 * header as a string and does not depend on telemetry.
 */
export function randomTraceparentHeader(): string {
  return `00-${randomBytes(16).toString("hex")}-${randomBytes(8).toString("hex")}-00`;
}

/** Validates a header name/value an embedder adds; CR/LF and pseudo-headers are refused. */
export function checkExtraHeader(name: string, value: string): void {
  if (!/^[!#$%&'*+\-.^_`|~0-9a-z]+$/.test(name)) {
    throw new HboneError(
      "ERR_HBONE_BAD_HEADER",
      `header name ${JSON.stringify(name)} must be a lowercase token`,
    );
  }
  if (/[\r\n\0]/.test(value)) {
    throw new HboneError("ERR_HBONE_BAD_HEADER", `header ${name} holds CR, LF or NUL`);
  }
}

export function isIpLiteral(host: string): boolean {
  return parseIp(host) !== undefined;
}
