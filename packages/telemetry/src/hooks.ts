/**
 * Adapter from tunnel hooks (the shape `@ambientkit/hbone` exposes: onConnect / onBytes /
 * onClose, with bytes counted from the hook owner's side) to {@link IstioMetrics}. It owns the
 * direction mapping, which is easy to get backwards:
 *
 * | hook owner            | hook direction | Istio metric                               |
 * | --------------------- | -------------- | ------------------------------------------ |
 * | client (outbound)     | `sent`         | request direction → `tcp_received_bytes`   |
 * | client (outbound)     | `received`     | response direction → `tcp_sent_bytes`      |
 * | server (inbound)      | `received`     | request direction → `tcp_received_bytes`   |
 * | server (inbound)      | `sent`         | response direction → `tcp_sent_bytes`      |
 *
 * No dependency on hbone: the types below are structural. Universal.
 */
import type { ConnectionAddresses } from "./access-log.js";
import { socketAddr } from "./access-log.js";
import type { TcpLabels } from "./labels.js";
import type { ConnectionHandle, IstioMetrics } from "./recorder.js";

/** What the adapter needs to know about a tunnel (hbone's `TunnelInfo` fits). */
export interface TunnelLike {
  role: "client" | "server";
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
}

/** Options for {@link tunnelRecorder}. */
export interface TunnelRecorderOptions<I extends TunnelLike> {
  /** Labels for a new tunnel (resolve and cache per peer pair); `undefined` → not recorded. */
  labels(info: I): TcpLabels | undefined;
  /**
   * Access-log addresses; default: client `src`=local, `dst`=remote; server `src`=remote,
   * `dst`=local (the HBONE socket's addresses).
   */
  addresses?(info: I): ConnectionAddresses | undefined;
  /**
   * When bytes are counted: `"stream"` (default) as each chunk passes (`onBytes`); `"close"` once, at
   * close, from the summary's `bytesSent` / `bytesReceived` — no hook call per chunk on the data
   * path, for owners that keep their own counters (hbone's `TunnelSummary` does).
   */
  bytes?: "stream" | "close";
}

/** What a tunnel owner reports at close (hbone's `TunnelSummary` fits). */
export interface TunnelCloseSummary {
  error?: unknown;
  bytesSent?: number;
  bytesReceived?: number;
}

/** The hooks to hand to a tunnel owner. Each is cheap and never throws. */
export interface TunnelHooks<I extends TunnelLike> {
  onConnect(info: I): void;
  /** Absent when bytes are counted at close. */
  onBytes?(info: I, direction: "sent" | "received", bytes: number): void;
  onClose(info: I, summary: TunnelCloseSummary): void;
}

/** Hooks that record every tunnel as an Istio TCP connection (see the table above). */
export function tunnelRecorder<I extends TunnelLike>(
  metrics: IstioMetrics,
  options: TunnelRecorderOptions<I>,
): TunnelHooks<I> {
  const live = new WeakMap<I, ConnectionHandle>();
  const addresses =
    options.addresses ??
    ((info: I): ConnectionAddresses => {
      const local = socketAddr(info.localAddress, info.localPort);
      const remote = socketAddr(info.remoteAddress, info.remotePort);
      return info.role === "client" ? { src: local, dst: remote } : { src: remote, dst: local };
    });
  const count = (h: ConnectionHandle, info: I, direction: "sent" | "received", n: number): void => {
    // Request direction is client→server: what a client sends, what a server receives.
    if ((direction === "sent") === (info.role === "client")) h.received(n);
    else h.sent(n);
  };
  const atClose = options.bytes === "close";
  const hooks: TunnelHooks<I> = {
    onConnect(info: I): void {
      try {
        const labels = options.labels(info);
        if (labels === undefined) return;
        live.set(info, metrics.openConnection(labels, addresses(info)));
      } catch {
        // recording never breaks the data path
      }
    },
    onClose(info: I, summary: TunnelCloseSummary): void {
      const h = live.get(info);
      if (h === undefined) return;
      live.delete(info);
      try {
        if (atClose) {
          count(h, info, "sent", summary.bytesSent ?? 0);
          count(h, info, "received", summary.bytesReceived ?? 0);
        }
        h.close(summary.error === undefined ? undefined : { error: summary.error });
      } catch {
        // a throwing logger must not break the data path
      }
    },
  };
  if (!atClose) {
    hooks.onBytes = (info: I, direction: "sent" | "received", bytes: number): void => {
      const h = live.get(info);
      if (h !== undefined) count(h, info, direction, bytes);
    };
  }
  return hooks;
}
