/**
 * ztunnel's connection access log: the record written when a connection completes ("connection
 * complete", INFO; ERROR with an `error` field on failure) and when a connection is denied before
 * it is set up ("connection failed", WARN). Universal: imports nothing from `node:`.
 *
 * Sources: istio/ztunnel `src/proxy/metrics.rs` (`access_log!`, `log_early_deny`,
 * `ConnectionResult::record_internal`), `src/telemetry.rs` (`IstioFormat`, `IstioJsonFormat`).
 * ztunnel calls the format unstable; field names and order here follow its code.
 */
import type { AccessLogContext, Reporter } from "./labels.js";

/** The message of the record ztunnel writes when a connection ends. */
export const ACCESS_LOG_MESSAGE = "connection complete";
/** The message of an early policy denial. */
export const ACCESS_LOG_DENY_MESSAGE = "connection failed";
/** ztunnel's log target/scope for access logs. */
export const ACCESS_LOG_SCOPE = "access";

/**
 * A structured logger in pino's calling convention (`logger.info(fields, message)`); pino, a pino
 * child, or any object with these methods works. `error` falls back to `warn` when absent.
 */
export interface AccessLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error?(fields: object, message: string): void;
  /** With `debug`, "connection opened" is written at DEBUG when a connection opens (as ztunnel). */
  debug?(fields: object, message: string): void;
  /** pino's level check; when present, the DEBUG record is only built if debug is enabled. */
  isLevelEnabled?(level: string): boolean;
}

/** The message ztunnel writes at DEBUG when a connection opens. */
export const ACCESS_LOG_OPEN_MESSAGE = "connection opened";

/** The "connection opened" record: the completion record's fields up to `direction`. */
export type ConnectionOpenedRecord = Omit<
  ConnectionAccessRecord,
  "bytes_sent" | "bytes_recv" | "duration" | "error"
>;

/** Builds the "connection opened" record (ztunnel's DEBUG event in `ConnectionResultBuilder::build`). */
export function connectionOpenedRecord(
  ctx: AccessLogContext,
  addrs: ConnectionAddresses,
): ConnectionOpenedRecord {
  const r = { "src.addr": addrs.src } as ConnectionOpenedRecord;
  if (ctx.srcWorkload !== undefined) r["src.workload"] = ctx.srcWorkload;
  if (ctx.srcNamespace !== undefined) r["src.namespace"] = ctx.srcNamespace;
  if (ctx.srcIdentity !== undefined) r["src.identity"] = ctx.srcIdentity;
  if (ctx.srcCluster !== undefined) r["src.cluster"] = ctx.srcCluster;
  r["dst.addr"] = addrs.dst;
  if (addrs.hboneAddr !== undefined) r["dst.hbone_addr"] = addrs.hboneAddr;
  if (ctx.dstService !== undefined) r["dst.service"] = ctx.dstService;
  if (ctx.dstWorkload !== undefined) r["dst.workload"] = ctx.dstWorkload;
  if (ctx.dstNamespace !== undefined) r["dst.namespace"] = ctx.dstNamespace;
  if (ctx.dstIdentity !== undefined) r["dst.identity"] = ctx.dstIdentity;
  if (ctx.dstCluster !== undefined) r["dst.cluster"] = ctx.dstCluster;
  r.direction = ctx.direction;
  return r;
}

/**
 * One "connection complete" record, keys in ztunnel's order. Absent values are omitted (not
 * `unknown`); `src.identity`/`dst.identity` only appear on mTLS connections. `bytes_sent` and
 * `bytes_recv` are from the reporter's own point of view; `duration` is `"<n>ms"`.
 */
export interface ConnectionAccessRecord {
  "src.addr": string;
  "src.workload"?: string;
  "src.namespace"?: string;
  "src.identity"?: string;
  "src.cluster"?: string;
  "dst.addr": string;
  "dst.hbone_addr"?: string;
  "dst.service"?: string;
  "dst.workload"?: string;
  "dst.namespace"?: string;
  "dst.identity"?: string;
  "dst.cluster"?: string;
  direction: "outbound" | "inbound";
  bytes_sent: number;
  bytes_recv: number;
  duration: string;
  error?: string;
}

/** Socket addresses of one connection, as ztunnel prints them (`ip:port`, `[v6]:port`). */
export interface ConnectionAddresses {
  src: string;
  dst: string;
  /** The inner HBONE `:authority` target, when tunnelled. */
  hboneAddr?: string;
}

