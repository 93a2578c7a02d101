// Loads a scenario: ztunnel's LOCAL_XDS YAML (workloads, services, Authorization policies) plus,
// optionally, Istio/Gateway API YAML (AuthorizationPolicy, PeerAuthentication, HTTPRoute). Istio
// policies without targetRefs are converted to ztunnel's Authorization form as istiod would and
// appended to the LOCAL_XDS policies; targetRefs policies and HTTPRoutes are for the waypoint.
// Every problem stops loading with an ExampleError naming the file and line.
import { readFile } from "node:fs/promises";
import {
  type AuthorizationPolicy,
  convertAuthorizationPolicy,
  convertPeerAuthentications,
  type PeerAuthentication,
  parsePolicyResource,
  STATIC_STRICT_POLICY_NAME,
} from "@ambientkit/authz";
import { validateYaml } from "@ambientkit/crds";
import {
  type Authorization,
  authorizationKey,
  isNetworkAddress,
  type LocalConfig,
  serviceKey,
} from "@ambientkit/xds-types";
import { parseLocalXds } from "@ambientkit/xds-types/local-xds";
import { LineCounter, parseAllDocuments, parseDocument } from "yaml";
import type { JwtRule } from "../waypoint/jwt.js";
import { configError } from "./errors.js";
import type { HttpRoute } from "./httproute-types.js";

/** A RequestAuthentication as the waypoint uses it (targetRefs + jwtRules). */
export interface RequestAuthenticationResource {
  readonly name: string;
  readonly namespace: string;
  readonly targetRefs: readonly { kind: string; group?: string; name: string }[];
  readonly jwtRules: readonly JwtRule[];
}

/** Mesh-wide settings (istiod's defaults). */
export interface MeshSettingsInput {
  rootNamespace?: string;
  trustDomain?: string;
}

/** A loaded, checked scenario. */
export interface MeshConfig {
  /** LOCAL_XDS config, with the Istio policies istiod would send to ztunnel appended. */
  readonly local: LocalConfig;
  /** Istio AuthorizationPolicies as written (the waypoint evaluates the targetRefs ones). */
  readonly authorizationPolicies: readonly AuthorizationPolicy[];
  readonly peerAuthentications: readonly PeerAuthentication[];
  readonly httpRoutes: readonly HttpRoute[];
  /** RequestAuthentications with targetRefs (JWT validation at the waypoint). */
  readonly requestAuthentications: readonly RequestAuthenticationResource[];
  readonly rootNamespace: string;
  readonly trustDomain: string;
  /**
   * Declared protocols of Service ports, from Kubernetes `Service` documents (`appProtocol`, else
   * the port name's prefix, as istiod reads them), keyed `namespace/name` then service port.
   */
  readonly portProtocols?: ReadonlyMap<string, ReadonlyMap<number, PortProtocol>>;
}

/** A Service port's protocol as the waypoint treats it: HTTP (any version), or opaque TCP. */
export type PortProtocol = "http" | "tcp";

/**
 * istiod's protocol selection for a Kubernetes Service port: `appProtocol` first, else the port
 * name up to the first `-` (`http-web`, `grpc`, `tcp-db`). `undefined` = not declared (the
 * waypoint detects it). TLS, Mongo, MySQL, Redis and other opaque protocols are TCP to a waypoint.
 */
export function portProtocol(name?: string, appProtocol?: string): PortProtocol | undefined {
  const of = (p: string): PortProtocol | undefined => {
    const v = p.toLowerCase();
    if (["http", "http2", "grpc", "grpc-web", "kubernetes.io/h2c", "h2c"].includes(v))
      return "http";
    if (["tcp", "tls", "https", "mongo", "mysql", "redis", "kubernetes.io/wss"].includes(v))
      return "tcp";
    return undefined;
  };
  if (appProtocol !== undefined && appProtocol !== "") return of(appProtocol);
  if (name === undefined || name === "") return undefined;
  const prefix = name.split("-")[0] ?? name;
  // "grpc-web" is a whole protocol name, not grpc + suffix
  return name.toLowerCase().startsWith("grpc-web") ? "http" : of(prefix);
}

/** One input file: its name (for messages) and text. */
export interface SourceFile {
  file: string;
  text: string;
}

