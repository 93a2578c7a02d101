import {
  type AccessLogger,
  formatAccessLogJson,
  formatAccessLogPlain,
  httpLabels,
  IstioMetrics,
  logEarlyDeny,
  METRIC_NAMES,
  socketAddr,
  tcpLabels,
  workloadFromKubernetes,
} from "@ambientkit/telemetry";
import { bridgeToOpenTelemetry } from "@ambientkit/telemetry/otel";
import {
  AggregationTemporality,
  type DataPoint,
  type Histogram,
  MeterProvider,
  MetricReader,
} from "@opentelemetry/sdk-metrics";
import pino from "pino";
import { describe, expect, test } from "vitest";

const shell = workloadFromKubernetes({
  name: "shell-6d8bcd654d-t88gp",
  workloadName: "shell",
  namespace: "default",
  labels: { app: "shell" },
  serviceAccount: "default",
});
const echo = workloadFromKubernetes({
  name: "echo-5f6d-xyz",
  workloadName: "echo",
  namespace: "default",
  labels: { app: "echo" },
  serviceAccount: "echo",
});
const echoSvc = { hostname: "echo.default.svc.cluster.local", name: "echo", namespace: "default" };

function capture(): { logger: AccessLogger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino(
    { base: null, timestamp: false },
    { write: (s: string) => lines.push(JSON.parse(s)) },
  );
  return { logger, lines };
}

