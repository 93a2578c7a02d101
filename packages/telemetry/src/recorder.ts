/**
 * The recording API: Istio's L4 and L7 metrics kept in plain counters and bucket arrays, keyed by
 * interned label sets, so recording on the hot path is a few additions. Exporters (prom-client in
 * `./prometheus`, OpenTelemetry in `otel.ts`) read the same series when scraped. Universal:
 * imports nothing from `node:`.
 *
 * Semantics follow ztunnel (`src/proxy/metrics.rs`, `src/copy.rs`): `opened`, `sent` and
 * `received` use the labels the connection was opened with (`response_flags="-"`); `closed` (and
 * `failed`, for a failure flag) use the final flags. Bytes flowing downstream→upstream (the request
 * direction) count as `istio_tcp_received_bytes_total`, upstream→downstream (the response
 * direction) as `istio_tcp_sent_bytes_total`, for every reporter.
 */
import {
  ACCESS_LOG_OPEN_MESSAGE,
  type AccessLogger,
  type ConnectionAccessRecord,
  type ConnectionAddresses,
  connectionAccessRecord,
  connectionOpenedRecord,
  errorText,
  logConnection,
} from "./access-log.js";
import {
  ENVOY_BUCKETS,
  ENVOY_HTTP_LABEL_NAMES,
  FAILURE_FLAGS,
  type HttpLabels,
  LabelSet,
  METRIC_NAMES,
  NO_FLAGS,
  type ResponseFlag,
  type TcpLabels,
} from "./labels.js";

