import { IstioMetrics, METRIC_NAMES, tcpLabels, tunnelRecorder } from "@ambientkit/telemetry";
import { describe, expect, test } from "vitest";

describe("tunnelRecorder", () => {
  test('bytes: "close" counts once from the close summary, in the same directions, with no per-chunk hook', () => {
    const metrics = new IstioMetrics({ accessLog: { info: () => {}, warn: () => {} } });
    const hooks = tunnelRecorder(metrics, {
      labels: (info) => tcpLabels({ reporter: info.role === "client" ? "source" : "destination" }),
      bytes: "close",
    });
    expect(hooks.onBytes).toBeUndefined();
    const server = {
      role: "server" as const,
      localAddress: "10.0.0.2",
      localPort: 15008,
      remoteAddress: "10.0.0.1",
      remotePort: 40000,
    };
    const client = { ...server, role: "client" as const };
    hooks.onConnect(server);
    hooks.onConnect(client);
    // server: received 100 of request, sent 900 of response; client: the mirror image
    hooks.onClose(server, { bytesReceived: 100, bytesSent: 900 });
    hooks.onClose(client, { bytesSent: 100, bytesReceived: 900 });
    hooks.onClose(server, { bytesReceived: 5, bytesSent: 5 }); // a second close is ignored
    for (const reporter of ["source", "destination"]) {
      const at = (name: string) =>
        metrics.counter(name).find((s) => s.labels.reporter === reporter)?.value;
      expect(at(METRIC_NAMES.tcpReceivedBytes)).toBe(100);
      expect(at(METRIC_NAMES.tcpSentBytes)).toBe(900);
    }
  });

  test("maps hook directions onto Istio's request/response directions for both roles", () => {
    const records: object[] = [];
    const metrics = new IstioMetrics({
      accessLog: { info: (o) => records.push(o), warn: (o) => records.push(o) },
    });
    const hooks = tunnelRecorder(metrics, {
      labels: (info) =>
        tcpLabels({
          reporter: info.role === "client" ? "source" : "destination",
          securityPolicy: "mutual_tls",
        }),
    });
    const client = {
      role: "client" as const,
      localAddress: "10.0.0.1",
      localPort: 40000,
      remoteAddress: "10.0.0.2",
      remotePort: 15008,
    };
    const server = {
      role: "server" as const,
      localAddress: "10.0.0.2",
      localPort: 15008,
      remoteAddress: "10.0.0.1",
      remotePort: 40000,
    };
    hooks.onConnect(client);
    hooks.onConnect(server);
    // 100 bytes of request flow client → server, 900 bytes of response flow back.
    hooks.onBytes?.(client, "sent", 100);
    hooks.onBytes?.(server, "received", 100);
    hooks.onBytes?.(server, "sent", 900);
    hooks.onBytes?.(client, "received", 900);
    hooks.onClose(client, {});
    hooks.onClose(server, { error: new Error("boom") });
    hooks.onClose(server, {}); // second close is ignored
    for (const reporter of ["source", "destination"]) {
      const recv = metrics
        .counter(METRIC_NAMES.tcpReceivedBytes)
        .find((s) => s.labels.reporter === reporter);
      const sent = metrics
        .counter(METRIC_NAMES.tcpSentBytes)
        .find((s) => s.labels.reporter === reporter);
      expect(recv?.value).toBe(100);
      expect(sent?.value).toBe(900);
    }
    expect(records).toHaveLength(2);
    // Access logs: outbound unflips (the app sent 100), inbound reports its own view (sent 900).
    expect(records[0]).toMatchObject({
      "src.addr": "10.0.0.1:40000",
      "dst.addr": "10.0.0.2:15008",
      direction: "outbound",
      bytes_sent: 100,
      bytes_recv: 900,
    });
    expect(records[1]).toMatchObject({
      "src.addr": "10.0.0.1:40000",
      "dst.addr": "10.0.0.2:15008",
      direction: "inbound",
      bytes_sent: 900,
      bytes_recv: 100,
      error: "boom",
    });
  });

  test("a throwing label resolver or logger never escapes a hook", () => {
    const metrics = new IstioMetrics({
      accessLog: {
        info: () => {
          throw new Error("x");
        },
        warn: () => {},
      },
    });
    const info = {
      role: "server" as const,
      localAddress: "::1",
      localPort: 1,
      remoteAddress: "::1",
      remotePort: 2,
    };
    const bad = tunnelRecorder(metrics, {
      labels: () => {
        throw new Error("no labels");
      },
    });
    expect(() => bad.onConnect(info)).not.toThrow();
    const good = tunnelRecorder(metrics, { labels: () => tcpLabels({ reporter: "destination" }) });
    good.onConnect(info);
    expect(() => good.onClose(info, {})).not.toThrow();
    expect(metrics.counter(METRIC_NAMES.tcpClosed)[0]?.value).toBe(1);
  });
});
