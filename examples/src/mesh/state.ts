// The indexed view of a LOCAL_XDS config that the reference ztunnel and waypoint look things up in:
// workloads by IP, services by VIP / key / name, endpoints per service, and ztunnel's L4 policy
// selection (global + namespace + the workload's own WorkloadSelector policies, `assert_rbac`).
import {
  type CompiledZtunnelAuthorization,
  compileZtunnelAuthorization,
  evaluateZtunnelAuthorizations,
  type ZtunnelConnection,
  type ZtunnelRbacResult,
} from "@ambientkit/authz";
import {
  authorizationKey,
  type GatewayAddress,
  isNetworkAddress,
  type LocalConfig,
  type PortMap,
  type Service,
  serviceKey,
  type Workload,
  workloadIdentity,
} from "@ambientkit/xds-types";

/** One endpoint of a Service: the workload and its port map for that Service. */
export interface ServiceEndpoint {
  readonly workload: Workload;
  readonly ports: PortMap;
}

/** Where an HBONE hop to a waypoint or gateway goes. */
export interface GatewayTarget {
  readonly workload: Workload;
  readonly ip: string;
  readonly port: number;
  /** Expected server identities: the workload identity plus the Service SANs. */
  readonly identities: readonly string[];
}

/** ztunnel's illegal target ports (SelfCall): 15001, 15006, 15008 and SOCKS5's 15080. */
export const ILLEGAL_PORTS: ReadonlySet<number> = new Set([15001, 15006, 15008, 15080]);

export class MeshState {
  readonly config: LocalConfig;
  readonly #byIp = new Map<string, Workload>();
  readonly #byUid = new Map<string, Workload>();
  readonly #byName = new Map<string, Workload>();
  readonly #svcByVip = new Map<string, Service>();
  readonly #svcByKey = new Map<string, Service>();
  readonly #svcByName = new Map<string, Service>();
  readonly #svcByHost = new Map<string, Service>();
  readonly #endpoints = new Map<string, ServiceEndpoint[]>();
  readonly #policies = new Map<string, CompiledZtunnelAuthorization>();

  constructor(config: LocalConfig) {
    this.config = config;
    for (const w of config.workloads) {
      for (const ip of w.workloadIps) this.#byIp.set(ip, w);
      this.#byUid.set(w.uid || w.name, w);
      this.#byName.set(`${w.namespace}/${w.name}`, w);
    }
    for (const s of config.services) {
      const key = serviceKey(s);
      this.#svcByKey.set(key, s);
      this.#svcByName.set(`${s.namespace}/${s.name}`, s);
      this.#svcByHost.set(s.hostname, s);
      for (const v of s.vips) this.#svcByVip.set(v.address, s);
      const eps: ServiceEndpoint[] = [];
      for (const [uid, ep] of Object.entries(s.endpoints)) {
        const w = this.#byUid.get(uid);
        if (w) eps.push({ workload: w, ports: ep.port });
      }
      this.#endpoints.set(key, eps);
    }
    for (const w of config.workloads) {
      for (const [key, ports] of Object.entries(w.services)) {
        const list = this.#endpoints.get(key);
        if (list && !list.some((e) => e.workload === w)) list.push({ workload: w, ports });
      }
    }
    for (const p of config.policies)
      this.#policies.set(authorizationKey(p), compileZtunnelAuthorization(p));
  }

  workloadByIp(ip: string): Workload | undefined {
    return this.#byIp.get(ip);
  }
  workloadByName(namespace: string, name: string): Workload | undefined {
    return this.#byName.get(`${namespace}/${name}`);
  }
  serviceByVip(ip: string): Service | undefined {
    return this.#svcByVip.get(ip);
  }
  serviceByKey(key: string): Service | undefined {
    return this.#svcByKey.get(key);
  }
  serviceByName(namespace: string, name: string): Service | undefined {
    return this.#svcByName.get(`${namespace}/${name}`);
  }
  serviceByHostname(hostname: string): Service | undefined {
    return this.#svcByHost.get(hostname);
  }
  endpoints(service: Service): readonly ServiceEndpoint[] {
    return this.#endpoints.get(serviceKey(service)) ?? [];
  }