function lineAt(text: string, path: readonly (string | number)[]): number | undefined {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc });
  const node = doc.getIn(path, true) as { range?: [number, number, number] } | undefined;
  const off = node?.range?.[0];
  return off === undefined ? undefined : lc.linePos(off).line;
}

/**
 * Parses and checks a scenario. Throws ExampleError (`ERR_EXAMPLES_CONFIG`, message
 * `<file>:<line>: …`) on the first problem: YAML syntax, unknown fields, wrong types, duplicate
 * workload IPs or VIPs, references to unknown services, policies or waypoints.
 */
export function parseScenario(
  localXds: SourceFile,
  istio?: SourceFile,
  settings: MeshSettingsInput = {},
): MeshConfig {
  const rootNamespace = settings.rootNamespace ?? "istio-system";
  const trustDomain = settings.trustDomain ?? "cluster.local";
  const parsed = parseLocalXds(localXds.text);
  if (!parsed.ok) {
    const first = parsed.issues[0];
    throw configError(localXds.file, first?.line, first?.message ?? "invalid LOCAL_XDS config");
  }
  const local = parsed.value;
  checkLocal(localXds, local);

  const authorizationPolicies: AuthorizationPolicy[] = [];
  const peerAuthentications: PeerAuthentication[] = [];
  const httpRoutes: HttpRoute[] = [];
  const requestAuthentications: RequestAuthenticationResource[] = [];
  const converted: Authorization[] = [];
  const portProtocols = new Map<string, Map<number, PortProtocol>>();
  if (istio) {
    const v = validateYaml(istio.text);
    for (const d of v.documents) {
      const bad = d.issues.find((i) => i.severity === "error");
      if (bad) {
        throw configError(
          istio.file,
          bad.line ?? d.line,
          `${d.kind ?? "document"} ${bad.path ? `${bad.path}: ` : ""}${bad.message}`,
        );
      }
    }
    const lc = new LineCounter();
    const docs = parseAllDocuments(istio.text, { lineCounter: lc });
    const list = Array.isArray(docs) ? docs : [];
    for (const doc of list) {
      const obj = doc.toJS() as Record<string, unknown> | null;
      if (obj === null || typeof obj !== "object") continue;
      const line = lc.linePos(doc.contents?.range?.[0] ?? 0).line;
      const kind = obj.kind;
      if (kind === "AuthorizationPolicy" || kind === "PeerAuthentication") {
        const r = parsePolicyResource(obj);
        if (!r.ok) {
          const i = r.issues[0];
          throw configError(
            istio.file,
            line,
            `${kind}: ${i?.path ?? ""} ${i?.message ?? "invalid"}`,
          );
        }
        if (r.value.kind === "AuthorizationPolicy") authorizationPolicies.push(r.value);
        else peerAuthentications.push(r.value);
      } else if (kind === "HTTPRoute") {
        httpRoutes.push(obj as unknown as HttpRoute);
      } else if (kind === "RequestAuthentication") {
        const meta = (obj.metadata ?? {}) as { name?: string; namespace?: string };
        const spec = (obj.spec ?? {}) as {
          targetRef?: RequestAuthenticationResource["targetRefs"][number];
          targetRefs?: RequestAuthenticationResource["targetRefs"];
          jwtRules?: JwtRule[];
        };
        requestAuthentications.push({
          name: meta.name ?? "",
          namespace: meta.namespace ?? "default",
          targetRefs: [...(spec.targetRefs ?? []), ...(spec.targetRef ? [spec.targetRef] : [])],
          jwtRules: spec.jwtRules ?? [],
        });
      } else if (kind === "Service" && obj.apiVersion === "v1") {
        // only the port declarations: which ports are HTTP or TCP at the waypoint
        const meta = (obj.metadata ?? {}) as { name?: string; namespace?: string };
        const key = `${meta.namespace ?? "default"}/${meta.name ?? ""}`;
        if (!local.services.some((x) => `${x.namespace}/${x.name}` === key))
          throw configError(istio.file, line, `Service ${key} is not a service in LOCAL_XDS`);
        const ports = ((obj.spec ?? {}) as { ports?: unknown }).ports;
        const byPort = new Map<number, PortProtocol>();
        for (const p of Array.isArray(ports) ? ports : []) {
          const q = p as { port?: unknown; name?: unknown; appProtocol?: unknown };
          if (typeof q.port !== "number")
            throw configError(istio.file, line, `Service ${key}: every port needs a numeric port`);
          const proto = portProtocol(
            typeof q.name === "string" ? q.name : undefined,
            typeof q.appProtocol === "string" ? q.appProtocol : undefined,
          );
          if (proto) byPort.set(q.port, proto);
        }
        portProtocols.set(key, byPort);
      } else {
        throw configError(
          istio.file,
          line,
          `unsupported kind ${String(kind)}: the scenario takes AuthorizationPolicy, PeerAuthentication, RequestAuthentication, HTTPRoute and (v1) Service port declarations`,
        );
      }
    }
    checkIstio(istio, local, authorizationPolicies, httpRoutes);
    for (const ap of authorizationPolicies) {
      const c = convertAuthorizationPolicy(ap, rootNamespace);
      if (c.authorization) converted.push(c.authorization);
    }
    converted.push(...convertPeerAuthentications(peerAuthentications, rootNamespace));
  }
  const keys = new Set(local.policies.map(authorizationKey));
  for (const c of converted) {
    if (keys.has(authorizationKey(c))) {
      throw configError(
        istio?.file ?? localXds.file,
        undefined,
        `policy ${authorizationKey(c)} is defined both in LOCAL_XDS and as an Istio resource`,
      );
    }
    keys.add(authorizationKey(c));
  }
  const workloads = attachStrict(local.workloads, peerAuthentications, rootNamespace);
  return {
    local: { ...local, workloads, policies: [...local.policies, ...converted] },
    authorizationPolicies,
    peerAuthentications,
    httpRoutes,
    requestAuthentications,
    rootNamespace,
    trustDomain,
    portProtocols,
  };
}

