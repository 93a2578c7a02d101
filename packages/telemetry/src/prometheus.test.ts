import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  formatPrometheusText,
  httpLabels,
  IstioMetrics,
  tcpLabels,
  workloadFromKubernetes,
  ztunnelTcpLabels,
} from "@ambientkit/telemetry";
import { registerPrometheus } from "@ambientkit/telemetry/prometheus";
import client from "prom-client";
import { describe, expect, test } from "vitest";

// The independent checker: the Prometheus project's Python client parser (Debian
// python3-prometheus-client), fed the registry's scrape text. Debian's interpreter is named
// explicitly: a pyenv/venv `python3` earlier on PATH would not see Debian's dist-packages.
const parser = join(dirname(fileURLToPath(import.meta.url)), "testdata", "parse_prom.py");

interface Sample {
  name: string;
  labels: Array<[string, string]>;
  value: number;
}
interface Family {
  name: string;
  type: string;
  help: string;
  samples: Sample[];
}

function parse(text: string): Family[] {
  const out = execFileSync("/usr/bin/python3", [parser], { input: text, encoding: "utf8" });
  return JSON.parse(out) as Family[];
}

function family(fams: Family[], name: string): Family {
  const f = fams.find((x) => x.name === name);
  if (f === undefined)
    throw new Error(`family ${name} not in scrape: ${fams.map((x) => x.name).join(", ")}`);
  return f;
}

// Istio's label order for ztunnel's CommonTrafficLabels (src/proxy/metrics.rs), spelled out by
// hand here rather than imported, so the test checks the library against the reference.
const ZTUNNEL_ORDER = [
  "reporter",
  "source_workload",
  "source_canonical_service",
  "source_canonical_revision",
  "source_workload_namespace",
  "source_principal",
  "source_app",
  "source_version",
  "source_cluster",
  "destination_service",
  "destination_service_namespace",
  "destination_service_name",
  "destination_workload",
  "destination_canonical_service",
  "destination_canonical_revision",
  "destination_workload_namespace",
  "destination_principal",
  "destination_app",
  "destination_version",
  "destination_cluster",
  "request_protocol",
  "response_flags",
  "connection_security_policy",
  "source_region",
  "source_zone",
  "destination_region",
  "destination_zone",
];
// Envoy istio_stats emission order (populatePeerInfo, then log()).
const ENVOY_PEER_ORDER = [
  "reporter",
  "source_workload",
  "source_canonical_service",
  "source_canonical_revision",
  "source_workload_namespace",
  "source_principal",
  "source_app",
  "source_version",
  "source_cluster",
  "destination_workload",
  "destination_workload_namespace",
  "destination_principal",
  "destination_app",
  "destination_version",
  "destination_service",
  "destination_canonical_service",
  "destination_canonical_revision",
  "destination_service_name",
  "destination_service_namespace",
  "destination_cluster",
];
const ENVOY_HTTP_ORDER = [
  ...ENVOY_PEER_ORDER,
  "request_protocol",
  "response_code",
  "grpc_response_status",
  "response_flags",
  "connection_security_policy",
];
const ENVOY_TCP_ORDER = [
  ...ENVOY_PEER_ORDER,
  "request_protocol",
  "response_flags",
  "connection_security_policy",
];

const sleep = workloadFromKubernetes({
  name: "sleep-6d8bcd654d-t88gp",
  workloadName: "sleep",
  namespace: "default",
  labels: { app: "sleep", version: "v1" },
  serviceAccount: "sleep",
  clusterId: "Kubernetes",
  region: "us-east1",
  zone: "us-east1-b",
});
const echo = workloadFromKubernetes({
  name: "echo-7f9c-abcde",
  workloadName: "echo",
  namespace: "prod",
  labels: {
    "service.istio.io/canonical-name": "echo-svc",
    "service.istio.io/canonical-revision": "v2",
    app: "echo",
  },
  serviceAccount: "echo-sa",
  clusterId: "Kubernetes",
});
const echoService = { hostname: "echo.prod.svc.cluster.local", name: "echo", namespace: "prod" };