  /** The SPIFFE identities a destination may present: its workload identity plus the Service SANs. */
  expectedIdentities(workload: Workload, service?: Service): string[] {
    const ids = [workloadIdentity(workload), ...(service?.subjectAltNames ?? [])];
    return [...new Set(ids)];
  }

  /** Resolves a waypoint/gateway address to a workload (a Service destination picks an endpoint). */
  resolveGateway(g: GatewayAddress, random: () => number = Math.random): GatewayTarget | undefined {
    const d = g.destination;
    if (isNetworkAddress(d)) {
      const w = this.#byIp.get(d.address);
      if (w)
        return {
          workload: w,
          ip: d.address,
          port: g.hboneMtlsPort,
          identities: this.expectedIdentities(w),
        };
      const svc = this.#svcByVip.get(d.address);
      return svc ? this.#gatewayFromService(svc, g.hboneMtlsPort, random) : undefined;
    }
    const svc = this.#svcByKey.get(`${d.namespace}/${d.hostname}`);
    return svc ? this.#gatewayFromService(svc, g.hboneMtlsPort, random) : undefined;
  }

  #gatewayFromService(svc: Service, port: number, random: () => number): GatewayTarget | undefined {
    const ep = pickWeighted(
      this.endpoints(svc).filter((e) => e.workload.status === "Healthy"),
      random,
    );
    const ip = ep?.workload.workloadIps[0];
    if (!ep || ip === undefined) return undefined;
    return {
      workload: ep.workload,
      ip,
      port,
      identities: this.expectedIdentities(ep.workload, svc),
    };
  }

  /** Picks a healthy endpoint of `svc` for `svcPort` (weighted by capacity) and its target port. */
  pickEndpoint(
    svc: Service,
    svcPort: number,
    random: () => number = Math.random,
  ): { workload: Workload; ip: string; port: number } | undefined {
    const allowUnhealthy = svc.loadBalancer?.healthPolicy === "AllowAll";
    const candidates: { workload: Workload; capacity: number; port: number }[] = [];
    for (const ep of this.endpoints(svc)) {
      if (!allowUnhealthy && ep.workload.status !== "Healthy") continue;
      const port =
        ep.ports[svcPort] ||
        svc.ports[svcPort] ||
        (ep.workload.applicationTunnel?.port ? svcPort : 0);
      if (!port) continue;
      candidates.push({ workload: ep.workload, capacity: ep.workload.capacity, port });
    }
    const c = pickWeighted(candidates, random);
    const ip = c?.workload.workloadIps[0];
    return c && ip !== undefined ? { workload: c.workload, ip, port: c.port } : undefined;
  }

  /** The L4 policies ztunnel applies to `workload`: Global, its namespace's, and its own selector ones. */
  policiesFor(workload: Workload): CompiledZtunnelAuthorization[] {
    const out: CompiledZtunnelAuthorization[] = [];
    for (const [key, p] of this.#policies) {
      const a = p.authorization;
      if (
        a.scope === "Global" ||
        (a.scope === "Namespace" && a.namespace === workload.namespace) ||
        (a.scope === "WorkloadSelector" && workload.authorizationPolicies.includes(key))
      )
        out.push(p);
    }
    return out;
  }

  /** ztunnel's `assert_rbac` for a connection to `workload`. */
  authorize(workload: Workload, conn: ZtunnelConnection): ZtunnelRbacResult {
    return evaluateZtunnelAuthorizations(this.policiesFor(workload), conn);
  }
}

/** Random choice weighted by `capacity` (default 1). */
export function pickWeighted<T extends { capacity?: number; workload?: { capacity: number } }>(
  items: readonly T[],
  random: () => number,
): T | undefined {
  if (items.length <= 1) return items[0];
  const weight = (t: T): number => Math.max(0, t.capacity ?? t.workload?.capacity ?? 1);
  const total = items.reduce((n, t) => n + weight(t), 0);
  if (total <= 0) return items[Math.floor(random() * items.length)];
  let r = random() * total;
  for (const t of items) {
    r -= weight(t);
    if (r < 0) return t;
  }
  return items[items.length - 1];
}

/** A small deterministic PRNG (mulberry32) for seeded load balancing and route splits. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