/**
 * istiod's other half of PeerAuthentication STRICT: the converted static strict DENY has
 * WorkloadSelector scope, so istiod lists it in `authorizationPolicies` of every workload whose
 * effective mode is STRICT — the namespace-wide PeerAuthentication of its namespace, else the
 * mesh-wide one in the root namespace (UNSET inherits). Selector-scoped PeerAuthentications need
 * pod labels, which LOCAL_XDS workloads do not carry, so they are not attached here.
 */
function attachStrict(
  workloads: LocalConfig["workloads"],
  peerAuthentications: readonly PeerAuthentication[],
  rootNamespace: string,
): LocalConfig["workloads"] {
  const namespaceWide = new Map<string, string>();
  for (const pa of peerAuthentications) {
    const labels = pa.spec.selector?.matchLabels;
    if (labels !== undefined && Object.keys(labels).length > 0) continue;
    // The first listed stands in for the oldest, as convertPeerAuthentications does.
    if (!namespaceWide.has(pa.namespace))
      namespaceWide.set(pa.namespace, pa.spec.mtls?.mode ?? "UNSET");
  }
  const mode = (ns: string): string => {
    const own = namespaceWide.get(ns) ?? "UNSET";
    return own === "UNSET" ? (namespaceWide.get(rootNamespace) ?? "UNSET") : own;
  };
  const strictKey = `${rootNamespace}/${STATIC_STRICT_POLICY_NAME}`;
  return workloads.map((w) =>
    mode(w.namespace) === "STRICT" && !w.authorizationPolicies.includes(strictKey)
      ? { ...w, authorizationPolicies: [...w.authorizationPolicies, strictKey] }
      : w,
  );
}

