import {
  baggageFromWorkload,
  formatBaggage,
  type PeerBaggage,
  parseBaggage,
  TelemetryError,
  tryFormatBaggage,
  tryParseBaggage,
  workloadFromBaggage,
} from "@ambientkit/telemetry";
import { describe, expect, test } from "vitest";

// Vectors from istio/ztunnel src/baggage.rs tests.
describe("Istio baggage (ztunnel vectors)", () => {
  test("parses ztunnel's example header", () => {
    expect(
      parseBaggage(
        "k8s.cluster.name=K1,k8s.namespace.name=NS1,k8s.deployment.name=N1,service.name=N2,service.version=V1",
      ),
    ).toEqual({
      clusterId: "K1",
      namespace: "NS1",
      workloadName: "N1",
      workloadType: "deployment",
      serviceName: "N2",
      serviceVersion: "V1",
    });
  });

  test("empty values leave fields unset", () => {
    expect(
      parseBaggage(
        "k8s.cluster.name=,k8s.namespace.name=,k8s.deployment.name=,service.name=,service.version=",
      ),
    ).toEqual({});
  });

  test("several header lines form one list", () => {
    expect(
      parseBaggage([
        "k8s.cluster.name=K1",
        "k8s.namespace.name=NS1",
        "k8s.deployment.name=N1",
        "service.name=N2",
        "service.version=V1",
      ]),
    ).toEqual({
      clusterId: "K1",
      namespace: "NS1",
      workloadName: "N1",
      workloadType: "deployment",
      serviceName: "N2",
      serviceVersion: "V1",
    });
  });

  test("no header → empty baggage", () => {
    expect(parseBaggage(undefined)).toEqual({});
    expect(parseBaggage("")).toEqual({});
  });

  test("formatted baggage parses back (ztunnel's round trip)", () => {
    for (const b of [
      {},
      {
        clusterId: "cluster",
        namespace: "default",
        workloadName: "workload",
        serviceName: "service",
      },
    ] as PeerBaggage[]) {
      const parsed = parseBaggage(formatBaggage(b));
      expect(parsed).toEqual(b.workloadName ? { ...b, workloadType: "deployment" } : b);
    }
  });
});

describe("formatting", () => {
  test("ztunnel order, no spaces, k8s.<type>.name, cloud.* last", () => {
    expect(
      formatBaggage({
        zone: "us-east1-b",
        region: "us-east1",
        serviceVersion: "v1",
        serviceName: "echo",
        workloadName: "echo-job",
        workloadType: "cronjob",
        namespace: "prod",
        clusterId: "Kubernetes",
      }),
    ).toBe(
      "k8s.cluster.name=Kubernetes,k8s.namespace.name=prod,k8s.cronjob.name=echo-job,service.name=echo,service.version=v1,cloud.region=us-east1,cloud.availability_zone=us-east1-b",
    );
  });

  test("app.* only when it differs from service.* (Envoy's rule)", () => {
    expect(
      formatBaggage({
        serviceName: "echo",
        appName: "echo",
        appVersion: "v2",
        serviceVersion: "v1",
      }),
    ).toBe("service.name=echo,service.version=v1,app.version=v2");
  });

  test("a value baggage cannot carry is a typed error, and try* never throws", () => {
    const r = tryFormatBaggage({ namespace: "has space" });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error).toBeInstanceOf(TelemetryError);
      expect(r.error.code).toBe("ERR_TELEMETRY_BAGGAGE_VALUE");
    }
    expect(() => formatBaggage({ serviceName: "a,b" })).toThrow(TelemetryError);
    expect(() =>
      formatBaggage({ workloadName: "x", workloadType: "statefulset" as never }),
    ).toThrow(/workload type/);
  });

  test("workload ↔ baggage", () => {
    const b = baggageFromWorkload({
      workloadName: "echo",
      workloadType: "deployment",
      namespace: "prod",
      canonicalService: "echo",
      canonicalRevision: "v1",
      clusterId: "Kubernetes",
      identity: "spiffe://cluster.local/ns/prod/sa/echo",
    });
    expect(formatBaggage(b)).toBe(
      "k8s.cluster.name=Kubernetes,k8s.namespace.name=prod,k8s.deployment.name=echo,service.name=echo,service.version=v1",
    );
    expect(
      workloadFromBaggage(parseBaggage(formatBaggage(b)), "spiffe://cluster.local/ns/prod/sa/echo"),
    ).toEqual({
      workloadName: "echo",
      workloadType: "deployment",
      namespace: "prod",
      canonicalService: "echo",
      canonicalRevision: "v1",
      app: "echo",
      version: "v1",
      identity: "spiffe://cluster.local/ns/prod/sa/echo",
      clusterId: "Kubernetes",
    });
    // Envoy: app.name stands in for a missing service.name
    expect(workloadFromBaggage(parseBaggage("app.name=web,app.version=v3"))).toMatchObject({
      canonicalService: "web",
      canonicalRevision: "v3",
      app: "web",
      version: "v3",
    });
  });
});

describe("W3C grammar", () => {
  test("OWS around members, properties and unknown keys are tolerated", () => {
    expect(
      parseBaggage(" k8s.namespace.name = ns1 ;prop=1 , other.key=x , k8s.pod.name=p-1\t"),
    ).toEqual({ namespace: "ns1", workloadName: "p-1", workloadType: "pod" });
  });

  test("last occurrence wins, an empty later value unsets", () => {
    expect(parseBaggage("service.name=a,service.name=b")).toEqual({ serviceName: "b" });
    expect(parseBaggage("service.name=a,service.name=")).toEqual({});
  });

  test.each([
    ["member without =", "k8s.namespace.name"],
    ["empty member", "service.name=a,,service.version=b"],
    ["trailing comma", "service.name=a,"],
    ["key with space", "service name=a"],
    ["empty key", "=a"],
    ["value with space", "service.name=a b"],
    ["value with quote", 'service.name="a"'],
    ["value with backslash", "service.name=a\\b"],
    ["non-ASCII value", "service.name=é"],
  ])("rejects %s (typed error; try* returns it)", (_what, header) => {
    const r = tryParseBaggage(header);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe("ERR_TELEMETRY_BAGGAGE_MALFORMED");
    expect(() => parseBaggage(header)).toThrow(TelemetryError);
  });

  test("rejects a header over 8192 bytes", () => {
    const r = tryParseBaggage(`service.name=${"a".repeat(8200)}`);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe("ERR_TELEMETRY_BAGGAGE_TOO_LONG");
  });

  test("lenient mode skips bad members like ztunnel and keeps the rest", () => {
    expect(
      parseBaggage("k8s.namespace.name=ns1,garbage,service.name=a b,service.version=v1", {
        mode: "lenient",
      }),
    ).toEqual({ namespace: "ns1", serviceVersion: "v1" });
  });
});
