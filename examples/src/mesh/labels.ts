// Workload metadata → @ambientkit/telemetry's WorkloadInfo / ServiceInfo (cached per object, as
// ztunnel resolves labels once per workload), and ztunnel's baggage for CONNECT requests.
import {
  baggageFromWorkload,
  formatBaggage,
  type ServiceInfo,
  type WorkloadInfo,
  type WorkloadType,
} from "@ambientkit/telemetry";
import { type Service, type Workload, workloadIdentity } from "@ambientkit/xds-types";

const WORKLOAD_TYPES = new Set(["deployment", "cronjob", "job", "pod"]);
const wlCache = new WeakMap<Workload, WorkloadInfo>();
const svcCache = new WeakMap<Service, ServiceInfo>();
const baggageCache = new WeakMap<Workload, string>();

export function workloadInfo(w: Workload): WorkloadInfo {
  let info = wlCache.get(w);
  if (!info) {
    const type = WORKLOAD_TYPES.has(w.workloadType) ? (w.workloadType as WorkloadType) : "pod";
    info = {
      name: w.name,
      workloadName: w.workloadName || w.name,
      workloadType: type,
      namespace: w.namespace,
      canonicalService: w.canonicalName || w.workloadName || w.name,
      canonicalRevision: w.canonicalRevision || "latest",
      identity: workloadIdentity(w),
      clusterId: w.clusterId || "Kubernetes",
    };
    wlCache.set(w, info);
  }
  return info;
}

export function serviceInfo(s: Service): ServiceInfo {
  let info = svcCache.get(s);
  if (!info) {
    info = { hostname: s.hostname, name: s.name, namespace: s.namespace };
    svcCache.set(s, info);
  }
  return info;
}

/** ztunnel's source baggage header (`k8s.*`, `service.*`), formatted once per workload by telemetry. */
export function workloadBaggage(w: Workload): string {
  let header = baggageCache.get(w);
  if (header === undefined) {
    header = formatBaggage(baggageFromWorkload(workloadInfo(w)));
    baggageCache.set(w, header);
  }
  return header;
}
