// @ambientkit/telemetry — Istio's standard metrics (exact names, labels and buckets), ztunnel's
// access log, Istio peer-metadata baggage and W3C traceparent. Universal: nothing here imports
// `node:`; the prom-client adapter is the `@ambientkit/telemetry/prometheus` subpath.

// Access log
export {
  ACCESS_LOG_DENY_MESSAGE,
  ACCESS_LOG_MESSAGE,
  ACCESS_LOG_OPEN_MESSAGE,
  ACCESS_LOG_SCOPE,
  type AccessLogger,
  type AccessLogLevel,
  type ConnectionAccessRecord,
  type ConnectionAddresses,
  type ConnectionOpenedRecord,
  connectionAccessRecord,
  connectionOpenedRecord,
  type EarlyDenyRecord,
  formatAccessLogJson,
  formatAccessLogPlain,
  logConnection,
  logEarlyDeny,
  socketAddr,
} from "./access-log.js";
// Baggage and trace context
export {
  BAGGAGE_MAX_LENGTH,
  baggageFromWorkload,
  formatBaggage,
  type ParseBaggageOptions,
  type PeerBaggage,
  parseBaggage,
  tryFormatBaggage,
  tryParseBaggage,
  workloadFromBaggage,
} from "./baggage.js";
// Errors
export { TelemetryError, type TelemetryErrorCode, type TelemetryResult } from "./errors.js";
// Prometheus text without prom-client (universal)
export { formatPrometheusText, PROMETHEUS_CONTENT_TYPE } from "./exposition.js";
// Tunnel hooks adapter (the shape @ambientkit/hbone's hooks take)
export {
  type TunnelCloseSummary,
  type TunnelHooks,
  type TunnelLike,
  type TunnelRecorderOptions,
  tunnelRecorder,
} from "./hooks.js";
// Label model
export {
  type AccessLogContext,
  ALL_TCP_LABEL_NAMES,
  CANONICAL_NAME_LABELS,
  CANONICAL_REVISION_LABELS,
  type ConnectionSecurityPolicy,
  canonicalService,
  ENVOY_BUCKETS,
  ENVOY_HTTP_LABEL_NAMES,
  ENVOY_PEER_LABEL_NAMES,
  ENVOY_TCP_LABEL_NAMES,
  envoyTcpLabels,
  FAILURE_FLAGS,
  type HttpLabels,
  httpLabels,
  type KubernetesWorkload,
  LATEST,
  type LabelFlavor,
  LabelSet,
  METRIC_NAMES,
  NO_FLAGS,
  namespaceFromPrincipal,
  type Reporter,
  type RequestProtocol,
  type ResponseFlag,
  type ServiceInfo,
  TcpLabelCache,
  type TcpLabels,
  type TrafficContext,
  tcpLabels,
  UNKNOWN,
  type WorkloadInfo,
  type WorkloadType,
  workloadFromKubernetes,
  ZTUNNEL_LABEL_NAMES,
  ZTUNNEL_LOCALITY_LABEL_NAMES,
  type ZtunnelResponseFlag,
  ztunnelTcpLabels,
} from "./labels.js";
// Recording
export {
  type ConnectionHandle,
  type ConnectionOutcome,
  type CounterSample,
  type HistogramSample,
  IstioMetrics,
  type IstioMetricsOptions,
  METRIC_HELP,
  type MetricFamily,
  type RequestRecord,
} from "./recorder.js";
export {
  formatTraceparent,
  type GenerateTraceparentOptions,
  generateTraceparent,
  isSampled,
  newTraceparentHeader,
  parseTraceparent,
  type RandomBytes,
  TRACEPARENT_LENGTH,
  type TraceParent,
  tryParseTraceparent,
} from "./traceparent.js";
