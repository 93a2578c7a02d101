import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { create, equals } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { XdsTypesError } from "../errors.js";
import type { Authorization } from "./authorization.js";
import {
  authorizationFromJson,
  authorizationToJson,
  decodeAddress,
  decodeAuthorization,
  encodeAddress,
  encodeAuthorization,
} from "./codec.js";
import {
  addressFromProto,
  addressToProto,
  authorizationFromProto,
  authorizationToProto,
  serviceFromProto,
  serviceToProto,
  workloadFromProto,
  workloadToProto,
} from "./convert.js";
import * as sec from "./gen/authorization_pb.js";
import * as wl from "./gen/workload_pb.js";
import { parseLocalXds } from "./local-xds.js";
import { type LocalConfig, serviceKey, type Workload, workloadIdentity } from "./types.js";

const here = fileURLToPath(new URL(".", import.meta.url));
const full = ((): LocalConfig => {
  const r = parseLocalXds(readFileSync(join(here, "testdata", "full.yaml"), "utf8"));
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.value;
})();

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(XdsTypesError);
    return (e as XdsTypesError).code;
  }
  return undefined;
}

describe("Workload: domain ↔ proto", () => {
  it("round-trips every LOCAL_XDS workload field through protobuf bytes", () => {
    const w = full.workloads[0] as Workload;
    const bytes = encodeAddress(addressToProto({ kind: "workload", workload: w }));
    expect(addressFromProto(decodeAddress(bytes))).toEqual({ kind: "workload", workload: w });
  });

  it("puts IPv4 as 4 bytes and IPv6 as 16 bytes on the wire", () => {
    const p = workloadToProto(full.workloads[0] as Workload);
    expect(p.addresses).toEqual([
      new Uint8Array([10, 0, 0, 5]),
      new Uint8Array([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5]),
    ]);
    expect(p.tunnelProtocol).toBe(wl.TunnelProtocol.HBONE);
    expect(p.workloadType).toBe(wl.WorkloadType.DEPLOYMENT);
    expect(p.networkGateway?.destination).toMatchObject({
      case: "address",
      value: { network: "east", address: new Uint8Array([192, 0, 2, 10]) },
    });
    expect(
      p.services["prod/api.prod.svc.cluster.local"]?.ports.map((x) => [
        x.servicePort,
        x.targetPort,
      ]),
    ).toEqual([
      [80, 8080],
      [443, 8443],
    ]);
  });

  it("applies ztunnel's proto defaults to an empty message", () => {
    expect(workloadFromProto(create(wl.WorkloadSchema, { namespace: "ns" }))).toEqual({
      workloadIps: [],
      protocol: "TCP",
      networkMode: "Standard",
      uid: "",
      name: "",
      namespace: "ns",
      trustDomain: "cluster.local",
      serviceAccount: "default",
      network: "",
      workloadName: "",
      workloadType: "deployment",
      canonicalName: "",
      canonicalRevision: "",
      hostname: "",
      node: "",
      nativeTunnel: false,
      authorizationPolicies: [],
      status: "Healthy",
      clusterId: "Kubernetes",
      services: {},
      capacity: 1,
    });
    expect(workloadFromProto(create(wl.WorkloadSchema, { capacity: 0 })).capacity).toBe(0);
    expect(
      workloadIdentity(workloadFromProto(create(wl.WorkloadSchema, { namespace: "ns" }))),
    ).toBe("spiffe://cluster.local/ns/ns/sa/default");
    expect(
      workloadFromProto(create(wl.WorkloadSchema, { workloadType: wl.WorkloadType.CRONJOB }))
        .workloadType,
    ).toBe("cronjob");
  });

  it("rejects what ztunnel rejects", () => {
    const bad = (init: Parameters<typeof create<typeof wl.WorkloadSchema>>[1]) =>
      codeOf(() => workloadFromProto(create(wl.WorkloadSchema, init)));
    expect(bad({ addresses: [new Uint8Array([1, 2, 3])] })).toBe("ERR_XDS_CONVERT");
    expect(bad({ tunnelProtocol: wl.TunnelProtocol.LEGACY_ISTIO_MTLS })).toBe("ERR_XDS_CONVERT");
    expect(bad({ status: 7 as wl.WorkloadStatus })).toBe("ERR_XDS_CONVERT");
    expect(bad({ waypoint: create(wl.GatewayAddressSchema, { hboneMtlsPort: 15008 }) })).toBe(
      "ERR_XDS_CONVERT",
    );
    expect(bad({ services: { "no-slash": create(wl.PortListSchema) } })).toBe("ERR_XDS_CONVERT");
  });

  it("refuses a bad IP or workload type on the way to proto", () => {
    const w = full.workloads[1] as Workload;
    expect(codeOf(() => workloadToProto({ ...w, workloadIps: ["10.0.0.300"] }))).toBe(
      "ERR_XDS_BAD_IP",
    );
    expect(codeOf(() => workloadToProto({ ...w, workloadType: "statefulset" }))).toBe(
      "ERR_XDS_CONVERT",
    );
    expect(workloadToProto({ ...w, workloadType: "Pod" }).workloadType).toBe(wl.WorkloadType.POD);
  });
});

