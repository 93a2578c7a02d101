/**
 * prom-client adapter (Node only: prom-client uses Node's `util`/`cluster`), exported as
 * `@ambientkit/telemetry/prometheus`. The families are prom-client metric objects registered in a
 * caller-supplied registry (or prom-client's default one); their values are read from
 * {@link IstioMetrics} at scrape time, so recording never pays prom-client's per-call label hashing.
 */
import client from "prom-client";
import {
  ALL_TCP_LABEL_NAMES,
  ENVOY_HTTP_LABEL_NAMES,
  ENVOY_PEER_LABEL_NAMES,
  METRIC_NAMES,
} from "./labels.js";
import { type IstioMetrics, METRIC_HELP } from "./recorder.js";

type Registry = client.Registry<client.RegistryContentType>;
type CounterGet = Awaited<ReturnType<client.Counter["get"]>>;
type GaugeGet = Awaited<ReturnType<client.Gauge["get"]>>;
type HistogramGet = Awaited<ReturnType<client.Histogram["get"]>>;

// prom-client's typings do not declare `name`, but every metric has it (an OpenMetrics registry
// even rewrites it), so read it at scrape time.
function nameOf(metric: object): string {
  return (metric as { name: string }).name;
}
interface Snapshot {
  name: string;
  help: string;
  type: string;
  values: Array<{ labels: Record<string, string | number>; value: number; metricName?: string }>;
  aggregator: string;
}

function counterClass(metrics: IstioMetrics) {
  return class IstioCounter extends client.Counter {
    override async get(): Promise<CounterGet> {
      const name = nameOf(this);
      const istio = istioCounterName(name);
      const snap: Snapshot = {
        name,
        help: METRIC_HELP[istio] ?? istio,
        type: "counter",
        values: metrics.counter(istio).map((s) => ({ labels: s.labels, value: s.value })),
        aggregator: "sum",
      };
      return snap as unknown as CounterGet;
    }
  };
}

// An OpenMetrics registry renames counters without `_total` (it prints the suffix on samples).
function istioCounterName(name: string): string {
  return name.endsWith("_total") ? name : `${name}_total`;
}

function histogramClass(metrics: IstioMetrics, istioName: string) {
  return class IstioHistogram extends client.Histogram {
    override async get(): Promise<HistogramGet> {
      return this.#values() as unknown as HistogramGet;
    }
    // The registry prefers this method when present (it is prom-client's own fast path).
    async getForPromString(): Promise<HistogramGet> {
      return this.#values() as unknown as HistogramGet;
    }
    #values(): Snapshot {
      const name = nameOf(this);
      const bucketName = `${name}_bucket`;
      const values: Snapshot["values"] = [];
      const bounds = metrics.buckets;
      for (const s of metrics.histogram(istioName)) {
        for (let i = 0; i < bounds.length; i++) {
          values.push({
            metricName: bucketName,
            labels: { ...s.labels, le: bounds[i] as number },
            value: s.cumulative[i] as number,
          });
        }
        values.push({
          metricName: bucketName,
          labels: { ...s.labels, le: "+Inf" },
          value: s.count,
        });
        values.push({ metricName: `${name}_sum`, labels: s.labels, value: s.sum });
        values.push({ metricName: `${name}_count`, labels: s.labels, value: s.count });
      }
      return {
        name,
        help: METRIC_HELP[istioName] ?? name,
        type: "histogram",
        values,
        aggregator: "sum",
      };
    }
  };
}

function gaugeClass(metrics: IstioMetrics) {
  return class IstioBuildGauge extends client.Gauge {
    override async get(): Promise<GaugeGet> {
      const snap: Snapshot = {
        name: nameOf(this),
        help: METRIC_HELP[METRIC_NAMES.build] ?? METRIC_NAMES.build,
        type: "gauge",
        values: metrics
          .counter(METRIC_NAMES.build)
          .map((s) => ({ labels: s.labels, value: s.value })),
        aggregator: "first",
      };
      return snap as unknown as GaugeGet;
    }
  };
}

/** What {@link registerPrometheus} registered. */
export interface PrometheusRegistration {
  readonly registry: Registry;
  /** Names of the registered families. */
  readonly names: readonly string[];
  /** Removes the families from the registry. */
  unregister(): void;
}

/** Options for {@link registerPrometheus}. */
export interface RegisterPrometheusOptions {
  /** Default: prom-client's global `register`. */
  registry?: Registry;
  /**
   * Include ztunnel's unstable `istio_tcp_connections_failed_total` (default true) and the L7
   * families (default true; a pure L4 proxy may turn them off).
   */
  failedConnections?: boolean;
  l7?: boolean;
}

/**
 * Registers Istio's families in a prom-client registry: the TCP counters, `istio_build`, and (unless
 * `l7: false`) `istio_requests_total`, the three Envoy-bucket histograms and the gRPC message
 * counters. Throws prom-client's error if a family of the same name is already registered.
 */
export function registerPrometheus(
  metrics: IstioMetrics,
  options?: RegisterPrometheusOptions,
): PrometheusRegistration {
  const registry = options?.registry ?? client.register;
  const Counter = counterClass(metrics);
  const names: string[] = [];
  const reg = (m: object): void => {
    names.push(nameOf(m));
  };
  const make: Array<() => object> = [];
  if (metrics.build !== undefined) {
    const Gauge = gaugeClass(metrics);
    make.push(
      () =>
        new Gauge({
          name: METRIC_NAMES.build,
          help: METRIC_HELP[METRIC_NAMES.build] ?? "",
          labelNames: ["component", "tag"],
          registers: [registry],
        }),
    );
  }
  const tcp = [
    METRIC_NAMES.tcpOpened,
    METRIC_NAMES.tcpClosed,
    METRIC_NAMES.tcpReceivedBytes,
    METRIC_NAMES.tcpSentBytes,
  ] as string[];
  if (options?.failedConnections !== false) tcp.splice(2, 0, METRIC_NAMES.tcpFailed);
  for (const name of tcp) {
    make.push(
      () =>
        new Counter({
          name,
          help: METRIC_HELP[name] ?? name,
          labelNames: [...ALL_TCP_LABEL_NAMES],
          registers: [registry],
        }),
    );
  }
  if (options?.l7 !== false) {
    make.push(
      () =>
        new Counter({
          name: METRIC_NAMES.requestsTotal,
          help: METRIC_HELP[METRIC_NAMES.requestsTotal] ?? "",
          labelNames: [...ENVOY_HTTP_LABEL_NAMES],
          registers: [registry],
        }),
    );
    for (const name of [
      METRIC_NAMES.requestDuration,
      METRIC_NAMES.requestBytes,
      METRIC_NAMES.responseBytes,
    ]) {
      const Histogram = histogramClass(metrics, name);
      make.push(
        () =>
          new Histogram({
            name,
            help: METRIC_HELP[name] ?? name,
            labelNames: [...ENVOY_HTTP_LABEL_NAMES],
            buckets: [...metrics.buckets],
            registers: [registry],
          }),
      );
    }
    for (const name of [METRIC_NAMES.requestMessages, METRIC_NAMES.responseMessages]) {
      make.push(
        () =>
          new Counter({
            name,
            help: METRIC_HELP[name] ?? name,
            labelNames: [...ENVOY_PEER_LABEL_NAMES],
            registers: [registry],
          }),
      );
    }
  }
  try {
    for (const m of make) reg(m());
  } catch (err) {
    for (const n of names) registry.removeSingleMetric(n);
    throw err;
  }
  return {
    registry,
    names,
    unregister(): void {
      for (const n of names) registry.removeSingleMetric(n);
    },
  };
}
