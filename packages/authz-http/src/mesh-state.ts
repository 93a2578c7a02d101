// The mesh's workload state as this package reads it: structurally what @ambientkit/xds's
// MeshStateStore offers, so the universal entry point depends on no xDS client.
import type { ZtunnelAuthorization } from "@ambientkit/authz";
import type { PolicySource } from "./policy-set.js";

/** The fields of a mesh Workload that identify a caller. */
export interface MeshWorkload {
  readonly uid: string;
  readonly name: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly trustDomain: string;
  readonly authorizationPolicies: readonly string[];
}

/** Source IP → workload: ztunnel's own answer to "who is calling". MeshStateStore fits. */
export interface WorkloadLookup {
  workloadByIp(ip: string, network?: string): MeshWorkload | undefined;
}

/** The part of MeshStateStore a live policy source needs. */
export interface MeshStateLike extends WorkloadLookup {
  policies(): Iterable<ZtunnelAuthorization>;
  workloads(): Iterable<MeshWorkload>;
  subscribe(listener: (events: readonly unknown[]) => void): () => void;
  whenReady(kinds?: readonly ("address" | "authorization")[]): Promise<void>;
}

/** `spiffe://td/ns/N/sa/S` of a workload. */
export function meshWorkloadIdentity(w: MeshWorkload): string {
  return `spiffe://${w.trustDomain}/ns/${w.namespace}/sa/${w.serviceAccount}`;
}

/**
 * istiod's Authorization resources as a live policy source: every applied xDS batch (or LOCAL_XDS
 * load) the store reports becomes a new full content. `self` names the app's own workload so its
 * WorkloadSelector-scoped policies (`Workload.authorizationPolicies`) apply.
 */
export function meshStatePolicySource(
  store: MeshStateLike,
  self: { uid?: string; namespace: string; name: string },
  name = "mesh-state",
): PolicySource {
  let unsubscribe: (() => void) | undefined;
  let version = 0;
  let ready = false;
  return {
    name,
    // Resolves at once: a control plane that is not there yet must not hold the app's start. Until
    // the store has a complete first state nothing is published, so the app denies meanwhile
    // (publishing a partial state could miss a DENY that istiod has not sent yet).
    async start(sink) {
      const publish = (): void => {
        if (!ready) return;
        let me: MeshWorkload | undefined;
        for (const w of store.workloads())
          if (
            self.uid ? w.uid === self.uid : w.namespace === self.namespace && w.name === self.name
          )
            me = w;
        sink.update({
          authorizations: [...store.policies()],
          selectedAuthorizations: me?.authorizationPolicies ?? [],
          revision: `xds-${++version}`,
        });
      };
      unsubscribe = store.subscribe(() => publish());
      void store.whenReady().then(() => {
        ready = true;
        publish();
      });
    },
    close() {
      unsubscribe?.();
    },
  };
}