function checkLocal(src: SourceFile, c: LocalConfig): void {
  const fail = (path: (string | number)[], message: string): never => {
    throw configError(src.file, lineAt(src.text, path), message);
  };
  const ips = new Map<string, string>();
  c.workloads.forEach((w, i) => {
    w.workloadIps.forEach((ip, j) => {
      const prev = ips.get(ip);
      if (prev !== undefined)
        fail(
          ["workloads", i, "workloadIps", j],
          `duplicate workload IP ${ip} (already used by ${prev})`,
        );
      ips.set(ip, `workload ${w.name || w.uid}`);
    });
  });
  const services = new Set<string>();
  c.services.forEach((s, i) => {
    const key = serviceKey(s);
    if (services.has(key)) fail(["services", i, "hostname"], `duplicate service ${key}`);
    services.add(key);
    s.vips.forEach((v, j) => {
      const prev = ips.get(v.address);
      if (prev !== undefined)
        fail(
          ["services", i, "vips", j],
          `duplicate address ${v.address} (already used by ${prev})`,
        );
      ips.set(v.address, `service ${key}`);
    });
  });
  const policies = new Set(c.policies.map(authorizationKey));
  const gatewayOk = (g: { destination: unknown }): boolean => {
    const d = g.destination as Parameters<typeof isNetworkAddress>[0];
    return isNetworkAddress(d) ? ips.has(d.address) : services.has(`${d.namespace}/${d.hostname}`);
  };
  c.workloads.forEach((w, i) => {
    for (const key of Object.keys(w.services)) {
      if (!services.has(key))
        fail(
          ["workloads", i, "services", key],
          `workload ${w.name || w.uid} names unknown service ${key}`,
        );
    }
    w.authorizationPolicies.forEach((p, j) => {
      if (!policies.has(p))
        fail(
          ["workloads", i, "authorizationPolicies", j],
          `workload ${w.name || w.uid} names unknown policy ${p}`,
        );
    });
    if (w.waypoint && !gatewayOk(w.waypoint))
      fail(["workloads", i, "waypoint"], `workload ${w.name || w.uid} has an unknown waypoint`);
  });
  c.services.forEach((s, i) => {
    if (s.waypoint && !gatewayOk(s.waypoint))
      fail(["services", i, "waypoint"], `service ${serviceKey(s)} has an unknown waypoint`);
  });
}

function checkIstio(
  src: SourceFile,
  c: LocalConfig,
  aps: readonly AuthorizationPolicy[],
  routes: readonly HttpRoute[],
): void {
  const byName = new Set(c.services.map((s) => `${s.namespace}/${s.name}`));
  const gateways = new Set(c.workloads.map((w) => `${w.namespace}/${w.name}`));
  const lineOf = (kind: string, ns: string, name: string): number | undefined => {
    const lc = new LineCounter();
    const all = parseAllDocuments(src.text, { lineCounter: lc });
    for (const d of Array.isArray(all) ? all : []) {
      const o = d.toJS() as {
        kind?: string;
        metadata?: { name?: string; namespace?: string };
      } | null;
      if (
        o?.kind === kind &&
        o.metadata?.name === name &&
        (o.metadata.namespace ?? "default") === ns
      )
        return lc.linePos(d.contents?.range?.[0] ?? 0).line;
    }
    return undefined;
  };
  for (const ap of aps) {
    const refs = [...(ap.spec.targetRefs ?? []), ...(ap.spec.targetRef ? [ap.spec.targetRef] : [])];
    for (const r of refs) {
      const key = `${ap.namespace}/${r.name}`;
      const ok =
        r.kind === "Service" ? byName.has(key) : r.kind === "Gateway" ? gateways.has(key) : true;
      if (!ok) {
        throw configError(
          src.file,
          lineOf("AuthorizationPolicy", ap.namespace, ap.name),
          `AuthorizationPolicy ${ap.namespace}/${ap.name} targets unknown ${r.kind} ${key}`,
        );
      }
    }
  }
  for (const rt of routes) {
    const ns = rt.metadata?.namespace ?? "default";
    const name = rt.metadata?.name ?? "";
    const refs = [
      ...(rt.spec.parentRefs ?? []).map((p) => ({ what: "parentRef", ...p })),
      ...(rt.spec.rules ?? []).flatMap((r) =>
        (r.backendRefs ?? []).map((b) => ({ what: "backendRef", ...b })),
      ),
    ];
    for (const r of refs) {
      if ((r.kind ?? "Service") !== "Service") continue;
      const key = `${r.namespace ?? ns}/${r.name}`;
      if (!byName.has(key)) {
        throw configError(
          src.file,
          lineOf("HTTPRoute", ns, name),
          `HTTPRoute ${ns}/${name} ${r.what} names unknown Service ${key}`,
        );
      }
    }
  }
}

/** Reads the scenario files and parses them (see {@link parseScenario}). */
export async function loadScenario(
  localXdsPath: string,
  istioPath?: string,
  settings?: MeshSettingsInput,
): Promise<MeshConfig> {
  const read = async (file: string): Promise<SourceFile> => {
    try {
      return { file, text: await readFile(file, "utf8") };
    } catch (cause) {
      throw configError(file, undefined, `cannot read the file (${(cause as Error).message})`);
    }
  };
  const local = await read(localXdsPath);
  const istio = istioPath === undefined ? undefined : await read(istioPath);
  return parseScenario(local, istio, settings);
}