describe("Service: domain ↔ proto", () => {
  it("round-trips (endpoints are not part of the message)", () => {
    const s = full.services[0];
    if (!s) throw new Error("fixture");
    expect(serviceKey(s)).toBe("prod/api.prod.svc.cluster.local");
    const bytes = encodeAddress(addressToProto({ kind: "service", service: s }));
    expect(addressFromProto(decodeAddress(bytes))).toEqual({
      kind: "service",
      service: { ...s, endpoints: {} },
    });
  });

  it("splits proto addresses into VIPs and CIDR VIPs by prefix length, as ztunnel does", () => {
    const s = serviceFromProto(
      create(wl.ServiceSchema, {
        addresses: [
          create(wl.NetworkAddressSchema, { network: "a", address: new Uint8Array([10, 0, 0, 1]) }),
          create(wl.NetworkAddressSchema, {
            network: "b",
            address: new Uint8Array([10, 0, 0, 2]),
            length: 32,
          }),
          create(wl.NetworkAddressSchema, {
            network: "c",
            address: new Uint8Array([10, 96, 0, 0]),
            length: 12,
          }),
        ],
        ipFamilies: wl.IPFamilies.AUTOMATIC,
        visibility: 9 as wl.Service_Visibility,
      }),
    );
    expect(s.vips).toEqual([
      { network: "a", address: "10.0.0.1" },
      { network: "b", address: "10.0.0.2" },
    ]);
    expect(s.cidrVips).toEqual([{ network: "c", cidr: "10.96.0.0/12" }]);
    expect(s.ipFamilies).toBeUndefined();
    expect(s.visibility).toBe("Public"); // unknown visibility fails open, as ztunnel does
    // back to proto: full-width VIPs carry no length, CIDR VIPs keep theirs
    expect(serviceToProto(s).addresses.map((a) => [a.network, a.length])).toEqual([
      ["a", undefined],
      ["b", undefined],
      ["c", 12],
    ]);
  });

  it("rejects an unspecified load-balancing scope and a weighted waypoint without destination", () => {
    const lb = create(wl.LoadBalancingSchema, {
      routingPreference: [wl.LoadBalancing_Scope.UNSPECIFIED_SCOPE],
    });
    expect(codeOf(() => serviceFromProto(create(wl.ServiceSchema, { loadBalancing: lb })))).toBe(
      "ERR_XDS_CONVERT",
    );
    const ww = create(wl.WeightedWaypointSchema, { weight: 1 });
    expect(
      codeOf(() => serviceFromProto(create(wl.ServiceSchema, { weightedWaypoints: [ww] }))),
    ).toBe("ERR_XDS_CONVERT");
    expect(codeOf(() => addressFromProto(create(wl.AddressSchema)))).toBe("ERR_XDS_CONVERT");
  });

  it("maps an unspecified LB mode to Standard", () => {
    const lb = create(wl.LoadBalancingSchema, { mode: wl.LoadBalancing_Mode.UNSPECIFIED_MODE });
    expect(serviceFromProto(create(wl.ServiceSchema, { loadBalancing: lb })).loadBalancer).toEqual({
      routingPreferences: [],
      mode: "Standard",
      healthPolicy: "OnlyHealthy",
    });
  });
});

