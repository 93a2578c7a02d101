// The xDS node ztunnel presents to istiod (`ztunnel:src/xds/client.rs`, `src/config.rs`): istiod
// keys per-proxy state on the id and reads the pod's identity and IPs from the metadata.
import { create, type JsonObject } from "@bufbuild/protobuf";
import { type Node, NodeSchema } from "./gen/discovery_pb.js";

/** What identifies a ztunnel (or any workload-API client) to istiod. */
export interface ZtunnelNodeOptions {
  /** `INSTANCE_IP`: the ztunnel pod's IP. */
  readonly instanceIp: string;
  /** `POD_NAME` of the ztunnel pod. */
  readonly podName: string;
  /** `POD_NAMESPACE` of the ztunnel pod (usually istio-system). */
  readonly podNamespace: string;
  /** `NODE_NAME`: the Kubernetes node. */
  readonly nodeName?: string;
  /** `CLUSTER_ID` (ztunnel's default `Kubernetes`). */
  readonly clusterId?: string;
  /** `CLUSTER_DOMAIN` (default `cluster.local`). */
  readonly clusterDomain?: string;
  /** Extra metadata, e.g. `ISTIO_META_*` values (strings) or `ISTIO_METAJSON_*` ones (JSON). */
  readonly metadata?: Readonly<Record<string, string | number | boolean | JsonObject>>;
}

/** `ztunnel~{INSTANCE_IP}~{POD_NAME}.{POD_NAMESPACE}~{POD_NAMESPACE}.svc.{CLUSTER_DOMAIN}`. */
export function ztunnelNodeId(o: ZtunnelNodeOptions): string {
  const domain = o.clusterDomain ?? "cluster.local";
  return `ztunnel~${o.instanceIp}~${o.podName}.${o.podNamespace}~${o.podNamespace}.svc.${domain}`;
}

/** The Node message with ztunnel's id and metadata (NAME, NAMESPACE, INSTANCE_IPS, NODE_NAME, …). */
export function ztunnelNode(o: ZtunnelNodeOptions): Node {
  const metadata: JsonObject = {
    NAME: o.podName,
    NAMESPACE: o.podNamespace,
    INSTANCE_IPS: o.instanceIp,
    CLUSTER_ID: o.clusterId ?? "Kubernetes",
  };
  if (o.nodeName !== undefined) metadata.NODE_NAME = o.nodeName;
  for (const [k, v] of Object.entries(o.metadata ?? {})) metadata[k] = v;
  return create(NodeSchema, { id: ztunnelNodeId(o), metadata });
}
