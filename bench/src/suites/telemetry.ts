// @ambientkit/telemetry hot-path costs: one recorded L4 connection (open + bytes + close) and one
// L7 request, against recording the same series straight into prom-client (which hashes and
// validates the ~25 labels on every call); plus the header codecs ztunnel runs per connection.
import {
  formatBaggage,
  httpLabels,
  IstioMetrics,
  newTraceparentHeader,
  TcpLabelCache,
  tcpLabels,
  tryParseBaggage,
  tryParseTraceparent,
  workloadFromKubernetes,
} from "@ambientkit/telemetry";
import client from "prom-client";
import type { BenchGroup, BenchSuite } from "../harness.js";

const sleep = workloadFromKubernetes({
  name: "sleep-6d8bcd654d-t88gp",
  workloadName: "sleep",
  namespace: "default",
  labels: { app: "sleep", version: "v1" },
  serviceAccount: "sleep",
  clusterId: "Kubernetes",
});
const echo = workloadFromKubernetes({
  name: "echo-7f9c-abcde",
  workloadName: "echo",
  namespace: "prod",
  labels: { app: "echo", version: "v2" },
  serviceAccount: "echo",
  clusterId: "Kubernetes",
});
const ctx = {
  reporter: "source" as const,
  source: sleep,
  sourcePrincipal: sleep.identity as string,
  destination: echo,
  destinationService: { hostname: "echo.prod.svc.cluster.local", name: "echo", namespace: "prod" },
  securityPolicy: "mutual_tls" as const,
};

const suite: BenchSuite = {
  package: "telemetry",
  async groups(): Promise<BenchGroup[]> {
    const metrics = new IstioMetrics();
    const tcp = tcpLabels(ctx);
    const cache = new TcpLabelCache();
    const http = httpLabels({ ...ctx, reporter: "waypoint" });

    // Peer: the same series recorded directly with prom-client.
    const reg = new client.Registry();
    const names = tcp.labels.names as string[];
    const mk = (name: string) =>
      new client.Counter({ name, help: name, labelNames: names, registers: [reg] });
    const opened = mk("istio_tcp_connections_opened_total");
    const closed = mk("istio_tcp_connections_closed_total");
    const sent = mk("istio_tcp_sent_bytes_total");
    const recv = mk("istio_tcp_received_bytes_total");
    const tcpRecord = { ...tcp.labels.record };

    const httpNames = [
      ...http.peer.names,
      "request_protocol",
      "response_code",
      "grpc_response_status",
      "response_flags",
      "connection_security_policy",
    ];
    const reqs = new client.Counter({
      name: "istio_requests_total",
      help: "r",
      labelNames: httpNames,
      registers: [reg],
    });
    const hist = (name: string) =>
      new client.Histogram({
        name,
        help: name,
        labelNames: httpNames,
        buckets: [...metrics.buckets],
        registers: [reg],
      });
    const dur = hist("istio_request_duration_milliseconds");
    const rqb = hist("istio_request_bytes");
    const rsb = hist("istio_response_bytes");

    const baggage = formatBaggage({
      clusterId: "Kubernetes",
      namespace: "default",
      workloadName: "sleep",
      serviceName: "sleep",
      serviceVersion: "v1",
    });
    const traceparent = newTraceparentHeader();

    let i = 0;
    return [
      {
        name: "telemetry/connection",
        target: "open + sent + received + close < 2 µs per connection (labels resolved once)",
        ratio: {
          ours: "ambientkit openConnection+sent+received+close",
          peer: "prom-client inc ×4, 27 labels (peer)",
        },
        cases: [
          {
            name: "ambientkit openConnection+sent+received+close",
            fn: () => {
              const c = metrics.openConnection(tcp);
              c.received(512);
              c.sent(4096);
              c.close();
            },
          },
          {
            name: "ambientkit same, resolving labels per connection",
            fn: () => {
              const c = metrics.openConnection(tcpLabels(ctx));
              c.received(512);
              c.sent(4096);
              c.close();
            },
          },
          {
            name: "ambientkit same, labels from a TcpLabelCache per connection",
            fn: () => {
              const c = metrics.openConnection(cache.get(ctx));
              c.received(512);
              c.sent(4096);
              c.close();
            },
          },
          {
            name: "ambientkit same, with access-log record to a no-op logger",
            fn: () => {
              const c = logged.openConnection(tcp, {
                src: "10.0.0.1:40000",
                dst: "10.0.0.2:15008",
              });
              c.received(512);
              c.sent(4096);
              c.close();
            },
          },
          {
            name: "prom-client inc ×4, 27 labels (peer)",
            peer: true,
            fn: () => {
              opened.inc(tcpRecord);
              recv.inc(tcpRecord, 512);
              sent.inc(tcpRecord, 4096);
              closed.inc(tcpRecord);
            },
          },
        ],
      },
      {
        name: "telemetry/request",
        target: "one L7 request (counter + 3 histograms) < 2 µs",
        ratio: { ours: "ambientkit recordRequest", peer: "prom-client inc + observe ×3 (peer)" },
        cases: [
          {
            name: "ambientkit recordRequest",
            fn: () => {
              metrics.recordRequest(http, {
                responseCode: 200,
                durationMs: (i++ & 255) * 0.7,
                requestBytes: 300,
                responseBytes: 2048,
              });
            },
          },
          {
            name: "prom-client inc + observe ×3 (peer)",
            peer: true,
            fn: () => {
              const l = {
                ...http.peer.record,
                request_protocol: "http",
                response_code: "200",
                grpc_response_status: "",
                response_flags: "-",
                connection_security_policy: "mutual_tls",
              };
              reqs.inc(l);
              dur.observe(l, (i++ & 255) * 0.7);
              rqb.observe(l, 300);
              rsb.observe(l, 2048);
            },
          },
        ],
      },
      {
        name: "telemetry/codecs",
        target: "per-connection header work (ztunnel: baggage + traceparent on every CONNECT)",
        cases: [
          { name: "traceparent generate+format", fn: () => newTraceparentHeader() },
          { name: "traceparent parse", fn: () => tryParseTraceparent(traceparent) },
          { name: "baggage parse (5 members)", fn: () => tryParseBaggage(baggage) },
        ],
      },
    ];
  },
};

const logged = new IstioMetrics({ accessLog: { info: () => {}, warn: () => {} } });

export default suite;