/** A counter series: labels (in emission order) and a value. */
export interface CounterSample {
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** A histogram series: per-bucket cumulative counts (aligned with the family's `buckets`). */
export interface HistogramSample {
  readonly labels: Readonly<Record<string, string>>;
  /** Cumulative count for each upper bound (`le`), without `+Inf` (that is `count`). */
  readonly cumulative: readonly number[];
  readonly sum: number;
  readonly count: number;
}

/** One metric family as a snapshot. */
export type MetricFamily =
  | {
      readonly name: string;
      readonly help: string;
      readonly type: "counter" | "gauge";
      readonly samples: readonly CounterSample[];
    }
  | {
      readonly name: string;
      readonly help: string;
      readonly type: "histogram";
      readonly unit: "ms" | "By";
      readonly buckets: readonly number[];
      readonly samples: readonly HistogramSample[];
    };

/** Help strings (ztunnel's for the TCP metrics). */
export const METRIC_HELP: Readonly<Record<string, string>> = Object.freeze({
  [METRIC_NAMES.tcpOpened]: "The total number of TCP connections opened",
  [METRIC_NAMES.tcpClosed]: "The total number of TCP connections closed",
  [METRIC_NAMES.tcpFailed]:
    "The total number of TCP connections that failed to establish (unstable)",
  [METRIC_NAMES.tcpReceivedBytes]:
    "The size of total bytes received during request in case of a TCP connection",
  [METRIC_NAMES.tcpSentBytes]:
    "The size of total bytes sent during response in case of a TCP connection",
  [METRIC_NAMES.requestsTotal]: "The total number of requests",
  [METRIC_NAMES.requestDuration]: "The duration of requests in milliseconds",
  [METRIC_NAMES.requestBytes]: "The size of HTTP request bodies and headers in bytes",
  [METRIC_NAMES.responseBytes]: "The size of HTTP response bodies and headers in bytes",
  [METRIC_NAMES.requestMessages]: "The number of gRPC messages sent by the client",
  [METRIC_NAMES.responseMessages]: "The number of gRPC messages sent by the server",
  [METRIC_NAMES.build]: "Istio component build info",
});

const OPENED = 1;
const CLOSED = 2;
const FAILED = 4;
const BYTES = 8;

/** @internal */
export class TcpSeries {
  readonly labels: LabelSet;
  opened = 0;
  closed = 0;
  failed = 0;
  sent = 0;
  received = 0;
  present = 0;
  constructor(labels: LabelSet) {
    this.labels = labels;
  }
}

class Hist {
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(n: number) {
    this.counts = new Array<number>(n).fill(0);
  }
  observe(bounds: readonly number[], v: number): void {
    this.sum += v;
    this.count++;
    for (let i = 0; i < bounds.length; i++) {
      if (v <= (bounds[i] as number)) {
        (this.counts as number[])[i] = (this.counts[i] as number) + 1;
        return;
      }
    }
  }
  cumulative(): number[] {
    const out = new Array<number>(this.counts.length);
    let acc = 0;
    for (let i = 0; i < this.counts.length; i++) {
      acc += this.counts[i] as number;
      out[i] = acc;
    }
    return out;
  }
}

class RequestSeries {
  readonly labels: LabelSet;
  requests = 0;
  readonly duration: Hist;
  readonly requestBytes: Hist;
  readonly responseBytes: Hist;
  hasDuration = false;
  hasBytes = false;
  constructor(labels: LabelSet, n: number) {
    this.labels = labels;
    this.duration = new Hist(n);
    this.requestBytes = new Hist(n);
    this.responseBytes = new Hist(n);
  }
}

class MessageSeries {
  readonly labels: LabelSet;
  request = 0;
  response = 0;
  constructor(labels: LabelSet) {
    this.labels = labels;
  }
}

/** The outcome of one HTTP/gRPC request. */
export interface RequestRecord {
  /** HTTP status; 0 when there was none (e.g. the upstream reset). */
  responseCode: number;
  /** gRPC status (numeric) for gRPC requests; omitted → `""` as Envoy reports for none. */
  grpcStatus?: number;
  /** Envoy `%RESPONSE_FLAGS%` short string; default `-`. */
  responseFlags?: string;
  /**
   * Request duration; truncated to whole ms as Envoy records it. Omitted → no
   * `istio_request_duration_milliseconds` observation (Envoy: the request never completed).
   */
  durationMs?: number;
  /** Downstream wire bytes received/sent; omitted → no byte histogram observations. */
  requestBytes?: number;
  responseBytes?: number;
  /** gRPC messages; counted in `istio_request_messages_total`/`istio_response_messages_total`. */
  requestMessages?: number;
  responseMessages?: number;
}

/** Options for {@link IstioMetrics}. */
export interface IstioMetricsOptions {
  /** Monotonic clock in ms; default `performance.now()` (or `Date.now()`). */
  now?: () => number;
  /** Where "connection complete" records go; none → no access log. */
  accessLog?: AccessLogger;
  /**
   * `istio_build{component, tag}` = 1. Defaults: component `proxy` (Envoy's value; ztunnel uses
   * `ztunnel`), tag `unknown` (Istio's value when the version is not known). `false` disables it.
   */
  build?: { component?: string; tag?: string } | false;
  /** Histogram buckets; default Envoy's ({@link ENVOY_BUCKETS}). */
  buckets?: readonly number[];
}

/** How a connection ended. */
export interface ConnectionOutcome {
  /** ztunnel response flag; defaults to `CONNECT` when `error` is set, else `-`. */
  flags?: ResponseFlag;
  /** The failure, if any: turns the access log to ERROR with an `error` field. */
  error?: unknown;
}

/** Listener for every recorded request (used by the OpenTelemetry bridge). */
export type RequestListener = (
  labels: Readonly<Record<string, string>>,
  record: RequestRecord,
  peer: Readonly<Record<string, string>>,
) => void;

function defaultNow(): () => number {
  const perf = (globalThis as { performance?: { now(): number } }).performance;
  if (perf !== undefined && typeof perf.now === "function") return () => perf.now();
  return Date.now;
}

/**
 * One connection being recorded. Resolve its {@link TcpLabels} once, then `sent(n)` /
 * `received(n)` are two additions each and `close()` records the end (once).
 */
export class ConnectionHandle {
  /** Response-direction bytes (upstream → downstream): `istio_tcp_sent_bytes_total`. */
  bytesSent = 0;
  /** Request-direction bytes (downstream → upstream): `istio_tcp_received_bytes_total`. */
  bytesReceived = 0;
  closed = false;
  readonly labels: TcpLabels;
  readonly startedAt: number;
  readonly #owner: IstioMetrics;
  readonly #series: TcpSeries;
  readonly #addrs: ConnectionAddresses | undefined;

  /** @internal use {@link IstioMetrics.openConnection} */
  constructor(
    owner: IstioMetrics,
    series: TcpSeries,
    labels: TcpLabels,
    addrs: ConnectionAddresses | undefined,
    startedAt: number,
  ) {
    this.#owner = owner;
    this.#series = series;
    this.labels = labels;
    this.#addrs = addrs;
    this.startedAt = startedAt;
  }

  /** Bytes that flowed upstream → downstream (response direction). Ignores n ≤ 0 and NaN. */
  sent(n: number): void {
    if (n > 0 && !this.closed) {
      this.bytesSent += n;
      this.#series.sent += n;
    }
  }

  /** Bytes that flowed downstream → upstream (request direction). Ignores n ≤ 0 and NaN. */
  received(n: number): void {
    if (n > 0 && !this.closed) {
      this.bytesReceived += n;
      this.#series.received += n;
    }
  }

  /**
   * Records the end: `istio_tcp_connections_closed_total` with the final flags (and
   * `..._failed_total` for a failure flag), and the access log if configured. Idempotent; returns
   * the access-log record when one was written.
   */
  close(outcome?: ConnectionOutcome): ConnectionAccessRecord | undefined {
    if (this.closed) return undefined;
    this.closed = true;
    const error = outcome?.error;
    const flags = outcome?.flags ?? (error === undefined ? NO_FLAGS : "CONNECT");
    const owner = this.#owner;
    const series =
      flags === NO_FLAGS
        ? this.#series
        : owner._tcpSeries(this.labels.labels.with("response_flags", flags));
    series.closed++;
    series.present |= CLOSED;
    if (FAILURE_FLAGS.has(flags)) {
      series.failed++;
      series.present |= FAILED;
    }
    const logger = owner.accessLog;
    if (logger === undefined || this.#addrs === undefined) return undefined;
    const record = connectionAccessRecord(
      this.labels.log,
      this.#addrs,
      { sent: this.bytesSent, received: this.bytesReceived },
      owner.now() - this.startedAt,
      error === undefined ? undefined : errorText(error),
    );
    try {
      logConnection(logger, record);
    } catch {
      // a failing logger must not break the connection's teardown
    }
    return record;
  }
}

/**
 * Istio's standard metrics for one proxy. Create one per process (or per proxy identity), open a
 * {@link ConnectionHandle} per L4 connection, call {@link IstioMetrics.recordRequest} per L7
 * request, and expose it with `registerPrometheus()` (`@ambientkit/telemetry/prometheus`) or
 * {@link bridgeToOpenTelemetry}.
 */
export class IstioMetrics {
  readonly now: () => number;
  readonly accessLog: AccessLogger | undefined;
  readonly buckets: readonly number[];
  readonly build: { readonly component: string; readonly tag: string } | undefined;
  readonly #tcp = new Map<string, TcpSeries>();
  readonly #requests = new Map<string, RequestSeries>();
  readonly #messages = new Map<string, MessageSeries>();
  readonly #groups = new WeakMap<HttpLabels, Map<string, RequestSeries>>();
  readonly #groupsByKey = new Map<string, Map<string, RequestSeries>>();
  readonly #listeners: RequestListener[] = [];

  constructor(options?: IstioMetricsOptions) {
    this.now = options?.now ?? defaultNow();
    this.accessLog = options?.accessLog;
    this.buckets = Object.freeze([...(options?.buckets ?? ENVOY_BUCKETS)]);
    const b = options?.build;
    this.build =
      b === false ? undefined : { component: b?.component ?? "proxy", tag: b?.tag || "unknown" };
  }

  /** @internal the series for a label set, created on first use. */
  _tcpSeries(labels: LabelSet): TcpSeries {
    let s = this.#tcp.get(labels.key);
    if (s === undefined) {
      s = new TcpSeries(labels);
      this.#tcp.set(labels.key, s);
    }
    return s;
  }

  /**
   * Records a connection open (`istio_tcp_connections_opened_total`, and zero-valued byte series as
   * ztunnel creates them) and returns its handle. Pass `addrs` to get an access-log record on close.
   */
  openConnection(labels: TcpLabels, addrs?: ConnectionAddresses): ConnectionHandle {
    const s = this._tcpSeries(labels.labels);
    s.opened++;
    s.present |= OPENED | BYTES;
    const logger = this.accessLog;
    if (logger?.debug !== undefined && addrs !== undefined) {
      try {
        if (logger.isLevelEnabled?.("debug") !== false) {
          logger.debug(connectionOpenedRecord(labels.log, addrs), ACCESS_LOG_OPEN_MESSAGE);
        }
      } catch {
        // logging never breaks the data path
      }
    }
    return new ConnectionHandle(this, s, labels, addrs, this.now());
  }

  #group(labels: HttpLabels): Map<string, RequestSeries> {
    let g = this.#groups.get(labels);
    if (g === undefined) {
      const key = `${labels.peer.key}\u0002${labels.protocol}\u0002${labels.securityPolicy}`;
      g = this.#groupsByKey.get(key);
      if (g === undefined) {
        g = new Map();
        this.#groupsByKey.set(key, g);
      }
      this.#groups.set(labels, g);
    }
    return g;
  }

  /**
   * Records one HTTP/gRPC request: `istio_requests_total`, the duration and size histograms, and
   * (gRPC) the message counters. Never throws on bad numbers: non-finite or negative values are
   * not observed.
   */
  recordRequest(labels: HttpLabels, r: RequestRecord): void {
    const g = this.#group(labels);
    const code = r.responseCode;
    const grpc = labels.protocol === "grpc" && r.grpcStatus !== undefined ? r.grpcStatus : "";
    const flags = r.responseFlags ?? NO_FLAGS;
    const k = `${code}|${grpc}|${flags}`;
    let s = g.get(k);
    if (s === undefined) {
      const p = labels.peer.values;
      const values = [
        ...p,
        labels.protocol,
        String(Number.isFinite(code) ? Math.trunc(code) : 0),
        String(grpc),
        flags,
        labels.securityPolicy,
      ];
      const set = new LabelSet(ENVOY_HTTP_LABEL_NAMES, values);
      s = this.#requests.get(set.key);
      if (s === undefined) {
        s = new RequestSeries(set, this.buckets.length);
        this.#requests.set(set.key, s);
      }
      g.set(k, s);
    }
    s.requests++;
    const b = this.buckets;
    const dur = r.durationMs;
    if (dur !== undefined && dur >= 0 && Number.isFinite(dur)) {
      // Envoy records whole milliseconds (duration / 1ms in integer arithmetic).
      s.duration.observe(b, Math.trunc(dur));
      s.hasDuration = true;
    }
    const rq = r.requestBytes;
    const rs = r.responseBytes;
    if (rq !== undefined && rs !== undefined && rq >= 0 && rs >= 0) {
      s.requestBytes.observe(b, rq);
      s.responseBytes.observe(b, rs);
      s.hasBytes = true;
    }
    if (
      labels.protocol === "grpc" ||
      r.requestMessages !== undefined ||
      r.responseMessages !== undefined
    ) {
      this.recordMessages(labels, r.requestMessages ?? 0, r.responseMessages ?? 0);
    }
    const ls = this.#listeners;
    if (ls.length > 0) {
      for (const l of ls) {
        try {
          l(s.labels.record, r, labels.peer.record);
        } catch {
          // an exporter's failure never reaches the request path
        }
      }
    }
  }

  /**
   * Adds gRPC message counts (Envoy reports these periodically during a stream, labelled with the
   * reporter and the 19 peer labels only).
   */
  recordMessages(labels: HttpLabels, request: number, response: number): void {
    let m = this.#messages.get(labels.peer.key);
    if (m === undefined) {
      m = new MessageSeries(labels.peer);
      this.#messages.set(labels.peer.key, m);
    }
    if (request > 0) m.request += request;
    if (response > 0) m.response += response;
  }

  /** @internal subscribe to recorded requests; returns an unsubscribe function. */
  _onRequest(listener: RequestListener): () => void {
    this.#listeners.push(listener);
    return () => {
      const i = this.#listeners.indexOf(listener);
      if (i >= 0) this.#listeners.splice(i, 1);
    };
  }

  /** Number of distinct series (all families); useful to watch cardinality. */
  get seriesCount(): number {
    return this.#tcp.size + this.#requests.size + this.#messages.size;
  }

  /** A snapshot of one counter family by name (empty when the name is not one of ours). */
  counter(name: string): CounterSample[] {
    const out: CounterSample[] = [];
    const tcp = (bit: number, pick: (s: TcpSeries) => number): void => {
      for (const s of this.#tcp.values()) {
        if (s.present & bit) out.push({ labels: s.labels.record, value: pick(s) });
      }
    };
    switch (name) {
      case METRIC_NAMES.tcpOpened:
        tcp(OPENED, (s) => s.opened);
        break;
      case METRIC_NAMES.tcpClosed:
        tcp(CLOSED, (s) => s.closed);
        break;
      case METRIC_NAMES.tcpFailed:
        tcp(FAILED, (s) => s.failed);
        break;
      case METRIC_NAMES.tcpSentBytes:
        tcp(BYTES, (s) => s.sent);
        break;
      case METRIC_NAMES.tcpReceivedBytes:
        tcp(BYTES, (s) => s.received);
        break;
      case METRIC_NAMES.requestsTotal:
        for (const s of this.#requests.values()) {
          out.push({ labels: s.labels.record, value: s.requests });
        }
        break;
      case METRIC_NAMES.requestMessages:
        for (const m of this.#messages.values())
          out.push({ labels: m.labels.record, value: m.request });
        break;
      case METRIC_NAMES.responseMessages:
        for (const m of this.#messages.values())
          out.push({ labels: m.labels.record, value: m.response });
        break;
      case METRIC_NAMES.build:
        if (this.build !== undefined) {
          out.push({ labels: { component: this.build.component, tag: this.build.tag }, value: 1 });
        }
        break;
      default:
        break;
    }
    return out;
  }

  /** A snapshot of one histogram family by name. */
  histogram(name: string): HistogramSample[] {
    const out: HistogramSample[] = [];
    for (const s of this.#requests.values()) {
      let h: Hist | undefined;
      if (name === METRIC_NAMES.requestDuration) h = s.hasDuration ? s.duration : undefined;
      else if (name === METRIC_NAMES.requestBytes) h = s.hasBytes ? s.requestBytes : undefined;
      else if (name === METRIC_NAMES.responseBytes) h = s.hasBytes ? s.responseBytes : undefined;
      if (h !== undefined) {
        out.push({
          labels: s.labels.record,
          cumulative: h.cumulative(),
          sum: h.sum,
          count: h.count,
        });
      }
    }
    return out;
  }

  /** Every family, in a stable order (families without series are included, empty). */
  collect(): MetricFamily[] {
    const c = (name: string, type: "counter" | "gauge" = "counter"): MetricFamily => ({
      name,
      help: METRIC_HELP[name] ?? name,
      type,
      samples: this.counter(name),
    });
    const h = (name: string, unit: "ms" | "By"): MetricFamily => ({
      name,
      help: METRIC_HELP[name] ?? name,
      type: "histogram",
      unit,
      buckets: this.buckets,
      samples: this.histogram(name),
    });
    return [
      c(METRIC_NAMES.build, "gauge"),
      c(METRIC_NAMES.tcpOpened),
      c(METRIC_NAMES.tcpClosed),
      c(METRIC_NAMES.tcpFailed),
      c(METRIC_NAMES.tcpReceivedBytes),
      c(METRIC_NAMES.tcpSentBytes),
      c(METRIC_NAMES.requestsTotal),
      h(METRIC_NAMES.requestDuration, "ms"),
      h(METRIC_NAMES.requestBytes, "By"),
      h(METRIC_NAMES.responseBytes, "By"),
      c(METRIC_NAMES.requestMessages),
      c(METRIC_NAMES.responseMessages),
    ];
  }
}
