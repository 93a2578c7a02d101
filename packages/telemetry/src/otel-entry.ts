// @ambientkit/telemetry/otel — the OpenTelemetry metrics bridge. Needs `@opentelemetry/api` (an
// optional peer dependency: the root and `./prometheus` do not).
export { bridgeToOpenTelemetry, type OpenTelemetryBridge } from "./otel.js";
