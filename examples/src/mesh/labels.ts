// Workload metadata → @ambientkit/telemetry's WorkloadInfo / ServiceInfo (cached per object, as
// ztunnel resolves labels once per workload), and ztunnel's baggage for CONNECT requests.
import type { ServiceInfo, WorkloadInfo, WorkloadType } from "@ambientkit/telemetry";
import { type Service, type Workload, workloadIdentity } from "@ambientkit/xds-types";

const WORKLOAD_TYPES = new Set(["deployment", "cronjob", "job", "pod"]);
const wlCache = new WeakMap<Workload, WorkloadInfo>();
const svcCache = new WeakMap<Service, ServiceInfo>();

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

/** ztunnel's source baggage (`k8s.*`, `service.*`), empty values omitted. */
export function workloadBaggage(w: Workload): Record<string, string> {
  const type = WORKLOAD_TYPES.has(w.workloadType) ? w.workloadType : "pod";
  const out: Record<string, string> = {};
  const put = (k: string, v: string): void => {
    if (v) out[k] = v;
  };
  put("k8s.cluster.name", w.clusterId || "Kubernetes");
  put("k8s.namespace.name", w.namespace);
  put(`k8s.${type}.name`, w.workloadName || w.name);
  put("service.name", w.canonicalName || w.workloadName || w.name);
  put("service.version", w.canonicalRevision || "latest");
  return out;
}