describe("connection recording", () => {
  test("ztunnel's README access-log example, through a real pino logger", () => {
    let t = 1000;
    const { logger, lines } = capture();
    const metrics = new IstioMetrics({ accessLog: logger, now: () => t });
    const conn = metrics.openConnection(
      tcpLabels({
        reporter: "source",
        source: shell,
        sourcePrincipal: shell.identity as string,
        destination: echo,
        destinationService: echoSvc,
        securityPolicy: "mutual_tls",
      }),
      { src: "10.244.0.24:46238", dst: "10.244.0.42:15008", hboneAddr: "10.96.108.116:80" },
    );
    conn.received(67); // the app sent 67 bytes upstream
    conn.sent(490); // and got 490 back
    t += 13.7;
    const record = conn.close();
    expect(lines).toHaveLength(1);
    const line = lines[0] as Record<string, unknown>;
    expect(line.msg).toBe("connection complete");
    expect(line.level).toBe(30); // pino info
    const { msg: _m, level: _l, ...fields } = line;
    expect(fields).toEqual(record);
    // Keys in ztunnel's order, absent values omitted, bytes from the app's point of view.
    expect(Object.entries(record ?? {})).toEqual([
      ["src.addr", "10.244.0.24:46238"],
      ["src.workload", "shell-6d8bcd654d-t88gp"],
      ["src.namespace", "default"],
      ["src.identity", "spiffe://cluster.local/ns/default/sa/default"],
      ["dst.addr", "10.244.0.42:15008"],
      ["dst.hbone_addr", "10.96.108.116:80"],
      ["dst.service", "echo.default.svc.cluster.local"],
      ["dst.workload", "echo-5f6d-xyz"],
      ["dst.namespace", "default"],
      ["dst.identity", "spiffe://cluster.local/ns/echo/sa/echo".replace("ns/echo", "ns/default")],
      ["direction", "outbound"],
      ["bytes_sent", 67],
      ["bytes_recv", 490],
      ["duration", "13ms"],
    ]);
    expect(
      formatAccessLogPlain(record as NonNullable<typeof record>, {
        time: new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 678)),
      }),
    ).toBe(
      '2024-01-02T03:04:05.678000Z\tinfo\taccess\tconnection complete\tsrc.addr=10.244.0.24:46238 src.workload="shell-6d8bcd654d-t88gp" src.namespace="default" src.identity="spiffe://cluster.local/ns/default/sa/default" dst.addr=10.244.0.42:15008 dst.hbone_addr=10.96.108.116:80 dst.service="echo.default.svc.cluster.local" dst.workload="echo-5f6d-xyz" dst.namespace="default" dst.identity="spiffe://cluster.local/ns/default/sa/echo" direction="outbound" bytes_sent=67 bytes_recv=490 duration="13ms"',
    );
    // close() is idempotent; bytes after close are ignored.
    conn.sent(5);
    expect(conn.close()).toBeUndefined();
    expect(lines).toHaveLength(1);
    expect(metrics.counter(METRIC_NAMES.tcpSentBytes)[0]?.value).toBe(490);
    expect(metrics.counter(METRIC_NAMES.tcpReceivedBytes)[0]?.value).toBe(67);
  });

  test("inbound: bytes not unflipped, identities only with mTLS, failure logged at ERROR with error", () => {
    const { logger, lines } = capture();
    const metrics = new IstioMetrics({ accessLog: logger, now: () => 0 });
    const conn = metrics.openConnection(
      tcpLabels({
        reporter: "destination",
        sourcePrincipal: shell.identity as string,
        destination: echo,
      }),
      { src: socketAddr("fd00::1", 5555), dst: socketAddr("10.0.0.9", 8080) },
    );
    conn.received(3);
    conn.sent(4);
    const rec = conn.close({ error: new Error("connection reset") });
    expect(rec).toMatchObject({
      "src.addr": "[fd00::1]:5555",
      "dst.addr": "10.0.0.9:8080",
      direction: "inbound",
      bytes_sent: 4,
      bytes_recv: 3,
      duration: "0ms",
      error: "connection reset",
    });
    expect(rec).not.toHaveProperty("src.identity"); // not mTLS
    expect(lines[0]?.level).toBe(50); // pino error
    // An error without a flag is ztunnel's ConnectionFailure: CONNECT, counted as failed.
    const closed = metrics.counter(METRIC_NAMES.tcpClosed);
    expect(closed.map((s) => s.labels.response_flags)).toEqual(["CONNECT"]);
    expect(metrics.counter(METRIC_NAMES.tcpFailed)).toHaveLength(1);
    expect(formatAccessLogJson(rec as NonNullable<typeof rec>, { time: new Date(0) })).toBe(
      '{"level":"error","time":"1970-01-01T00:00:00.000000Z","scope":"access","message":"connection complete","src.addr":"[fd00::1]:5555","dst.addr":"10.0.0.9:8080","dst.workload":"echo-5f6d-xyz","dst.namespace":"default","direction":"inbound","bytes_sent":4,"bytes_recv":3,"duration":"0ms","error":"connection reset"}',
    );
  });

  test("a plain {info,warn} logger works; early denial is 'connection failed' at WARN", () => {
    const calls: Array<[string, object, string]> = [];
    const logger: AccessLogger = {
      info: (o, m) => calls.push(["info", o, m]),
      warn: (o, m) => calls.push(["warn", o, m]),
    };
    const metrics = new IstioMetrics({ accessLog: logger });
    metrics
      .openConnection(tcpLabels({ reporter: "source", source: shell }), {
        src: "1.1.1.1:1",
        dst: "2.2.2.2:2",
      })
      .close({ flags: "TLS_FAILURE", error: "handshake failed" });
    expect(calls[0]?.[0]).toBe("warn"); // no `error` method → warn
    expect(calls[0]?.[2]).toBe("connection complete");
    const deny = logEarlyDeny(
      logger,
      { src: "1.1.1.1:1", dst: "2.2.2.2:2" },
      "destination",
      new Error("denied"),
    );
    expect(calls[1]).toEqual(["warn", deny, "connection failed"]);
    expect(deny).toEqual({
      "src.addr": "1.1.1.1:1",
      "dst.addr": "2.2.2.2:2",
      direction: "inbound",
      error: "denied",
    });
  });

  test("a throwing logger does not make close() throw; the close is still counted", () => {
    const metrics = new IstioMetrics({
      accessLog: {
        info: () => {
          throw new Error("disk full");
        },
        warn: () => {},
      },
    });
    const c = metrics.openConnection(tcpLabels({ reporter: "source" }), { src: "a:1", dst: "b:2" });
    expect(() => c.close()).not.toThrow();
    expect(metrics.counter(METRIC_NAMES.tcpClosed)[0]?.value).toBe(1);
  });

  test("with pino at debug, 'connection opened' is written at DEBUG when the connection opens", () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino(
      { base: null, timestamp: false, level: "debug" },
      { write: (s: string) => lines.push(JSON.parse(s)) },
    );
    const metrics = new IstioMetrics({ accessLog: logger });
    const c = metrics.openConnection(
      tcpLabels({
        reporter: "source",
        source: shell,
        destination: echo,
        destinationService: echoSvc,
      }),
      { src: "10.0.0.1:1000", dst: "10.0.0.2:15008" },
    );
    expect(lines).toEqual([
      {
        level: 20,
        msg: "connection opened",
        "src.addr": "10.0.0.1:1000",
        "src.workload": "shell-6d8bcd654d-t88gp",
        "src.namespace": "default",
        "dst.addr": "10.0.0.2:15008",
        "dst.service": "echo.default.svc.cluster.local",
        "dst.workload": "echo-5f6d-xyz",
        "dst.namespace": "default",
        direction: "outbound",
      },
    ]);
    c.close();
    expect(lines[1]?.msg).toBe("connection complete");
  });

  test("one label set is one series: many connections aggregate", () => {
    const metrics = new IstioMetrics();
    const labels = tcpLabels({ reporter: "source", source: shell, destination: echo });
    for (let i = 0; i < 10; i++) {
      const c = metrics.openConnection(labels);
      c.received(1);
      c.sent(2);
      c.sent(-5); // ignored
      c.sent(Number.NaN); // ignored
      c.close();
    }
    // An equal but separately resolved label set lands in the same series.
    metrics
      .openConnection(tcpLabels({ reporter: "source", source: shell, destination: echo }))
      .close();
    expect(metrics.counter(METRIC_NAMES.tcpOpened)).toHaveLength(1);
    expect(metrics.counter(METRIC_NAMES.tcpOpened)[0]?.value).toBe(11);
    expect(metrics.counter(METRIC_NAMES.tcpClosed)[0]?.value).toBe(11);
    expect(metrics.counter(METRIC_NAMES.tcpSentBytes)[0]?.value).toBe(20);
    expect(metrics.counter(METRIC_NAMES.tcpReceivedBytes)[0]?.value).toBe(10);
    expect(metrics.seriesCount).toBe(1);
  });
});

class TestReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

describe("OpenTelemetry bridge (real MeterProvider)", () => {
  test("counters, Envoy-bucket histograms and istio_build reach the SDK with Istio's attributes", async () => {
    const reader = new TestReader({
      aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE,
    });
    const provider = new MeterProvider({ readers: [reader] });
    const metrics = new IstioMetrics({ build: { component: "proxy", tag: "1.28.0" } });
    const bridge = bridgeToOpenTelemetry(metrics, provider.getMeter("ambientkit-test"));
    const conn = metrics.openConnection(
      tcpLabels({ reporter: "source", source: shell, destination: echo }),
    );
    conn.received(100);
    conn.close();
    const hl = httpLabels({ reporter: "waypoint", source: shell, destination: echo });
    metrics.recordRequest(hl, {
      responseCode: 200,
      durationMs: 12,
      requestBytes: 10,
      responseBytes: 700,
    });

    const { resourceMetrics, errors } = await reader.collect();
    expect(errors).toEqual([]);
    const all = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics);
    const byName = new Map(all.map((m) => [m.descriptor.name, m]));
    const recv = byName.get("istio_tcp_received_bytes_total");
    expect(recv?.dataPoints).toHaveLength(1);
    expect(recv?.dataPoints[0]?.value).toBe(100);
    expect(recv?.dataPoints[0]?.attributes).toMatchObject({
      reporter: "source",
      source_workload: "shell",
      destination_workload: "echo",
      response_flags: "-",
    });
    expect(byName.get("istio_requests_total")?.dataPoints[0]?.value).toBe(1);
    expect(byName.get("istio_build")?.dataPoints[0]?.attributes).toEqual({
      component: "proxy",
      tag: "1.28.0",
    });
    const dur = byName.get("istio_request_duration_milliseconds");
    expect(dur?.descriptor.unit).toBe("ms");
    const point = dur?.dataPoints[0] as DataPoint<Histogram>;
    expect(point.value.buckets.boundaries).toEqual([
      0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000,
      1800000, 3600000,
    ]);
    expect(point.value.sum).toBe(12);
    expect(point.value.count).toBe(1);
    expect(point.attributes).toMatchObject({ reporter: "waypoint", response_code: "200" });

    bridge.close();
    metrics.recordRequest(hl, {
      responseCode: 200,
      durationMs: 1,
      requestBytes: 1,
      responseBytes: 1,
    });
    const after = await reader.collect();
    const durAfter = after.resourceMetrics.scopeMetrics
      .flatMap((s) => s.metrics)
      .find((m) => m.descriptor.name === "istio_request_duration_milliseconds");
    // No longer forwarded after close().
    const pointAfter = durAfter?.dataPoints[0] as DataPoint<Histogram> | undefined;
    expect(pointAfter?.value.count).toBe(1);
    await provider.shutdown();
  });
});
