import {
  create,
  type DescMessage,
  equals,
  type MessageInitShape,
  ScalarType,
  type toBinary,
} from "@bufbuild/protobuf";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { AnySchema, EmptySchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { XdsTypesError } from "../errors.js";
import {
  decodeAddress,
  decodeAuthorization,
  decodeMessage,
  decodeService,
  decodeWorkload,
  encodeAddress,
  encodeAuthorization,
  encodeMessage,
  encodeService,
  encodeWorkload,
} from "./codec.js";
import * as sec from "./gen/authorization_pb.js";
import * as wl from "./gen/workload_pb.js";

const ip4 = new Uint8Array([10, 0, 0, 1]);
const ip6 = new Uint8Array([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);

const extension = create(wl.ExtensionSchema, {
  name: "ext",
  config: create(AnySchema, { typeUrl: "type.googleapis.com/x.Y", value: new Uint8Array([8, 1]) }),
});
const gwHost = create(wl.GatewayAddressSchema, {
  destination: {
    case: "hostname",
    value: create(wl.NamespacedHostnameSchema, { namespace: "ns", hostname: "wp.ns.svc" }),
  },
  hboneMtlsPort: 15008,
});
const gwAddr = create(wl.GatewayAddressSchema, {
  destination: {
    case: "address",
    value: create(wl.NetworkAddressSchema, { network: "east", address: ip6, length: 128 }),
  },
  hboneMtlsPort: 15009,
});
const port = create(wl.PortSchema, {
  servicePort: 80,
  targetPort: 8080,
  appProtocol: wl.AppProtocol.HTTP2,
});

/** A Workload with every field set to a non-default value. */
const fullWorkload = create(wl.WorkloadSchema, {
  uid: "cluster1//v1/Pod/ns/a",
  name: "a",
  namespace: "ns",
  addresses: [ip4, ip6],
  hostname: "a.ns",
  network: "net",
  tunnelProtocol: wl.TunnelProtocol.HBONE,
  trustDomain: "td",
  serviceAccount: "sa",
  waypoint: gwHost,
  networkGateway: gwAddr,
  node: "node",
  canonicalName: "cn",
  canonicalRevision: "cr",
  workloadType: wl.WorkloadType.JOB,
  workloadName: "wn",
  nativeTunnel: true,
  applicationTunnel: create(wl.ApplicationTunnelSchema, {
    protocol: wl.ApplicationTunnel_Protocol.PROXY,
    port: 15088,
  }),
  services: { "ns/svc": create(wl.PortListSchema, { ports: [port] }) },
  authorizationPolicies: ["ns/p"],
  status: wl.WorkloadStatus.UNHEALTHY,
  clusterId: "c1",
  locality: create(wl.LocalitySchema, { region: "r", zone: "z", subzone: "s" }),
  networkMode: wl.NetworkMode.HOST_NETWORK,
  extensions: [extension],
  capacity: 7,
});

/** A Service with every field set to a non-default value. */
const fullService = create(wl.ServiceSchema, {
  name: "svc",
  namespace: "ns",
  hostname: "svc.ns.svc.cluster.local",
  addresses: [
    create(wl.NetworkAddressSchema, { network: "", address: ip4 }),
    create(wl.NetworkAddressSchema, { network: "n", address: ip4, length: 24 }),
  ],
  ports: [port],
  subjectAltNames: ["spiffe://td/ns/ns/sa/svc"],
  waypoint: gwAddr,
  loadBalancing: create(wl.LoadBalancingSchema, {
    routingPreference: [wl.LoadBalancing_Scope.NETWORK, wl.LoadBalancing_Scope.REGION],
    mode: wl.LoadBalancing_Mode.FAILOVER,
    healthPolicy: wl.LoadBalancing_HealthPolicy.ALLOW_ALL,
  }),
  ipFamilies: wl.IPFamilies.DUAL,
  extensions: [extension],
  canonical: true,
  ingressUseWaypoint: true,
  weightedWaypoints: [create(wl.WeightedWaypointSchema, { destination: gwHost, weight: 90 })],
  visibility: wl.Service_Visibility.NAMESPACE,
});

const sm = (matchType: NonNullable<MessageInitShape<typeof sec.StringMatchSchema>["matchType"]>) =>
  create(sec.StringMatchSchema, { matchType } as MessageInitShape<typeof sec.StringMatchSchema>);
const saMatch = create(sec.ServiceAccountMatchSchema, { namespace: "ns", serviceAccount: "sa" });
const cidr = create(sec.AddressSchema, { address: ip4, length: 8 });

/** A Match with every field set. */
const fullMatch = create(sec.MatchSchema, {
  namespaces: [sm({ case: "exact", value: "ns" })],
  notNamespaces: [sm({ case: "prefix", value: "kube-" })],
  serviceAccounts: [saMatch],
  notServiceAccounts: [saMatch],
  principals: [sm({ case: "suffix", value: "/sa/web" })],
  notPrincipals: [sm({ case: "presence", value: create(EmptySchema) })],
  sourceIps: [cidr],
  notSourceIps: [cidr],
  destinationIps: [create(sec.AddressSchema, { address: ip6, length: 64 })],
  notDestinationIps: [cidr],
  destinationPorts: [80, 443],
  notDestinationPorts: [9999],
  extensions: [extension],
});

const fullAuthorization = create(sec.AuthorizationSchema, {
  name: "p",
  namespace: "ns",
  scope: sec.Scope.WORKLOAD_SELECTOR,
  action: sec.Action.DENY,
  rules: [
    create(sec.RuleSchema, {
      clauses: [create(sec.ClauseSchema, { matches: [fullMatch, create(sec.MatchSchema)] })],
    }),
    create(sec.RuleSchema),
  ],
  dryRun: true,
  extensions: [extension],
});

function roundTrip<D extends DescMessage>(schema: D, msg: Parameters<typeof toBinary<D>>[1]): void {
  const bytes = encodeMessage(schema, msg);
  const back = decodeMessage(schema, bytes);
  expect(equals(schema, back, msg)).toBe(true);
  expect(encodeMessage(schema, back)).toEqual(bytes);
}

describe("proto round trip for each workload-API message", () => {
  const cases: [string, DescMessage, unknown][] = [
    [
      "istio.workload.Address (workload)",
      wl.AddressSchema,
      create(wl.AddressSchema, { type: { case: "workload", value: fullWorkload } }),
    ],
    [
      "istio.workload.Address (service)",
      wl.AddressSchema,
      create(wl.AddressSchema, { type: { case: "service", value: fullService } }),
    ],
    ["istio.workload.Workload", wl.WorkloadSchema, fullWorkload],
    [
      "istio.workload.Workload (capacity 0 is kept apart from unset)",
      wl.WorkloadSchema,
      create(wl.WorkloadSchema, { capacity: 0 }),
    ],
    ["istio.workload.Service", wl.ServiceSchema, fullService],
    ["istio.workload.LoadBalancing", wl.LoadBalancingSchema, fullService.loadBalancing],
    ["istio.workload.Locality", wl.LocalitySchema, fullWorkload.locality],
    ["istio.workload.PortList", wl.PortListSchema, fullWorkload.services["ns/svc"]],
    ["istio.workload.Port", wl.PortSchema, port],
    [
      "istio.workload.ApplicationTunnel",
      wl.ApplicationTunnelSchema,
      fullWorkload.applicationTunnel,
    ],
    ["istio.workload.GatewayAddress (hostname)", wl.GatewayAddressSchema, gwHost],
    ["istio.workload.GatewayAddress (address)", wl.GatewayAddressSchema, gwAddr],
    [
      "istio.workload.WeightedWaypoint",
      wl.WeightedWaypointSchema,
      fullService.weightedWaypoints[0],
    ],
    [
      "istio.workload.NetworkAddress (with length)",
      wl.NetworkAddressSchema,
      fullService.addresses[1],
    ],
    [
      "istio.workload.NetworkAddress (length 0 is kept apart from unset)",
      wl.NetworkAddressSchema,
      create(wl.NetworkAddressSchema, { address: ip4, length: 0 }),
    ],
    ["istio.workload.NamespacedHostname", wl.NamespacedHostnameSchema, gwHost.destination.value],
    ["istio.workload.Extension", wl.ExtensionSchema, extension],
    ["istio.security.Authorization", sec.AuthorizationSchema, fullAuthorization],
    ["istio.security.Rule", sec.RuleSchema, fullAuthorization.rules[0]],
    ["istio.security.Clause", sec.ClauseSchema, fullAuthorization.rules[0]?.clauses[0]],
    ["istio.security.Match", sec.MatchSchema, fullMatch],
    ["istio.security.Address", sec.AddressSchema, cidr],
    ["istio.security.ServiceAccountMatch", sec.ServiceAccountMatchSchema, saMatch],
    ...(["exact", "prefix", "suffix", "presence"] as const).map(
      (c, i): [string, DescMessage, unknown] => [
        `istio.security.StringMatch (${c})`,
        sec.StringMatchSchema,
        fullMatch[
          (["namespaces", "notNamespaces", "principals", "notPrincipals"] as const)[
            i
          ] as "namespaces"
        ][0],
      ],
    ),
  ];
  it.each(cases)("%s", (_name, schema, msg) => {
    expect(msg).toBeDefined();
    roundTrip(schema, msg as never);
  });

  it("the typed helpers round-trip Address, Workload, Service and Authorization", () => {
    const addr = create(wl.AddressSchema, { type: { case: "workload", value: fullWorkload } });
    expect(equals(wl.AddressSchema, decodeAddress(encodeAddress(addr)), addr)).toBe(true);
    expect(
      equals(wl.WorkloadSchema, decodeWorkload(encodeWorkload(fullWorkload)), fullWorkload),
    ).toBe(true);
    expect(equals(wl.ServiceSchema, decodeService(encodeService(fullService)), fullService)).toBe(
      true,
    );
    expect(
      equals(
        sec.AuthorizationSchema,
        decodeAuthorization(encodeAuthorization(fullAuthorization)),
        fullAuthorization,
      ),
    ).toBe(true);
  });
});

// Field numbers and types from the tables in shared/reference/hbone-ztunnel.md §4.4–4.5, written
// out independently of the .proto files: if a .proto drifts, this fails.
const T = {
  s: "string",
  b: "bool",
  u: "uint32",
  y: "bytes",
  e: "enum",
  m: "message",
  map: "map",
} as const;
const EXPECTED: Record<string, Record<string, [number, string, boolean?]>> = {
  "istio.workload.Address": { workload: [1, T.m], service: [2, T.m] },
  "istio.workload.Service": {
    name: [1, T.s],
    namespace: [2, T.s],
    hostname: [3, T.s],
    addresses: [4, T.m, true],
    ports: [5, T.m, true],
    subjectAltNames: [6, T.s, true],
    waypoint: [7, T.m],
    loadBalancing: [8, T.m],
    ipFamilies: [9, T.e],
    extensions: [10, T.m, true],
    canonical: [11, T.b],
    ingressUseWaypoint: [12, T.b],
    weightedWaypoints: [13, T.m, true],
    visibility: [14, T.e],
  },
  "istio.workload.Workload": {
    uid: [20, T.s],
    name: [1, T.s],
    namespace: [2, T.s],
    addresses: [3, T.y, true],
    hostname: [21, T.s],
    network: [4, T.s],
    tunnelProtocol: [5, T.e],
    trustDomain: [6, T.s],
    serviceAccount: [7, T.s],
    waypoint: [8, T.m],
    networkGateway: [19, T.m],
    node: [9, T.s],
    canonicalName: [10, T.s],
    canonicalRevision: [11, T.s],
    workloadType: [12, T.e],
    workloadName: [13, T.s],
    nativeTunnel: [14, T.b],
    applicationTunnel: [23, T.m],
    services: [22, T.map],
    authorizationPolicies: [16, T.s, true],
    status: [17, T.e],
    clusterId: [18, T.s],
    locality: [24, T.m],
    networkMode: [25, T.e],
    extensions: [26, T.m, true],
    capacity: [27, T.m],
  },
  "istio.workload.Locality": { region: [1, T.s], zone: [2, T.s], subzone: [3, T.s] },
  "istio.workload.PortList": { ports: [1, T.m, true] },
  "istio.workload.Port": { servicePort: [1, T.u], targetPort: [2, T.u], appProtocol: [3, T.e] },
  "istio.workload.ApplicationTunnel": { protocol: [1, T.e], port: [2, T.u] },
  "istio.workload.GatewayAddress": {
    hostname: [1, T.m],
    address: [2, T.m],
    hboneMtlsPort: [3, T.u],
  },
  "istio.workload.WeightedWaypoint": { destination: [1, T.m], weight: [2, T.u] },
  "istio.workload.NetworkAddress": { network: [1, T.s], address: [2, T.y], length: [3, T.u] },
  "istio.workload.NamespacedHostname": { namespace: [1, T.s], hostname: [2, T.s] },
  "istio.workload.Extension": { name: [1, T.s], config: [2, T.m] },
  "istio.workload.LoadBalancing": {
    routingPreference: [1, T.e, true],
    mode: [2, T.e],
    healthPolicy: [3, T.e],
  },
  "istio.security.Authorization": {
    name: [1, T.s],
    namespace: [2, T.s],
    scope: [3, T.e],
    action: [4, T.e],
    rules: [5, T.m, true],
    dryRun: [6, T.b],
    extensions: [7, T.m, true],
  },
  "istio.security.Rule": { clauses: [1, T.m, true] },
  "istio.security.Clause": { matches: [2, T.m, true] },
  "istio.security.Match": {
    namespaces: [1, T.m, true],
    notNamespaces: [2, T.m, true],
    principals: [3, T.m, true],
    notPrincipals: [4, T.m, true],
    sourceIps: [5, T.m, true],
    notSourceIps: [6, T.m, true],
    destinationIps: [7, T.m, true],
    notDestinationIps: [8, T.m, true],
    destinationPorts: [9, T.u, true],
    notDestinationPorts: [10, T.u, true],
    serviceAccounts: [11, T.m, true],
    notServiceAccounts: [12, T.m, true],
    extensions: [13, T.m, true],
  },
  "istio.security.Address": { address: [1, T.y], length: [2, T.u] },
  "istio.security.ServiceAccountMatch": { namespace: [1, T.s], serviceAccount: [2, T.s] },
  "istio.security.StringMatch": {
    exact: [1, T.s],
    prefix: [2, T.s],
    suffix: [3, T.s],
    presence: [4, T.m],
  },
};
const EXPECTED_ENUMS: Record<string, string[]> = {
  "istio.workload.Service.Visibility": ["PUBLIC", "NAMESPACE"],
  "istio.workload.IPFamilies": ["AUTOMATIC", "IPV4_ONLY", "IPV6_ONLY", "DUAL"],
  "istio.workload.NetworkMode": ["STANDARD", "HOST_NETWORK"],
  "istio.workload.LoadBalancing.Scope": [
    "UNSPECIFIED_SCOPE",
    "REGION",
    "ZONE",
    "SUBZONE",
    "NODE",
    "CLUSTER",
    "NETWORK",
  ],
  "istio.workload.LoadBalancing.Mode": ["UNSPECIFIED_MODE", "STRICT", "FAILOVER", "PASSTHROUGH"],
  "istio.workload.LoadBalancing.HealthPolicy": ["ONLY_HEALTHY", "ALLOW_ALL"],
  "istio.workload.WorkloadStatus": ["HEALTHY", "UNHEALTHY"],
  "istio.workload.WorkloadType": ["DEPLOYMENT", "CRONJOB", "POD", "JOB"],
  "istio.workload.AppProtocol": ["UNKNOWN", "HTTP11", "HTTP2", "GRPC", "TCP", "TLS"],
  "istio.workload.TunnelProtocol": ["NONE", "HBONE", "LEGACY_ISTIO_MTLS"],
  "istio.workload.ApplicationTunnel.Protocol": ["NONE", "PROXY"],
  "istio.security.Scope": ["GLOBAL", "NAMESPACE", "WORKLOAD_SELECTOR"],
  "istio.security.Action": ["ALLOW", "DENY"],
};

describe("the .proto files match ztunnel's field tables", () => {
  const messages = [...wl.file_workload.messages, ...sec.file_authorization.messages].flatMap(
    function all(m): DescMessage[] {
      return [m, ...m.nestedMessages.flatMap(all)];
    },
  );
  it("declares exactly the expected messages", () => {
    expect(
      messages
        .map((m) => m.typeName)
        .filter((n) => !n.endsWith("Entry"))
        .sort(),
    ).toEqual(Object.keys(EXPECTED).sort());
  });
  it.each(Object.keys(EXPECTED))("%s: names, numbers, types, repetition", (typeName) => {
    const m = messages.find((x) => x.typeName === typeName);
    const got = Object.fromEntries(
      (m?.fields ?? []).map((f) => {
        const kind =
          f.fieldKind === "map"
            ? T.map
            : f.fieldKind === "enum" || (f.fieldKind === "list" && f.listKind === "enum")
              ? T.e
              : f.fieldKind === "message" || (f.fieldKind === "list" && f.listKind === "message")
                ? T.m
                : f.scalar === ScalarType.STRING
                  ? T.s
                  : f.scalar === ScalarType.BOOL
                    ? T.b
                    : f.scalar === ScalarType.UINT32
                      ? T.u
                      : f.scalar === ScalarType.BYTES
                        ? T.y
                        : `scalar ${f.scalar}`;
        return [f.localName, f.fieldKind === "list" ? [f.number, kind, true] : [f.number, kind]];
      }),
    );
    expect(got).toEqual(EXPECTED[typeName]);
  });
  it("declares the enums with ztunnel's values in order", () => {
    const enums = [
      ...wl.file_workload.enums,
      ...sec.file_authorization.enums,
      ...messages.flatMap((m) => m.nestedEnums),
    ];
    const got = Object.fromEntries(
      enums.map((e) => [e.typeName, e.values.map((v) => [v.name, v.number])]),
    );
    const want = Object.fromEntries(
      Object.entries(EXPECTED_ENUMS).map(([k, names]) => [k, names.map((n, i) => [n, i])]),
    );
    expect(got).toEqual(want);
  });
  it("keeps the NetworkAddress length presence-tracked and capacity a UInt32Value wrapper", () => {
    const na = messages.find((m) => m.typeName === "istio.workload.NetworkAddress");
    expect(na?.fields.find((f) => f.localName === "length")?.presence).not.toBe(2); // 2 = IMPLICIT
    const cap = messages
      .find((m) => m.typeName === "istio.workload.Workload")
      ?.fields.find((f) => f.localName === "capacity");
    expect(cap?.fieldKind === "message" && cap.message.typeName).toBe(
      "google.protobuf.UInt32Value",
    );
  });
});

describe("wire compatibility with bytes built by field number", () => {
  it("decodes a Workload written field by field", () => {
    const w = new BinaryWriter();
    w.tag(20, WireType.LengthDelimited).string("uid-1");
    w.tag(1, WireType.LengthDelimited).string("pod");
    w.tag(2, WireType.LengthDelimited).string("ns");
    w.tag(3, WireType.LengthDelimited).bytes(ip4);
    w.tag(3, WireType.LengthDelimited).bytes(ip6);
    w.tag(5, WireType.Varint).int32(1); // HBONE
    w.tag(8, WireType.LengthDelimited).fork(); // waypoint
    w.tag(1, WireType.LengthDelimited)
      .fork()
      .tag(1, WireType.LengthDelimited)
      .string("ns")
      .tag(2, WireType.LengthDelimited)
      .string("wp")
      .join();
    w.tag(3, WireType.Varint).uint32(15008);
    w.join();
    w.tag(22, WireType.LengthDelimited).fork(); // map entry
    w.tag(1, WireType.LengthDelimited).string("ns/svc");
    w.tag(2, WireType.LengthDelimited).fork(); // PortList
    w.tag(1, WireType.LengthDelimited)
      .fork()
      .tag(1, WireType.Varint)
      .uint32(80)
      .tag(2, WireType.Varint)
      .uint32(8080)
      .join();
    w.join();
    w.join();
    w.tag(17, WireType.Varint).int32(1); // UNHEALTHY
    w.tag(25, WireType.Varint).int32(1); // HOST_NETWORK
    w.tag(27, WireType.LengthDelimited).fork().tag(1, WireType.Varint).uint32(5).join(); // capacity
    const got = decodeWorkload(w.finish());
    expect(got.uid).toBe("uid-1");
    expect(got.name).toBe("pod");
    expect(got.namespace).toBe("ns");
    expect(got.addresses).toEqual([ip4, ip6]);
    expect(got.tunnelProtocol).toBe(wl.TunnelProtocol.HBONE);
    expect(got.waypoint?.destination).toMatchObject({
      case: "hostname",
      value: { namespace: "ns", hostname: "wp" },
    });
    expect(got.waypoint?.hboneMtlsPort).toBe(15008);
    expect(got.services["ns/svc"]?.ports[0]).toMatchObject({ servicePort: 80, targetPort: 8080 });
    expect(got.status).toBe(wl.WorkloadStatus.UNHEALTHY);
    expect(got.networkMode).toBe(wl.NetworkMode.HOST_NETWORK);
    expect(got.capacity).toBe(5);
  });

  it("decodes an Authorization written with istio/istio's names (groups → rules → matches)", () => {
    const w = new BinaryWriter();
    w.tag(1, WireType.LengthDelimited).string("allow-web");
    w.tag(2, WireType.LengthDelimited).string("prod");
    w.tag(3, WireType.Varint).int32(1); // NAMESPACE
    w.tag(4, WireType.Varint).int32(1); // DENY
    w.tag(5, WireType.LengthDelimited).fork(); // Group
    w.tag(1, WireType.LengthDelimited).fork(); // Rules
    w.tag(2, WireType.LengthDelimited).fork(); // Match
    w.tag(3, WireType.LengthDelimited)
      .fork()
      .tag(2, WireType.LengthDelimited)
      .string("td/ns/prod/")
      .join(); // principals prefix
    w.tag(4, WireType.LengthDelimited).fork().tag(4, WireType.LengthDelimited).fork().join().join(); // notPrincipals presence
    w.tag(5, WireType.LengthDelimited)
      .fork()
      .tag(1, WireType.LengthDelimited)
      .bytes(ip4)
      .tag(2, WireType.Varint)
      .uint32(8)
      .join();
    // packed repeated uint32 destination_ports = 9
    w.tag(9, WireType.LengthDelimited).fork().uint32(80).uint32(443).join();
    // unpacked form of not_destination_ports = 10 must also decode
    w.tag(10, WireType.Varint).uint32(9999);
    w.tag(11, WireType.LengthDelimited)
      .fork()
      .tag(1, WireType.LengthDelimited)
      .string("prod")
      .tag(2, WireType.LengthDelimited)
      .string("web")
      .join();
    w.join().join().join();
    w.tag(6, WireType.Varint).bool(true);
    const a = decodeAuthorization(w.finish());
    expect(a.name).toBe("allow-web");
    expect(a.scope).toBe(sec.Scope.NAMESPACE);
    expect(a.action).toBe(sec.Action.DENY);
    expect(a.dryRun).toBe(true);
    const m = a.rules[0]?.clauses[0]?.matches[0];
    expect(m?.principals[0]?.matchType).toEqual({ case: "prefix", value: "td/ns/prod/" });
    expect(m?.notPrincipals[0]?.matchType.case).toBe("presence");
    expect(m?.sourceIps[0]?.address).toEqual(ip4);
    expect(m?.sourceIps[0]?.length).toBe(8);
    expect(m?.destinationPorts).toEqual([80, 443]);
    expect(m?.notDestinationPorts).toEqual([9999]);
    expect(m?.serviceAccounts[0]).toMatchObject({ namespace: "prod", serviceAccount: "web" });
  });

  it("writes a Service with the field numbers and wire types of the tables", () => {
    const bytes = encodeService(fullService);
    const r = new BinaryReader(bytes);
    const seen: [number, WireType][] = [];
    while (r.pos < r.len) {
      const [no, wt] = r.tag();
      seen.push([no, wt]);
      r.skip(wt, no);
    }
    const numbers = [...new Set(seen.map(([n]) => n))].sort((a, b) => a - b);
    expect(numbers).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
    const wireOf = (n: number) => seen.find(([x]) => x === n)?.[1];
    for (const n of [1, 2, 3, 4, 5, 6, 7, 8, 10, 13])
      expect(wireOf(n)).toBe(WireType.LengthDelimited);
    for (const n of [9, 11, 12, 14]) expect(wireOf(n)).toBe(WireType.Varint);
  });

  it("keeps unknown fields (from a newer istiod) through decode → encode", () => {
    const base = encodeWorkload(create(wl.WorkloadSchema, { uid: "u", name: "n" }));
    const extra = new BinaryWriter()
      .tag(99, WireType.LengthDelimited)
      .string("future")
      .tag(100, WireType.Varint)
      .uint32(7)
      .finish();
    const withUnknown = new Uint8Array([...base, ...extra]);
    const decoded = decodeWorkload(withUnknown);
    expect(decoded.uid).toBe("u");
    expect(encodeWorkload(decoded)).toEqual(withUnknown);
    // and the reserved field 15 (old virtual_ips) is skipped safely
    const old = new BinaryWriter()
      .tag(15, WireType.LengthDelimited)
      .fork()
      .tag(1, WireType.LengthDelimited)
      .string("10.0.0.1")
      .join()
      .finish();
    expect(decodeWorkload(old).uid).toBe("");
  });
});

describe("malformed bytes give a typed error, never a crash", () => {
  it("an out-of-range value gives ERR_XDS_PROTO_ENCODE", () => {
    const bad = create(wl.PortSchema, { servicePort: -1 });
    expect(() => encodeMessage(wl.PortSchema, bad)).toThrow(
      expect.objectContaining({ code: "ERR_XDS_PROTO_ENCODE" }),
    );
  });

  const good = encodeAddress(
    create(wl.AddressSchema, { type: { case: "workload", value: fullWorkload } }),
  );

  it("truncated input", () => {
    let err: unknown;
    try {
      decodeAddress(good.subarray(0, good.length - 3));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(XdsTypesError);
    expect((err as XdsTypesError).code).toBe("ERR_XDS_PROTO_DECODE");
    expect((err as XdsTypesError).message).toContain("istio.workload.Address");
    expect((err as XdsTypesError).cause).toBeInstanceOf(Error);
  });

  it("invalid wire types, field number 0, a wrong wire type for a known field, non-bytes input", () => {
    for (const bytes of [
      new Uint8Array([0x0f]), // wire type 7
      new Uint8Array([0x00, 0x01]), // field 0
      new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]), // length far past the end
      new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), // overlong varint
    ]) {
      expect(() => decodeWorkload(bytes)).toThrow(XdsTypesError);
    }
    expect(() => decodeWorkload("not bytes" as unknown as Uint8Array)).toThrow(XdsTypesError);
  });

  it("random and bit-flipped inputs either decode or throw XdsTypesError", () => {
    let seed = 0x2545f491;
    const rand = () => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 0x100000000;
    };
    let threw = 0;
    for (let i = 0; i < 400; i++) {
      const input =
        i % 2 === 0
          ? Uint8Array.from({ length: Math.floor(rand() * 64) }, () => Math.floor(rand() * 256))
          : good.map((b) => (rand() < 0.02 ? b ^ (1 << Math.floor(rand() * 8)) : b));
      for (const decode of [decodeAddress, decodeAuthorization] as const) {
        try {
          decode(input);
        } catch (e) {
          threw++;
          expect(e).toBeInstanceOf(XdsTypesError);
        }
      }
    }
    expect(threw).toBeGreaterThan(0);
  });
});
