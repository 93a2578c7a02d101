// One LOCAL_XDS workload entry as YAML text, for the examples' tests and the soak, which each write
// a small mesh by hand: the same fields a pod of the demo has (uid, identity, HBONE, canonical
// name and revision), only what differs is passed in.

/** A pod of a hand-written mesh. */
export interface WorkloadYaml {
  readonly name: string;
  readonly namespace: string;
  readonly ip: string;
  readonly node: string;
  /** `namespace/hostname` → port map (service port → target port). */
  readonly services?: Readonly<Record<string, Readonly<Record<number, number>>>>;
  /** The workload's own waypoint, e.g. `/127.0.130.9` (HBONE port 15008). */
  readonly waypoint?: string;
}

/** The entry as a `workloads:` list item (starts with a newline). */
export function workloadYaml(w: WorkloadYaml): string {
  const services = Object.entries(w.services ?? {});
  const svc =
    services.length === 0
      ? " {}"
      : services
          .map(
            ([host, ports]) =>
              `\n      ${host}: { ${Object.entries(ports)
                .map(([p, t]) => `${p}: ${t}`)
                .join(", ")} }`,
          )
          .join("");
  return `
  - uid: k//Pod/${w.namespace}/${w.name}
    name: ${w.name}
    namespace: ${w.namespace}
    serviceAccount: ${w.name}
    trustDomain: cluster.local
    workloadIps: ["${w.ip}"]
    protocol: HBONE
    node: ${w.node}
    workloadName: ${w.name}
    canonicalName: ${w.name}
    canonicalRevision: v1
    services:${svc}${w.waypoint ? `\n    waypoint: { destination: ${w.waypoint}, hboneMtlsPort: 15008 }` : ""}`;
}
