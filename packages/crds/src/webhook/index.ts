// istiod's validating webhook for the Istio kinds other than the three security kinds (those are
// in ../istio-semantics.ts): one entry point, dispatching by kind.
import type { InternalIssue } from "../model.js";
import { type Obj, obj } from "./common.js";
import { checkDestinationRule } from "./destination-rule.js";
import { checkEnvoyFilter } from "./envoy-filter.js";
import { checkProxyConfig, checkTrafficExtension, checkWasmPlugin } from "./extensions.js";
import { checkGateway } from "./gateway.js";
import { checkIstioMetadata, webhookName, webhookNamespace } from "./metadata.js";
import { Report } from "./report.js";
import { checkServiceEntry } from "./service-entry.js";
import { checkSidecar } from "./sidecar.js";
import { checkTelemetry } from "./telemetry.js";
import { checkVirtualService } from "./virtual-service.js";
import { checkWorkloadEntry, checkWorkloadGroup } from "./workload.js";

interface Context {
  spec: Obj;
  name: string;
  namespace: string;
  labels: Obj;
  annotations: Obj;
}

const CHECKS: Record<string, (r: Report, c: Context) => void> = {
  VirtualService: (r, c) => checkVirtualService(r, c.spec, c.namespace, c.annotations),
  DestinationRule: (r, c) => checkDestinationRule(r, c.spec, c.namespace),
  Gateway: (r, c) => checkGateway(r, c.spec, c.name, c.annotations),
  ServiceEntry: (r, c) => checkServiceEntry(r, c.spec, c.namespace, c.labels),
  Sidecar: (r, c) => checkSidecar(r, c.spec, c.namespace),
  // ValidateWorkloadEntry allows FQDN addresses: without its ServiceEntry the resolution is unknown.
  WorkloadEntry: (r, c) => checkWorkloadEntry(r, ["spec"], c.spec, undefined, true),
  WorkloadGroup: (r, c) => checkWorkloadGroup(r, c.spec),
  EnvoyFilter: (r, c) => checkEnvoyFilter(r, c.spec),
  Telemetry: (r, c) => checkTelemetry(r, c.spec),
  ProxyConfig: (r, c) => checkProxyConfig(r, c.spec),
  WasmPlugin: (r, c) => checkWasmPlugin(r, c.spec),
  TrafficExtension: (r, c) => checkTrafficExtension(r, c.spec),
};

/** Istio kinds whose webhook checks live here. */
export const WEBHOOK_KINDS: ReadonlySet<string> = new Set(Object.keys(CHECKS));

/**
 * Runs istiod's webhook validation for `doc` (a kind in WEBHOOK_KINDS, already schema-valid) and
 * appends IST0106 errors and IST0133 warnings to `out`.
 */
export function checkWebhook(
  kind: string,
  doc: Record<string, unknown>,
  out: InternalIssue[],
): void {
  const check = CHECKS[kind];
  if (check === undefined) return;
  const meta = obj(doc.metadata) ?? {};
  const c: Context = {
    spec: obj(doc.spec) ?? {},
    name: webhookName(meta),
    namespace: webhookNamespace(meta),
    labels: obj(meta.labels) ?? {},
    annotations: obj(meta.annotations) ?? {},
  };
  const r = new Report(out);
  if (checkIstioMetadata(r, kind, doc)) return;
  check(r, c);
}