/** `ip:port`, with IPv6 in brackets (Rust's `SocketAddr` display). */
export function socketAddr(ip: string, port: number): string {
  return ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/**
 * Builds the record. `received`/`sent` are the metric directions (request direction and response
 * direction); for an outbound (source) reporter ztunnel "unflips" them for the log, so
 * `bytes_sent` is what the local app sent.
 */
export function connectionAccessRecord(
  ctx: AccessLogContext,
  addrs: ConnectionAddresses,
  bytes: { sent: number; received: number },
  durationMs: number,
  error?: string,
): ConnectionAccessRecord {
  const r = connectionOpenedRecord(ctx, addrs) as ConnectionAccessRecord;
  const outbound = ctx.direction === "outbound";
  r.bytes_sent = outbound ? bytes.received : bytes.sent;
  r.bytes_recv = outbound ? bytes.sent : bytes.received;
  r.duration = `${Math.max(0, Math.floor(durationMs))}ms`;
  if (error !== undefined) r.error = error;
  return r;
}

/** Writes a completed connection: INFO, or ERROR (→ `warn` if the logger has no `error`). */
export function logConnection(logger: AccessLogger, record: ConnectionAccessRecord): void {
  if (record.error === undefined) logger.info(record, ACCESS_LOG_MESSAGE);
  else if (logger.error !== undefined) logger.error(record, ACCESS_LOG_MESSAGE);
  else logger.warn(record, ACCESS_LOG_MESSAGE);
}

/** An early denial record ("connection failed", WARN): ztunnel's `log_early_deny`. */
export interface EarlyDenyRecord {
  "src.addr": string;
  "dst.addr": string;
  direction: "outbound" | "inbound";
  error: string;
}

/** Logs a connection denied before metrics could be set up (ztunnel's `log_early_deny`). */
export function logEarlyDeny(
  logger: AccessLogger,
  addrs: { src: string; dst: string },
  reporter: Reporter,
  error: unknown,
): EarlyDenyRecord {
  const record: EarlyDenyRecord = {
    "src.addr": addrs.src,
    "dst.addr": addrs.dst,
    direction: reporter === "source" ? "outbound" : "inbound",
    error: errorText(error),
  };
  logger.warn(record, ACCESS_LOG_DENY_MESSAGE);
  return record;
}

/** The text of an error for the `error` field. */
export function errorText(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

// Fields ztunnel records with `%` (Display): printed bare in the plain format.
const DISPLAY_FIELDS: ReadonlySet<string> = new Set(["src.addr", "dst.addr", "dst.hbone_addr"]);

// Rust's `{:?}` for str.
function rustDebugString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0) as number;
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (c === 0) out += "\\0";
    else if (c < 0x20 || c === 0x7f) out += `\\u{${c.toString(16)}}`;
    else out += ch;
  }
  return `${out}"`;
}

/** RFC 3339 UTC with microseconds, as tracing-subscriber's `SystemTime` prints (`...00.123000Z`). */
export function rfc3339Micros(date: Date): string {
  const iso = date.toISOString(); // 2024-01-01T00:00:00.123Z
  return `${iso.slice(0, 23)}000Z`;
}

function defaultLevel(record: ConnectionAccessRecord | EarlyDenyRecord): AccessLogLevel {
  if (!("bytes_sent" in record)) return "warn";
  return record.error === undefined ? "info" : "error";
}

/** Level names as ztunnel prints them. */
export type AccessLogLevel = "info" | "warn" | "error";

/**
 * ztunnel's plain format (`LOG_FORMAT` unset): `<time>\t<level>\taccess\t<message>\tk=v k="v"…`.
 * Addresses are bare, strings Debug-quoted, numbers bare.
 */
export function formatAccessLogPlain(
  record: ConnectionAccessRecord | EarlyDenyRecord,
  options?: { time?: Date; level?: AccessLogLevel; message?: string },
): string {
  const level = options?.level ?? defaultLevel(record);
  const message =
    options?.message ?? ("bytes_sent" in record ? ACCESS_LOG_MESSAGE : ACCESS_LOG_DENY_MESSAGE);
  const parts: string[] = [];
  for (const [k, v] of Object.entries(record)) {
    if (typeof v === "number") parts.push(`${k}=${v}`);
    else if (DISPLAY_FIELDS.has(k)) parts.push(`${k}=${v}`);
    else parts.push(`${k}=${rustDebugString(String(v))}`);
  }
  return `${rfc3339Micros(options?.time ?? new Date())}\t${level}\t${ACCESS_LOG_SCOPE}\t${message}\t${parts.join(" ")}`;
}

/**
 * ztunnel's JSON format (`LOG_FORMAT=json`): `{"level","time","scope":"access","message",…fields}`.
 */
export function formatAccessLogJson(
  record: ConnectionAccessRecord | EarlyDenyRecord,
  options?: { time?: Date; level?: AccessLogLevel; message?: string },
): string {
  const level = options?.level ?? defaultLevel(record);
  const message =
    options?.message ?? ("bytes_sent" in record ? ACCESS_LOG_MESSAGE : ACCESS_LOG_DENY_MESSAGE);
  return JSON.stringify({
    level,
    time: rfc3339Micros(options?.time ?? new Date()),
    scope: ACCESS_LOG_SCOPE,
    message,
    ...record,
  });
}
