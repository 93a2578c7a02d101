// ztunnel workload API: protobuf encode/decode of a Workload, proto ↔ domain conversion, and parsing
// a LOCAL_XDS file of 1,000 workloads (with the `yaml` package's bare parse as the floor: the
// difference is our typed reading, unknown-field checks, IP parsing and issue tracking).
import {
  createMessage,
  decodeWorkload,
  encodeWorkload,
  type LocalConfig,
  workloadFromProto,
  workloadProto,
  workloadToProto,
} from "@ambientkit/xds-types";
import { parseLocalXds, serializeLocalXds } from "@ambientkit/xds-types/local-xds";
import { parse as yamlParse } from "yaml";
import type { BenchGroup, BenchSuite } from "../harness.js";

const wl = workloadProto;

function sampleWorkload(): ReturnType<typeof decodeWorkload> {
  return createMessage(wl.WorkloadSchema, {
    uid: "Kubernetes//Pod/prod/api-7d9f8c6b5-x2x7q",
    name: "api-7d9f8c6b5-x2x7q",
    namespace: "prod",
    addresses: [new Uint8Array([10, 244, 1, 17])],
    network: "west",
    tunnelProtocol: wl.TunnelProtocol.HBONE,
    trustDomain: "cluster.local",
    serviceAccount: "api",
    waypoint: createMessage(wl.GatewayAddressSchema, {
      destination: {
        case: "hostname",
        value: createMessage(wl.NamespacedHostnameSchema, {
          namespace: "prod",
          hostname: "waypoint.prod.svc.cluster.local",
        }),
      },
      hboneMtlsPort: 15008,
    }),
    node: "node-a",
    canonicalName: "api",
    canonicalRevision: "v2",
    workloadName: "api",
    services: {
      "prod/api.prod.svc.cluster.local": createMessage(wl.PortListSchema, {
        ports: [
          createMessage(wl.PortSchema, { servicePort: 80, targetPort: 8080 }),
          createMessage(wl.PortSchema, { servicePort: 443, targetPort: 8443 }),
        ],
      }),
    },
    authorizationPolicies: ["prod/api-allow"],
    clusterId: "Kubernetes",
    locality: createMessage(wl.LocalitySchema, { region: "eu-west1", zone: "eu-west1-b" }),
    capacity: 1,
  });
}

/** A LOCAL_XDS config with `n` workloads spread over n/10 services, and 50 policies. */
function bigConfig(n: number): LocalConfig {
  const workloads = Array.from({ length: n }, (_, i) => {
    const svc = `ns${i % 20}/svc${i % (n / 10)}.ns${i % 20}.svc.cluster.local`;
    return {
      workloadIps: [`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`],
      protocol: i % 3 === 0 ? ("TCP" as const) : ("HBONE" as const),
      networkMode: "Standard" as const,
      uid: `Kubernetes//Pod/ns${i % 20}/pod-${i}`,
      name: `pod-${i}`,
      namespace: `ns${i % 20}`,
      trustDomain: "cluster.local",
      serviceAccount: `sa${i % 7}`,
      network: "",
      workloadName: `app${i % 50}`,
      workloadType: "deployment",
      canonicalName: `app${i % 50}`,
      canonicalRevision: "v1",
      hostname: "",
      node: `node-${i % 8}`,
      nativeTunnel: false,
      authorizationPolicies: [],
      status: "Healthy" as const,
      clusterId: "Kubernetes",
      services: { [svc]: { 80: 8080 } },
      capacity: 1,
    };
  });
  const services = Array.from({ length: n / 10 }, (_, i) => ({
    name: `svc${i}`,
    namespace: `ns${i % 20}`,
    hostname: `svc${i}.ns${i % 20}.svc.cluster.local`,
    vips: [{ network: "", address: `10.96.${(i >> 8) & 255}.${i & 255}` }],
    cidrVips: [],
    ports: { 80: 8080 },
    endpoints: {},
    subjectAltNames: [],
    weightedWaypoints: [],
    canonical: true,
    visibility: "Public" as const,
  }));
  const policies = Array.from({ length: 50 }, (_, i) => ({
    name: `p${i}`,
    namespace: `ns${i % 20}`,
    scope: "Namespace" as const,
    action: i % 5 === 0 ? ("Deny" as const) : ("Allow" as const),
    dryRun: false,
    rules: [
      [
        [{ principals: [{ exact: `cluster.local/ns/ns${i % 20}/sa/sa${i % 7}` }] }],
        [{ destinationPorts: [8080], sourceIps: ["10.0.0.0/8"] }],
      ],
    ],
  }));
  return { workloads, services, policies };
}

const suite: BenchSuite = {
  package: "xds-types",
  async groups(): Promise<BenchGroup[]> {
    const msg = sampleWorkload();
    const bytes = encodeWorkload(msg);
    const domain = workloadFromProto(msg);
    const text = serializeLocalXds(bigConfig(1000));
    const check = parseLocalXds(text);
    if (!check.ok || check.value.workloads.length !== 1000) {
      throw new Error("xds-workload bench: the generated LOCAL_XDS file does not parse");
    }
    return [
      {
        name: "xds-types/workload-proto",
        target:
          "Workload encode/decode ops/s (a typical ambient pod with a waypoint and one Service)",
        cases: [
          { name: `ambientkit encodeWorkload (${bytes.length} B)`, fn: () => encodeWorkload(msg) },
          { name: "ambientkit decodeWorkload", fn: () => decodeWorkload(bytes) },
          {
            name: "ambientkit workloadFromProto (proto → domain)",
            fn: () => workloadFromProto(msg),
          },
          {
            name: "ambientkit workloadToProto (domain → proto)",
            fn: () => workloadToProto(domain),
          },
        ],
      },
      {
        name: "xds-types/local-xds-parse",
        target: "LOCAL_XDS parse of a 1,000-workload file (100 services, 50 policies)",
        ratio: {
          ours: "ambientkit parseLocalXds (typed, checked)",
          peer: "yaml.parse (untyped, unchecked)",
        },
        timeMs: 2000,
        cases: [
          { name: "ambientkit parseLocalXds (typed, checked)", fn: () => parseLocalXds(text) },
          { name: "yaml.parse (untyped, unchecked)", fn: () => yamlParse(text), peer: true },
        ],
        measure: async () => {
          const runs = 5;
          const t0 = performance.now();
          for (let i = 0; i < runs; i++) parseLocalXds(text);
          const ms = (performance.now() - t0) / runs;
          return [
            { name: "parseLocalXds, 1,000 workloads", value: Number(ms.toFixed(1)), unit: "ms" },
            {
              name: "parseLocalXds throughput",
              value: Math.round(1000 / (ms / 1000)),
              unit: "workloads/s",
            },
            { name: "file size", value: Math.round(text.length / 1024), unit: "KiB" },
          ];
        },
      },
    ];
  },
};

export default suite;
