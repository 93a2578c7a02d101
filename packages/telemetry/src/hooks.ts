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
}

/** The hooks to hand to a tunnel owner. Each is cheap and never throws. */
export interface TunnelHooks<I extends TunnelLike> {
  onConnect(info: I): void;
  onBytes(info: I, direction: "sent" | "received", bytes: number): void;
  onClose(info: I, summary: { error?: unknown }): void;
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
  return {
    onConnect(info: I): void {
      try {
        const labels = options.labels(info);
        if (labels === undefined) return;
        live.set(info, metrics.openConnection(labels, addresses(info)));
      } catch {
        // recording never breaks the data path
      }
    },
    onBytes(info: I, direction: "sent" | "received", bytes: number): void {
      const h = live.get(info);
      if (h === undefined) return;
      // Request direction is client→server: what a client sends, what a server receives.
      if ((direction === "sent") === (info.role === "client")) h.received(bytes);
      else h.sent(bytes);
    },
    onClose(info: I, summary: { error?: unknown }): void {
      const h = live.get(info);
      if (h === undefined) return;
      live.delete(info);
      try {
        h.close(summary.error === undefined ? undefined : { error: summary.error });
      } catch {
        // a throwing logger must not break the data path
      }
    },
  };
}
