// Connection-level HBONE events (GOAWAY, keepalive timeout, reset, idle, …) as log lines and a
// counter, so a pooled connection that takes its streams down with it is never silent.
import type { Registry } from "prom-client";
import { Counter } from "prom-client";
import type { ConnectionEnd } from "../hbone.js";
import type { MemoryLog } from "./access-log.js";

/** Ends that are part of normal operation (logged at info, the rest at warn). */
const ORDERLY = new Set(["closed", "idle", "destroyed"]);

/** Returns an `onConnectionEnd` hook that logs each end and counts it per role and reason. */
export function connectionEndRecorder(
  log: MemoryLog,
  registry: Registry,
): (end: ConnectionEnd) => void {
  const counter = new Counter({
    name: "ambientkit_hbone_connection_ends_total",
    help: "HBONE (HTTP/2) connections that ended, by role and reason",
    labelNames: ["role", "reason"],
    registers: [registry],
  });
  return (end) => {
    counter.inc({ role: end.role, reason: end.reason });
    const fields = {
      role: end.role,
      reason: end.reason,
      streams: end.streams,
      "duration.ms": end.durationMs,
      "peer.identity": end.peerIdentity,
      "local.addr": `${end.localAddress}:${end.localPort}`,
      "peer.addr": `${end.remoteAddress}:${end.remotePort}`,
      ...(end.goawayCode !== undefined ? { "goaway.code": end.goawayCode } : {}),
      ...(end.error ? { error: end.error.message } : {}),
    };
    if (ORDERLY.has(end.reason) && end.streams === 0) log.info(fields, "HBONE connection closed");
    else log.warn(fields, `HBONE connection ended: ${end.reason}`);
  };
}
