// The mesh state a ztunnel serves from — workloads, services and L4 policies — fed by either source
// (istiod over delta xDS, or a LOCAL_XDS file) through the one wire→domain conversion of
// @ambientkit/xds-types. Every update is all-or-nothing: a batch is converted completely before any
// of it is applied, so a bad push never leaves half a state.
import {
  type AddressResource,
  type Authorization,
  authorizationKey,
  type LocalConfig,
  networkAddressKey,
  type Service,
  serviceKey,
  type Workload,
} from "@ambientkit/xds-types";

/**
 * A resend of an unchanged resource (a file reloaded, istiod repeating itself) is no change: no
 * event, so nothing downstream re-checks connections for it. istiod's resource versions are
 * content hashes, so only a resend under the same version is compared by content (which costs the
 * size of the resource); a new version is a change.
 */
function unchanged(
  versions: Map<string, string>,
  name: string,
  version: string,
  a: unknown,
  b: unknown,
): boolean {
  return versions.get(name) === version && JSON.stringify(a) === JSON.stringify(b);
}

/** The two workload-API resource kinds. */
export type ResourceKind = "address" | "authorization";

/** One change the store made; listeners see them after the whole batch is applied. */
export type StateEvent =
  | {
      readonly kind: "workload";
      readonly op: "add" | "update";
      readonly key: string;
      readonly value: Workload;
      readonly previous?: Workload;
    }
  | {
      readonly kind: "workload";
      readonly op: "remove";
      readonly key: string;
      readonly previous: Workload;
    }
  | {
      readonly kind: "service";
      readonly op: "add" | "update";
      readonly key: string;
      readonly value: Service;
      readonly previous?: Service;
    }
  | {
      readonly kind: "service";
      readonly op: "remove";
      readonly key: string;
      readonly previous: Service;
    }
  | {
      readonly kind: "policy";
      readonly op: "add" | "update";
      readonly key: string;
      readonly value: Authorization;
      readonly previous?: Authorization;
    }
  | {
      readonly kind: "policy";
      readonly op: "remove";
      readonly key: string;
      readonly previous: Authorization;
    };

/** A converted resource with the name and version the control plane gave it. */
export interface Named<T> {
  readonly name: string;
  readonly version: string;
  readonly value: T;
}

export type StateListener = (events: readonly StateEvent[]) => void;

/**
 * Workloads by uid and by `network/ip`, services by `namespace/hostname` and by VIP, policies by
 * `namespace/name`; the version of every resource (sent back as `initial_resource_versions` on
 * reconnect); readiness per resource kind.
 */