describe("Authorization: domain ↔ proto", () => {
  it("round-trips every match field through protobuf bytes", () => {
    for (const p of full.policies) {
      const back = authorizationFromProto(
        decodeAuthorization(encodeAuthorization(authorizationToProto(p))),
      );
      expect(back).toEqual(p);
    }
  });

  it("turns CIDR strings into address bytes + length and back (IPv4 and IPv6)", () => {
    const policy: Authorization = {
      name: "p",
      namespace: "ns",
      scope: "Namespace",
      action: "Deny",
      dryRun: false,
      rules: [[[{ sourceIps: ["10.0.0.0/8", "2001:db8::/32"], destinationPorts: [80] }]]],
    };
    const m = authorizationToProto(policy).rules[0]?.clauses[0]?.matches[0];
    expect(m?.sourceIps.map((a) => [Array.from(a.address), a.length])).toEqual([
      [[10, 0, 0, 0], 8],
      [[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 32],
    ]);
    expect(authorizationToProto(policy).scope).toBe(sec.Scope.NAMESPACE);
    expect(authorizationToProto(policy).action).toBe(sec.Action.DENY);
    const bad: Authorization = { ...policy, rules: [[[{ notDestinationIps: ["10.0.0.1"] }]]] };
    expect(codeOf(() => authorizationToProto(bad))).toBe("ERR_XDS_BAD_IP");
  });

  it("drops what ztunnel drops: a StringMatch without a value and an unparsable prefix", () => {
    const a = create(sec.AuthorizationSchema, {
      name: "p",
      rules: [
        create(sec.RuleSchema, {
          clauses: [
            create(sec.ClauseSchema, {
              matches: [
                create(sec.MatchSchema, {
                  principals: [create(sec.StringMatchSchema)],
                  sourceIps: [
                    create(sec.AddressSchema, { address: new Uint8Array([1, 2, 3]), length: 8 }),
                    create(sec.AddressSchema, {
                      address: new Uint8Array([10, 0, 0, 0]),
                      length: 40,
                    }),
                    create(sec.AddressSchema, {
                      address: new Uint8Array([10, 0, 0, 0]),
                      length: 8,
                    }),
                  ],
                }),
              ],
            }),
          ],
        }),
      ],
    });
    expect(authorizationFromProto(a).rules).toEqual([[[{ sourceIps: ["10.0.0.0/8"] }]]]);
  });

  it("rejects unknown scope and action numbers", () => {
    expect(
      codeOf(() =>
        authorizationFromProto(create(sec.AuthorizationSchema, { scope: 5 as sec.Scope })),
      ),
    ).toBe("ERR_XDS_CONVERT");
    expect(
      codeOf(() =>
        authorizationFromProto(create(sec.AuthorizationSchema, { action: 2 as sec.Action })),
      ),
    ).toBe("ERR_XDS_CONVERT");
  });
});

describe("Authorization in proto3 JSON (istiod testdata shape)", () => {
  const fixture = parseYaml(
    readFileSync(join(here, "testdata", "istiod-authorization.yaml"), "utf8"),
  );

  it("reads istio/istio's naming (groups → rules → matches) into the domain form", () => {
    expect(authorizationFromProto(authorizationFromJson(fixture))).toEqual({
      name: "web-policy",
      namespace: "shop",
      scope: "WorkloadSelector",
      action: "Deny",
      dryRun: false,
      rules: [
        [
          [
            {
              principals: [
                { exact: "cluster.local/ns/shop/sa/frontend" },
                { prefix: "cluster.local/ns/shop/" },
              ],
              notPrincipals: [{ suffix: "/sa/batch" }, { presence: true }],
            },
          ],
          [{ sourceIps: ["10.1.0.0/16", "2001:db8::/32"], notSourceIps: ["192.168.0.0/16"] }],
        ],
        [
          [
            {
              namespaces: [{ exact: "shop" }],
              serviceAccounts: [{ namespace: "shop", serviceAccount: "api" }],
              destinationPorts: [8080, 8443],
              notDestinationPorts: [9090],
            },
          ],
        ],
      ],
    });
  });

  it("writes either naming and reads it back to the same message", () => {
    const msg = authorizationFromJson(fixture);
    const istio = authorizationToJson(msg, "istio") as Record<string, unknown>;
    expect(Object.keys(istio)).toContain("groups");
    expect(JSON.stringify(istio)).not.toContain("clauses");
    const ztunnel = authorizationToJson(msg) as Record<string, unknown>;
    expect(Object.keys(ztunnel)).toContain("rules");
    expect(JSON.stringify(ztunnel)).toContain("clauses");
    for (const json of [istio, ztunnel]) {
      expect(equals(sec.AuthorizationSchema, authorizationFromJson(json), msg)).toBe(true);
    }
  });

  it("rejects unknown fields and mixed naming with ERR_XDS_PROTO_DECODE", () => {
    expect(
      codeOf(() => authorizationFromJson({ name: "p", groups: [{ rules: [{ match: [] }] }] })),
    ).toBe("ERR_XDS_PROTO_DECODE");
    expect(codeOf(() => authorizationFromJson({ name: "p", groups: [], rules: [] }))).toBe(
      "ERR_XDS_PROTO_DECODE",
    );
    expect(codeOf(() => authorizationFromJson({ scope: "EVERYWHERE" }))).toBe(
      "ERR_XDS_PROTO_DECODE",
    );
  });
});
