/**
 * Bridge to OpenTelemetry metrics through `@opentelemetry/api` only (no SDK dependency). Counters
 * become asynchronous (observable) counters read from {@link IstioMetrics} at collection time;
 * the histograms are synchronous OTel histograms fed as requests are recorded, with Envoy's
 * bucket boundaries as advice. Instrument names are Istio's, verbatim. Universal.
 */
import type {
  Attributes,
  BatchObservableResult,
  Histogram,
  Meter,
  Observable,
} from "@opentelemetry/api";
import { ValueType } from "@opentelemetry/api";
import { METRIC_NAMES } from "./labels.js";
import { type IstioMetrics, METRIC_HELP, type RequestRecord } from "./recorder.js";

/** What {@link bridgeToOpenTelemetry} set up. */
export interface OpenTelemetryBridge {
  /** Stops observing and forwarding (instruments stay registered with the meter). */
  close(): void;
}

const COUNTERS: readonly string[] = [
  METRIC_NAMES.tcpOpened,
  METRIC_NAMES.tcpClosed,
  METRIC_NAMES.tcpFailed,
  METRIC_NAMES.tcpReceivedBytes,
  METRIC_NAMES.tcpSentBytes,
  METRIC_NAMES.requestsTotal,
  METRIC_NAMES.requestMessages,
  METRIC_NAMES.responseMessages,
];

/**
 * Exposes `metrics` through an OpenTelemetry `Meter` (e.g. `metrics.getMeter("ambientkit")`).
 * Histogram observations start at bridging time; counters report their full cumulative values.
 */
export function bridgeToOpenTelemetry(metrics: IstioMetrics, meter: Meter): OpenTelemetryBridge {
  const observables: Observable[] = [];
  const counters = new Map<string, Observable>();
  for (const name of COUNTERS) {
    const unit = name.endsWith("_bytes_total") ? "By" : "1";
    const o = meter.createObservableCounter(name, {
      description: METRIC_HELP[name] ?? name,
      unit,
      valueType: ValueType.INT,
    });
    counters.set(name, o);
    observables.push(o);
  }
  let build: Observable | undefined;
  if (metrics.build !== undefined) {
    build = meter.createObservableGauge(METRIC_NAMES.build, {
      description: METRIC_HELP[METRIC_NAMES.build] ?? "",
      valueType: ValueType.INT,
    });
    observables.push(build);
  }
  const callback = (result: BatchObservableResult): void => {
    for (const [name, o] of counters) {
      for (const s of metrics.counter(name)) result.observe(o, s.value, s.labels as Attributes);
    }
    if (build !== undefined) {
      for (const s of metrics.counter(METRIC_NAMES.build)) {
        result.observe(build, s.value, s.labels as Attributes);
      }
    }
  };
  meter.addBatchObservableCallback(callback, observables);

  const advice = { explicitBucketBoundaries: [...metrics.buckets] };
  const duration: Histogram = meter.createHistogram(METRIC_NAMES.requestDuration, {
    description: METRIC_HELP[METRIC_NAMES.requestDuration] ?? "",
    unit: "ms",
    advice,
  });
  const reqBytes: Histogram = meter.createHistogram(METRIC_NAMES.requestBytes, {
    description: METRIC_HELP[METRIC_NAMES.requestBytes] ?? "",
    unit: "By",
    advice,
  });
  const respBytes: Histogram = meter.createHistogram(METRIC_NAMES.responseBytes, {
    description: METRIC_HELP[METRIC_NAMES.responseBytes] ?? "",
    unit: "By",
    advice,
  });
  const off = metrics._onRequest((labels: Readonly<Record<string, string>>, r: RequestRecord) => {
    const attrs = labels as Attributes;
    const d = r.durationMs;
    if (d !== undefined && d >= 0 && Number.isFinite(d)) duration.record(Math.trunc(d), attrs);
    const rq = r.requestBytes;
    const rs = r.responseBytes;
    if (rq !== undefined && rs !== undefined && rq >= 0 && rs >= 0) {
      reqBytes.record(rq, attrs);
      respBytes.record(rs, attrs);
    }
  });
  let closed = false;
  return {
    close(): void {
      if (closed) return;
      closed = true;
      off();
      meter.removeBatchObservableCallback(callback, observables);
    },
  };
}