export class MeshStateStore {
  readonly #workloads = new Map<string, Workload>();
  readonly #workloadByAddress = new Map<string, Workload>();
  readonly #services = new Map<string, Service>();
  readonly #serviceByVip = new Map<string, Service>();
  readonly #policies = new Map<string, Authorization>();
  /** Address resource name → what it names (a workload uid or a service key). */
  readonly #addressNames = new Map<string, { kind: "workload" | "service"; key: string }>();
  readonly #versions: Record<ResourceKind, Map<string, string>> = {
    address: new Map(),
    authorization: new Map(),
  };
  readonly #listeners = new Set<StateListener>();
  readonly #ready = new Set<ResourceKind>();
  readonly #readyWaiters: Array<{ kinds: readonly ResourceKind[]; resolve: () => void }> = [];

  // ---------- reads ----------

  get workloadCount(): number {
    return this.#workloads.size;
  }
  get serviceCount(): number {
    return this.#services.size;
  }
  get policyCount(): number {
    return this.#policies.size;
  }
  workloadByUid(uid: string): Workload | undefined {
    return this.#workloads.get(uid);
  }
  /** By IP on a network (`""` is the default network). */
  workloadByIp(ip: string, network = ""): Workload | undefined {
    return this.#workloadByAddress.get(`${network}/${ip}`);
  }
  service(key: string): Service | undefined {
    return this.#services.get(key);
  }
  serviceByVip(ip: string, network = ""): Service | undefined {
    return this.#serviceByVip.get(`${network}/${ip}`);
  }
  policy(key: string): Authorization | undefined {
    return this.#policies.get(key);
  }
  workloads(): IterableIterator<Workload> {
    return this.#workloads.values();
  }
  services(): IterableIterator<Service> {
    return this.#services.values();
  }
  policies(): IterableIterator<Authorization> {
    return this.#policies.values();
  }
  /** Resource name → version, as `initial_resource_versions` wants it. */
  versions(kind: ResourceKind): ReadonlyMap<string, string> {
    return this.#versions[kind];
  }
  /** The whole state in LOCAL_XDS shape (config dumps, tests). */
  snapshot(): LocalConfig {
    return {
      workloads: [...this.#workloads.values()],
      services: [...this.#services.values()],
      policies: [...this.#policies.values()],
    };
  }

  // ---------- readiness ----------

  /** True once every kind in `kinds` has had its first update applied. */
  isReady(kinds: readonly ResourceKind[] = ["address", "authorization"]): boolean {
    return kinds.every((k) => this.#ready.has(k));
  }
  /** Resolves once every kind in `kinds` has had its first update applied. */
  whenReady(kinds: readonly ResourceKind[] = ["address", "authorization"]): Promise<void> {
    if (this.isReady(kinds)) return Promise.resolve();
    return new Promise((resolve) => this.#readyWaiters.push({ kinds, resolve }));
  }
  #markReady(kind: ResourceKind): void {
    if (this.#ready.has(kind)) return;
    this.#ready.add(kind);
    for (let i = this.#readyWaiters.length - 1; i >= 0; i--) {
      const w = this.#readyWaiters[i];
      if (w !== undefined && this.isReady(w.kinds)) {
        this.#readyWaiters.splice(i, 1);
        w.resolve();
      }
    }
  }

  // ---------- events ----------

  /** Calls `listener` with the events of every applied batch; returns the unsubscribe function. */
  subscribe(listener: StateListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
  #emit(events: StateEvent[]): void {
    if (events.length === 0) return;
    for (const l of this.#listeners) {
      try {
        l(events);
      } catch {
        // A listener's bug must not stop the others nor undo an applied state.
      }
    }
  }

  // ---------- writes ----------

  /**
   * Applies converted Address resources and removals by resource name (a delta). With `replace`,
   * every address not in `upserts` is removed (a state-of-the-world load). Costs O(changed).
   */
  applyAddresses(
    upserts: readonly Named<AddressResource>[],
    removed: readonly string[],
    options: { replace?: boolean } = {},
  ): StateEvent[] {
    const events: StateEvent[] = [];
    if (options.replace === true) {
      const keep = new Set(upserts.map((u) => u.name));
      for (const name of [...this.#addressNames.keys()])
        if (!keep.has(name)) this.#removeAddress(name, events);
    }
    for (const name of removed) this.#removeAddress(name, events);
    for (const u of upserts) {
      const prior = this.#addressNames.get(u.name);
      if (u.value.kind === "workload") {
        const w = u.value.workload;
        if (prior !== undefined && (prior.kind !== "workload" || prior.key !== w.uid))
          this.#removeAddress(u.name, events);
        const previous = this.#workloads.get(w.uid);
        const same =
          previous !== undefined &&
          unchanged(this.#versions.address, u.name, u.version, previous, w);
        this.#versions.address.set(u.name, u.version);
        if (same) {
          this.#addressNames.set(u.name, { kind: "workload", key: w.uid });
          continue;
        }
        if (previous !== undefined) this.#unindexWorkload(previous);
        this.#workloads.set(w.uid, w);
        for (const ip of w.workloadIps) this.#workloadByAddress.set(`${w.network}/${ip}`, w);
        this.#addressNames.set(u.name, { kind: "workload", key: w.uid });
        events.push(
          previous === undefined
            ? { kind: "workload", op: "add", key: w.uid, value: w }
            : { kind: "workload", op: "update", key: w.uid, value: w, previous },
        );
      } else {
        const s = u.value.service;
        const key = serviceKey(s);
        if (prior !== undefined && (prior.kind !== "service" || prior.key !== key))
          this.#removeAddress(u.name, events);
        const previous = this.#services.get(key);
        const same =
          previous !== undefined &&
          unchanged(this.#versions.address, u.name, u.version, previous, s);
        this.#versions.address.set(u.name, u.version);
        if (same) {
          this.#addressNames.set(u.name, { kind: "service", key });
          continue;
        }
        if (previous !== undefined) this.#unindexService(previous);
        this.#services.set(key, s);
        for (const vip of s.vips) this.#serviceByVip.set(networkAddressKey(vip), s);
        this.#addressNames.set(u.name, { kind: "service", key });
        events.push(
          previous === undefined
            ? { kind: "service", op: "add", key, value: s }
            : { kind: "service", op: "update", key, value: s, previous },
        );
      }
    }
    this.#markReady("address");
    this.#emit(events);
    return events;
  }

  /** Applies converted Authorization resources and removals by name (`namespace/name`). */
  applyAuthorizations(
    upserts: readonly Named<Authorization>[],
    removed: readonly string[],
    options: { replace?: boolean } = {},
  ): StateEvent[] {
    const events: StateEvent[] = [];
    const remove = (name: string): void => {
      const previous = this.#policies.get(name);
      this.#versions.authorization.delete(name);
      if (previous === undefined) return;
      this.#policies.delete(name);
      events.push({ kind: "policy", op: "remove", key: name, previous });
    };
    if (options.replace === true) {
      const keep = new Set(upserts.map((u) => authorizationKey(u.value)));
      for (const name of [...this.#policies.keys()]) if (!keep.has(name)) remove(name);
    }
    for (const name of removed) remove(name);
    for (const u of upserts) {
      const key = authorizationKey(u.value);
      const previous = this.#policies.get(key);
      const same =
        previous !== undefined &&
        unchanged(this.#versions.authorization, u.name, u.version, previous, u.value);
      this.#versions.authorization.set(u.name, u.version);
      if (same) continue;
      this.#policies.set(key, u.value);
      events.push(
        previous === undefined
          ? { kind: "policy", op: "add", key, value: u.value }
          : { kind: "policy", op: "update", key, value: u.value, previous },
      );
    }
    this.#markReady("authorization");
    this.#emit(events);
    return events;
  }

  /**
   * Replaces the whole state with a LOCAL_XDS config (the file source), as one batch per kind. Every
   * resource gets the same `version`, so a reload reports only what really changed.
   */
  loadLocalConfig(config: LocalConfig, version = "local"): StateEvent[] {
    const addresses: Named<AddressResource>[] = [
      ...config.workloads.map((workload) => ({
        name: workload.uid,
        version,
        value: { kind: "workload" as const, workload },
      })),
      ...config.services.map((service) => ({
        name: serviceKey(service),
        version,
        value: { kind: "service" as const, service },
      })),
    ];
    const policies = config.policies.map((p) => ({ name: authorizationKey(p), version, value: p }));
    return [
      ...this.applyAddresses(addresses, [], { replace: true }),
      ...this.applyAuthorizations(policies, [], { replace: true }),
    ];
  }

  #removeAddress(name: string, events: StateEvent[]): void {
    const named = this.#addressNames.get(name);
    this.#versions.address.delete(name);
    if (named === undefined) return;
    this.#addressNames.delete(name);
    if (named.kind === "workload") {
      const previous = this.#workloads.get(named.key);
      if (previous === undefined) return;
      this.#workloads.delete(named.key);
      this.#unindexWorkload(previous);
      events.push({ kind: "workload", op: "remove", key: named.key, previous });
    } else {
      const previous = this.#services.get(named.key);
      if (previous === undefined) return;
      this.#services.delete(named.key);
      this.#unindexService(previous);
      events.push({ kind: "service", op: "remove", key: named.key, previous });
    }
  }
  #unindexWorkload(w: Workload): void {
    for (const ip of w.workloadIps) {
      const k = `${w.network}/${ip}`;
      if (this.#workloadByAddress.get(k) === w) this.#workloadByAddress.delete(k);
    }
  }
  #unindexService(s: Service): void {
    for (const vip of s.vips) {
      const k = networkAddressKey(vip);
      if (this.#serviceByVip.get(k) === s) this.#serviceByVip.delete(k);
    }
  }
}
