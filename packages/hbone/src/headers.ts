import { randomBytes } from "node:crypto";
import { isIP } from "node:net";
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

/** Baggage entries as ztunnel sends them (`k8s.namespace.name`, `service.name`, ...). */
export type Baggage = Record<string, string>;

const BAGGAGE_KEY = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** `k=v,k=v` with empty values omitted (ztunnel `baggage.rs`); values are percent-encoded as W3C baggage asks. */
export function formatBaggage(entries: Baggage): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(entries)) {
    if (v === "") continue;
    if (!BAGGAGE_KEY.test(k))
      throw new HboneError(
        "ERR_HBONE_BAD_HEADER",
        `baggage key ${JSON.stringify(k)} is not a token`,
      );
    parts.push(`${k}=${encodeURIComponent(v)}`);
  }
  return parts.join(",");
}

/** Parses `k=v;prop,k=v` into a record (properties dropped, values percent-decoded); bad members are skipped. */
export function parseBaggage(value: string | undefined): Baggage {
  const out: Baggage = {};
  if (!value) return out;
  for (const member of value.split(",")) {
    const kv = member.split(";")[0] ?? "";
    const eq = kv.indexOf("=");
    if (eq <= 0) continue;
    const k = kv.slice(0, eq).trim();
    const raw = kv.slice(eq + 1).trim();
    if (!BAGGAGE_KEY.test(k)) continue;
    try {
      out[k] = decodeURIComponent(raw);
    } catch {
      out[k] = raw;
    }
  }
  return out;
}

/** A W3C `traceparent`: version 00, 32-hex trace id, 16-hex parent id, flags. */
export interface TraceParent {
  traceId: string;
  parentId: string;
  flags: number;
}

/** A fresh random traceparent, as ztunnel makes one per outbound connection (flags 00). */
export function newTraceParent(random: (n: number) => Uint8Array = randomBytes): TraceParent {
  const hex = (n: number): string => {
    let s = Buffer.from(random(n)).toString("hex");
    if (/^0+$/.test(s)) s = `${s.slice(0, -1)}1`;
    return s;
  };
  return { traceId: hex(16), parentId: hex(8), flags: 0 };
}

export function formatTraceParent(tp: TraceParent): string {
  return `00-${tp.traceId}-${tp.parentId}-${tp.flags.toString(16).padStart(2, "0")}`;
}

/** Parses a traceparent (length 55, version 00, non-zero ids); anything else is `undefined`, as ztunnel ignores it. */
export function parseTraceParent(value: string | undefined): TraceParent | undefined {
  if (value?.length !== 55) return undefined;
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(value);
  if (!m?.[1] || !m[2] || !m[3]) return undefined;
  if (/^0+$/.test(m[1]) || /^0+$/.test(m[2])) return undefined;
  return { traceId: m[1], parentId: m[2], flags: Number.parseInt(m[3], 16) };
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
  return isIP(host) !== 0;
}