async function scrape(metrics: IstioMetrics): Promise<Family[]> {
  const registry = new client.Registry();
  registerPrometheus(metrics, { registry });
  return parse(await registry.metrics());
}

describe("Prometheus scrape parsed by prometheus_client.parser", () => {
  test("ztunnel source reporter (outbound HBONE): names, types, label names, order and values", async () => {
    const metrics = new IstioMetrics({ build: { component: "ztunnel", tag: "1.28.0" } });
    const conn = metrics.openConnection(
      ztunnelTcpLabels({
        reporter: "source",
        source: sleep,
        sourcePrincipal: "spiffe://cluster.local/ns/default/sa/sleep",
        destination: echo,
        destinationService: echoService,
        securityPolicy: "mutual_tls",
      }),
    );
    conn.received(67); // app → upstream (request direction)
    conn.sent(490); // upstream → app (response direction)
    conn.close();
    const fams = await scrape(metrics);

    const build = family(fams, "istio_build");
    expect(build.type).toBe("gauge");
    expect(build.samples).toEqual([
      {
        name: "istio_build",
        labels: [
          ["component", "ztunnel"],
          ["tag", "1.28.0"],
        ],
        value: 1,
      },
    ]);

    // The parser strips `_total` from counter family names and keeps it on samples.
    for (const [fam, sampleName, value] of [
      ["istio_tcp_connections_opened", "istio_tcp_connections_opened_total", 1],
      ["istio_tcp_connections_closed", "istio_tcp_connections_closed_total", 1],
      ["istio_tcp_received_bytes", "istio_tcp_received_bytes_total", 67],
      ["istio_tcp_sent_bytes", "istio_tcp_sent_bytes_total", 490],
    ] as const) {
      const f = family(fams, fam);
      expect(f.type).toBe("counter");
      expect(f.samples).toHaveLength(1);
      const s = f.samples[0] as Sample;
      expect(s.name).toBe(sampleName);
      expect(s.value).toBe(value);
      expect(s.labels.map(([k]) => k)).toEqual(ZTUNNEL_ORDER);
      expect(Object.fromEntries(s.labels)).toEqual({
        reporter: "source",
        source_workload: "sleep",
        source_canonical_service: "sleep",
        source_canonical_revision: "v1",
        source_workload_namespace: "default",
        source_principal: "spiffe://cluster.local/ns/default/sa/sleep",
        source_app: "sleep", // ztunnel: canonical name, not the app label
        source_version: "v1", // ztunnel: canonical revision
        source_cluster: "Kubernetes",
        destination_service: "echo.prod.svc.cluster.local",
        destination_service_namespace: "prod",
        destination_service_name: "echo",
        destination_workload: "echo",
        destination_canonical_service: "echo-svc",
        destination_canonical_revision: "v2",
        destination_workload_namespace: "prod",
        destination_principal: "spiffe://cluster.local/ns/prod/sa/echo-sa",
        destination_app: "echo-svc",
        destination_version: "v2",
        destination_cluster: "Kubernetes",
        request_protocol: "tcp",
        response_flags: "-",
        connection_security_policy: "mutual_tls",
        source_region: "us-east1",
        source_zone: "us-east1-b",
        destination_region: "unknown",
        destination_zone: "unknown",
      });
    }
    // No failure, so ztunnel creates no failed series.
    expect(family(fams, "istio_tcp_connections_failed").samples).toEqual([]);
  });

  test("ztunnel destination reporter (inbound, policy denial): defaults, flags on close only", async () => {
    const metrics = new IstioMetrics({ build: { component: "ztunnel" } });
    // Inbound: the source is known only by its mTLS identity; the destination is local.
    const conn = metrics.openConnection(
      tcpLabels({
        reporter: "destination",
        sourcePrincipal: "spiffe://cluster.local/ns/other/sa/client",
        destination: echo,
        securityPolicy: "mutual_tls",
      }),
    );
    conn.received(10);
    conn.close({ flags: "DENY", error: new Error("RBAC: access denied") });
    const fams = await scrape(metrics);
    expect(family(fams, "istio_build").samples[0]?.labels).toEqual([
      ["component", "ztunnel"],
      ["tag", "unknown"],
    ]);
    const opened = family(fams, "istio_tcp_connections_opened").samples;
    const closed = family(fams, "istio_tcp_connections_closed").samples;
    const failed = family(fams, "istio_tcp_connections_failed").samples;
    expect(opened).toHaveLength(1);
    expect(closed).toHaveLength(1);
    expect(failed).toHaveLength(1);
    const o = Object.fromEntries((opened[0] as Sample).labels);
    const c = Object.fromEntries((closed[0] as Sample).labels);
    expect(o).toMatchObject({
      reporter: "destination",
      source_workload: "unknown",
      source_canonical_service: "unknown",
      source_canonical_revision: "unknown", // ztunnel has no `latest` default
      source_workload_namespace: "unknown",
      source_principal: "spiffe://cluster.local/ns/other/sa/client",
      source_app: "unknown",
      source_version: "unknown",
      source_cluster: "unknown",
      destination_service: "unknown",
      destination_service_namespace: "unknown",
      destination_service_name: "unknown",
      destination_workload: "echo",
      destination_principal: "spiffe://cluster.local/ns/prod/sa/echo-sa",
      request_protocol: "tcp",
      response_flags: "-",
      connection_security_policy: "mutual_tls",
    });
    expect(c.response_flags).toBe("DENY");
    expect({ ...c, response_flags: "-" }).toEqual(o);
    expect(Object.fromEntries((failed[0] as Sample).labels)).toEqual(c);
    // Bytes keep the open-time labels.
    const recv = family(fams, "istio_tcp_received_bytes").samples;
    expect(recv).toHaveLength(1);
    expect(recv[0]?.value).toBe(10);
    expect(Object.fromEntries((recv[0] as Sample).labels)).toEqual(o);
  });

  test("waypoint reporter: Envoy L7 families, Envoy buckets, gRPC counters, TCP order", async () => {
    const metrics = new IstioMetrics();
    const ctx = {
      reporter: "waypoint" as const,
      source: sleep,
      sourcePrincipal: "spiffe://cluster.local/ns/default/sa/sleep",
      destination: {
        workloadName: "echo",
        namespace: "prod",
        identity: "spiffe://cluster.local/ns/prod/sa/echo-sa",
        clusterId: "Kubernetes",
      },
      destinationPrincipal: "spiffe://cluster.local/ns/prod/sa/waypoint",
      destinationService: { hostname: "echo.prod.svc.cluster.local" },
    };
    const http = httpLabels(ctx, "http");
    metrics.recordRequest(http, {
      responseCode: 200,
      durationMs: 7,
      requestBytes: 120,
      responseBytes: 5000,
    });
    metrics.recordRequest(http, {
      responseCode: 200,
      durationMs: 0.2,
      requestBytes: 120,
      responseBytes: 50,
    });
    metrics.recordRequest(http, {
      responseCode: 503,
      responseFlags: "UH",
      durationMs: 1,
      requestBytes: 90,
      responseBytes: 0,
    });
    const grpc = httpLabels(ctx, "grpc");
    metrics.recordRequest(grpc, {
      responseCode: 200,
      grpcStatus: 14,
      durationMs: 40,
      requestBytes: 10,
      responseBytes: 10,
      requestMessages: 3,
      responseMessages: 5,
    });
    const tcp = metrics.openConnection(tcpLabels(ctx));
    tcp.close();
    const fams = await scrape(metrics);

    expect(family(fams, "istio_build").samples[0]?.labels).toEqual([
      ["component", "proxy"],
      ["tag", "unknown"],
    ]);
    const req = family(fams, "istio_requests");
    expect(req.type).toBe("counter");
    expect(req.samples).toHaveLength(3);
    for (const s of req.samples) {
      expect(s.name).toBe("istio_requests_total");
      expect(s.labels.map(([k]) => k)).toEqual(ENVOY_HTTP_ORDER);
    }
    const ok = req.samples.find(
      (s) =>
        Object.fromEntries(s.labels).response_code === "200" &&
        Object.fromEntries(s.labels).request_protocol === "http",
    );
    expect(ok?.value).toBe(2);
    expect(Object.fromEntries((ok as Sample).labels)).toEqual({
      reporter: "waypoint",
      source_workload: "sleep",
      source_canonical_service: "sleep",
      source_canonical_revision: "v1",
      source_workload_namespace: "default",
      source_principal: "spiffe://cluster.local/ns/default/sa/sleep",
      source_app: "sleep",
      source_version: "v1",
      source_cluster: "Kubernetes",
      destination_workload: "echo",
      destination_workload_namespace: "prod",
      destination_principal: "spiffe://cluster.local/ns/prod/sa/waypoint",
      destination_app: "unknown",
      destination_version: "unknown",
      destination_service: "echo.prod.svc.cluster.local",
      destination_canonical_service: "unknown",
      destination_canonical_revision: "unknown", // waypoint: upstream endpoint metadata, no `latest`
      destination_service_name: "echo", // first label of the host
      destination_service_namespace: "unknown",
      destination_cluster: "Kubernetes",
      request_protocol: "http",
      response_code: "200",
      grpc_response_status: "",
      response_flags: "-",
      connection_security_policy: "mutual_tls",
    });
    const bad = req.samples.find((s) => Object.fromEntries(s.labels).response_code === "503");
    expect(Object.fromEntries((bad as Sample).labels).response_flags).toBe("UH");
    const g = req.samples.find((s) => Object.fromEntries(s.labels).request_protocol === "grpc");
    expect(Object.fromEntries((g as Sample).labels).grpc_response_status).toBe("14");

    const dur = family(fams, "istio_request_duration_milliseconds");
    expect(dur.type).toBe("histogram");
    const okBuckets = dur.samples.filter(
      (s) =>
        s.name === "istio_request_duration_milliseconds_bucket" &&
        Object.fromEntries(s.labels).response_code === "200" &&
        Object.fromEntries(s.labels).request_protocol === "http",
    );
    // Envoy's 19 default bounds plus +Inf, each labelled le=…
    expect(okBuckets.map((s) => Object.fromEntries(s.labels).le)).toEqual([
      "0.5",
      "1",
      "5",
      "10",
      "25",
      "50",
      "100",
      "250",
      "500",
      "1000",
      "2500",
      "5000",
      "10000",
      "30000",
      "60000",
      "300000",
      "600000",
      "1800000",
      "3600000",
      "+Inf",
    ]);
    expect(okBuckets.map((s) => s.value)).toEqual([
      1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    ]);
    const okSum = dur.samples.find(
      (s) =>
        s.name === "istio_request_duration_milliseconds_sum" &&
        Object.fromEntries(s.labels).response_code === "200" &&
        Object.fromEntries(s.labels).request_protocol === "http",
    );
    expect(okSum?.value).toBe(7); // whole milliseconds, as Envoy records them
    for (const s of dur.samples) {
      expect(s.labels.map(([k]) => k).filter((k) => k !== "le")).toEqual(ENVOY_HTTP_ORDER);
    }
    const reqBytes = family(fams, "istio_request_bytes");
    const respBytes = family(fams, "istio_response_bytes");
    expect(reqBytes.type).toBe("histogram");
    expect(respBytes.type).toBe("histogram");
    const count503 = respBytes.samples.find(
      (s) =>
        s.name === "istio_response_bytes_count" &&
        Object.fromEntries(s.labels).response_code === "503",
    );
    expect(count503?.value).toBe(1);

    // gRPC message counters carry the reporter and the 19 peer labels only.
    for (const [fam, value] of [
      ["istio_request_messages", 3],
      ["istio_response_messages", 5],
    ] as const) {
      const f = family(fams, fam);
      expect(f.type).toBe("counter");
      expect(f.samples).toHaveLength(1);
      expect(f.samples[0]?.labels.map(([k]) => k)).toEqual(ENVOY_PEER_ORDER);
      expect(f.samples[0]?.value).toBe(value);
    }

    // Envoy-flavoured TCP series from the waypoint.
    const opened = family(fams, "istio_tcp_connections_opened").samples;
    expect(opened[0]?.labels.map(([k]) => k)).toEqual(ENVOY_TCP_ORDER);
    expect(Object.fromEntries((opened[0] as Sample).labels)).toMatchObject({
      reporter: "waypoint",
      request_protocol: "tcp",
      response_flags: "-",
      connection_security_policy: "mutual_tls",
    });
  });

  test("formatPrometheusText (no prom-client) parses to the same families as the prom-client scrape", async () => {
    const metrics = new IstioMetrics({ build: { component: "ztunnel", tag: "1.28.0" } });
    const odd = { ...sleep, workloadName: 'we"ird\\name\nx' };
    const c = metrics.openConnection(
      tcpLabels({ reporter: "source", source: odd, destination: echo }),
    );
    c.received(5);
    c.close({ flags: "NETWORK_POLICY" });
    const grpc = httpLabels({ reporter: "waypoint", source: sleep, destination: echo }, "grpc");
    metrics.recordRequest(grpc, {
      responseCode: 200,
      grpcStatus: 0,
      durationMs: 3,
      requestBytes: 1,
      responseBytes: 2,
      requestMessages: 1,
    });
    const viaProm = await scrape(metrics);
    const viaText = parse(formatPrometheusText(metrics));
    const norm = (fams: Family[]) =>
      fams
        .map((f) => ({
          ...f,
          samples: [...f.samples].sort((a, b) =>
            JSON.stringify(a).localeCompare(JSON.stringify(b)),
          ),
        }))
        .sort((a, b) => a.name.localeCompare(b.name));
    expect(norm(viaText)).toEqual(norm(viaProm));
    const opened = family(viaText, "istio_tcp_connections_opened").samples[0] as Sample;
    expect(Object.fromEntries(opened.labels).source_workload).toBe('we"ird\\name\nx');
  });

  test("an OpenMetrics registry prints the same families with `_total` on counter samples", async () => {
    const metrics = new IstioMetrics();
    metrics.openConnection(tcpLabels({ reporter: "source", source: sleep })).close();
    // prom-client's typings omit the constructor's content-type argument.
    const OpenMetricsRegistry = client.Registry as unknown as new (
      contentType: string,
    ) => client.Registry<client.OpenMetricsContentType>;
    const registry = new OpenMetricsRegistry(client.Registry.OPENMETRICS_CONTENT_TYPE);
    registerPrometheus(metrics, { registry });
    const text = await registry.metrics();
    expect(text).toContain("# TYPE istio_tcp_connections_opened counter");
    expect(text).toMatch(/\nistio_tcp_connections_opened_total\{reporter="source",/);
    expect(text.endsWith("# EOF\n")).toBe(true);
  });

  test("without a registry, prom-client's default `register` is used", async () => {
    const metrics = new IstioMetrics();
    metrics.openConnection(tcpLabels({ reporter: "destination" })).close();
    const reg = registerPrometheus(metrics);
    try {
      expect(reg.registry).toBe(client.register);
      const fams = parse(await client.register.metrics());
      expect(family(fams, "istio_tcp_connections_closed").samples[0]?.value).toBe(1);
    } finally {
      reg.unregister();
    }
    expect(client.register.getSingleMetric("istio_tcp_connections_closed_total")).toBeUndefined();
  });

  test("registering twice in one registry fails with prom-client's error and leaves no partial state", () => {
    const metrics = new IstioMetrics();
    const registry = new client.Registry();
    const reg = registerPrometheus(metrics, { registry });
    expect(() => registerPrometheus(new IstioMetrics(), { registry })).toThrow(
      /already been registered/,
    );
    expect(registry.getMetricsAsArray()).toHaveLength(reg.names.length);
    reg.unregister();
    expect(registry.getMetricsAsArray()).toHaveLength(0);
  });
});
