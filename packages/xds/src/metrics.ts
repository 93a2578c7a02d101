// ztunnel's xDS metrics (`ztunnel:src/xds/metrics.rs`), as @ambientkit/telemetry metric families so
// they scrape beside the Istio standard metrics (`formatPrometheusText([...a.collect(), ...b.collect()])`).
import type { MetricFamily } from "@ambientkit/telemetry";

/** Why an xDS stream ended (ztunnel's `ConnectionTerminationReason`). */
export type XdsTerminationReason = "ConnectionError" | "Error" | "Reconnect" | "Complete";

export class XdsMetrics {
  readonly #terminations = new Map<XdsTerminationReason, number>();
  readonly #messages = new Map<string, number>();
  readonly #bytes = new Map<string, number>();

  connectionTerminated(reason: XdsTerminationReason): void {
    this.#terminations.set(reason, (this.#terminations.get(reason) ?? 0) + 1);
  }
  /** One response received for `url` (its type URL) of `bytes` bytes on the wire. */
  messageReceived(url: string, bytes: number): void {
    this.#messages.set(url, (this.#messages.get(url) ?? 0) + 1);
    this.#bytes.set(url, (this.#bytes.get(url) ?? 0) + bytes);
  }
  terminations(reason: XdsTerminationReason): number {
    return this.#terminations.get(reason) ?? 0;
  }
  messages(url: string): number {
    return this.#messages.get(url) ?? 0;
  }

  collect(): MetricFamily[] {
    const series = (m: Map<string, number>, label: string) =>
      [...m].map(([v, value]) => ({ labels: { [label]: v }, value }));
    return [
      {
        name: "istio_xds_connection_terminations_total",
        help: "The total number of completed connections to xds server (unstable)",
        type: "counter",
        samples: series(this.#terminations, "reason"),
      },
      {
        name: "istio_xds_message_total",
        help: "Total number of messages received (unstable)",
        type: "counter",
        samples: series(this.#messages, "url"),
      },
      {
        name: "istio_xds_message_bytes_total",
        help: "Total number of bytes received (unstable)",
        type: "counter",
        samples: series(this.#bytes, "url"),
      },
    ];
  }
}
