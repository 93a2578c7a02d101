// The delta-xDS client against an independent control plane (python-grpcio, protobuf by field number).
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatPrometheusText } from "@ambientkit/telemetry";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  ADDRESS_TYPE_URL,
  AUTHORIZATION_TYPE_URL,
  DeltaXdsClient,
  type XdsClientOptions,
} from "./client.js";
import type { XdsClientError } from "./errors.js";
import { XdsMetrics, type XdsTerminationReason } from "./metrics.js";
import { ztunnelNode } from "./node-info.js";
import { MeshStateStore, type StateEvent } from "./state.js";
import { ControlPlane, type CpRequest, opensslRoot } from "./testing.testutil.js";

const node = ztunnelNode({
  instanceIp: "10.0.0.9",
  podName: "ztunnel-abc",
  podNamespace: "istio-system",
  nodeName: "node-1",
});
const fast = { initialMs: 20, maxMs: 200, jitter: 0.2 };
const dir = mkdtempSync(join(tmpdir(), "xds-client-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const planes: ControlPlane[] = [];
const clients: DeltaXdsClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(planes.splice(0).map((p) => p.close()));
});

async function plane(args: string[] = []): Promise<ControlPlane> {
  const cp = await ControlPlane.start(args);
  planes.push(cp);
  return cp;
}

interface Harness {
  client: DeltaXdsClient;
  state: MeshStateStore;
  metrics: XdsMetrics;
  events: StateEvent[];
  rejected: XdsClientError[];
  disconnects: Array<{ error: XdsClientError | undefined; reason: XdsTerminationReason }>;
}

function client(cp: ControlPlane, extra: Partial<XdsClientOptions> = {}): Harness {
  const state = new MeshStateStore();
  const metrics = new XdsMetrics();
  const h: Harness = {
    state,
    metrics,
    events: [],
    rejected: [],
    disconnects: [],
    client: undefined as unknown as DeltaXdsClient,
  };
  state.subscribe((e) => h.events.push(...e));
  h.client = new DeltaXdsClient(
    { address: `http://127.0.0.1:${cp.port}`, node, state, metrics, backoff: fast, ...extra },
    {
      rejected: (r) => h.rejected.push(r.error),
      disconnected: (error, reason) => h.disconnects.push({ error, reason }),
    },
  );
  clients.push(h.client);
  return h;
}

const wl = (n: number) => ({
  uid: `Kubernetes//Pod/default/app-${n}`,
  name: `app-${n}`,
  namespace: "default",
  addresses: [`10.0.1.${n}`],
  protocol: "HBONE" as const,
  serviceAccount: `sa-${n}`,
  node: "node-1",
});

/** Waits for the client's first request of both types on a new stream. */
async function initialRequests(cp: ControlPlane, stream: number): Promise<Map<string, CpRequest>> {
  const out = new Map<string, CpRequest>();
  await cp.next((e) => e.event === "stream" && e.id === stream);
  for (const typeUrl of [ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL]) {
    out.set(
      typeUrl,
      (await cp.next(
        (e) => e.event === "request" && e.stream === stream && e.typeUrl === typeUrl,
      )) as unknown as CpRequest,
    );
  }
  return out;
}

describe("delta ADS against a python-grpcio control plane", () => {
  beforeAll(() => {
    execFileSync("/usr/bin/python3", ["-c", "import grpc"], { stdio: "pipe" });
  });

  it("subscribes with ztunnel's node, applies the initial state, ACKs by nonce and becomes ready", async () => {
    const cp = await plane();
    const h = client(cp);
    h.client.start();
    const first = await initialRequests(cp, 1);
    const addr = first.get(ADDRESS_TYPE_URL);
    expect(addr?.nodeId).toBe(
      "ztunnel~10.0.0.9~ztunnel-abc.istio-system~istio-system.svc.cluster.local",
    );
    expect(addr?.nonce).toBe("");
    expect(addr?.initialVersions).toEqual({});
    expect(h.state.isReady()).toBe(false);

    const ack = cp.nextRequest((r) => r.nonce === "a1");
    cp.push(ADDRESS_TYPE_URL, "a1", [
      { name: wl(1).uid, version: "v1", workload: wl(1) },
      { name: wl(2).uid, version: "v1", workload: wl(2) },
    ]);
    const a = await ack;
    expect(a.typeUrl).toBe(ADDRESS_TYPE_URL);
    expect(a.error).toBeNull();
    expect(h.state.workloadByIp("10.0.1.2")?.name).toBe("app-2");
    expect(h.state.workloadByUid(wl(1).uid)?.serviceAccount).toBe("sa-1");
    expect(h.state.isReady()).toBe(false); // Authorization not yet received

    const ack2 = cp.nextRequest((r) => r.nonce === "z1");
    cp.push(AUTHORIZATION_TYPE_URL, "z1", [
      {
        name: "default/allow-ns",
        version: "p1",
        authorization: { name: "allow-ns", namespace: "default", ruleNamespaces: [["default"]] },
      },
    ]);
    expect((await ack2).error).toBeNull();
    await h.client.ready();
    expect(h.state.policy("default/allow-ns")?.action).toBe("Allow");
    expect(h.metrics.messages(ADDRESS_TYPE_URL)).toBe(1);
    const text = formatPrometheusText(h.metrics.collect());
    expect(text).toContain(`istio_xds_message_total{url="${ADDRESS_TYPE_URL}"} 1`);
    expect(text).toMatch(
      /istio_xds_message_bytes_total\{url="type.googleapis.com\/istio.workload.Address"\} [1-9]\d*/,
    );
  });

  it("applies a push that adds a workload and one that removes one, with events", async () => {
    const cp = await plane();
    const h = client(cp);
    h.client.start();
    await initialRequests(cp, 1);
    let ack = cp.nextRequest((r) => r.nonce === "1");
    cp.push(ADDRESS_TYPE_URL, "1", [{ name: wl(1).uid, version: "v1", workload: wl(1) }]);
    await ack;
    h.events.length = 0;

    ack = cp.nextRequest((r) => r.nonce === "2");
    cp.push(ADDRESS_TYPE_URL, "2", [{ name: wl(3).uid, version: "v1", workload: wl(3) }]);
    await ack;
    expect(h.events.map((e) => `${e.op} ${e.kind} ${e.key}`)).toEqual([
      `add workload ${wl(3).uid}`,
    ]);
    expect(h.state.workloadCount).toBe(2);

    ack = cp.nextRequest((r) => r.nonce === "3");
    cp.push(ADDRESS_TYPE_URL, "3", [], [wl(1).uid]);
    expect((await ack).error).toBeNull();
    expect(h.state.workloadByIp("10.0.1.1")).toBeUndefined();
    expect(h.state.workloadCount).toBe(1);
    expect(h.events.at(-1)).toMatchObject({ op: "remove", kind: "workload", key: wl(1).uid });
  });

  it("NACKs a malformed resource with error_detail and keeps the last good state", async () => {
    const cp = await plane();
    const h = client(cp);
    h.client.start();
    await initialRequests(cp, 1);
    let ack = cp.nextRequest((r) => r.nonce === "good");
    cp.push(ADDRESS_TYPE_URL, "good", [{ name: wl(1).uid, version: "v1", workload: wl(1) }]);
    await ack;
    const before = h.state.snapshot();

    // One good resource beside undecodable bytes: nothing of the batch is applied.
    ack = cp.nextRequest((r) => r.nonce === "bad");
    cp.push(ADDRESS_TYPE_URL, "bad", [
      { name: wl(2).uid, version: "v2", workload: wl(2) },
      { name: "garbage", version: "v2", hex: "ffffffff0f" },
    ]);
    const nack = await ack;
    expect(nack.error?.code).toBe(3);
    expect(nack.error?.message).toMatch(/address resource "garbage"/);
    expect(h.state.snapshot()).toEqual(before);
    expect(h.state.versions("address").get(wl(2).uid)).toBeUndefined();
    expect(h.rejected.at(-1)?.code).toBe("ERR_XDS_CLIENT_REJECTED");

    // An Address holding neither a workload nor a service fails the conversion.
    ack = cp.nextRequest((r) => r.nonce === "empty");
    cp.push(ADDRESS_TYPE_URL, "empty", [{ name: "nothing", version: "v3", hex: "" }]);
    expect((await ack).error?.message).toMatch(/neither a workload nor a service/);

    // A resource whose Any says another type.
    ack = cp.nextRequest((r) => r.nonce === "mixed");
    cp.push(ADDRESS_TYPE_URL, "mixed", [
      {
        name: "default/p",
        version: "v3",
        authorization: { name: "p", namespace: "default" },
        anyTypeUrl: AUTHORIZATION_TYPE_URL,
      },
    ]);
    expect((await ack).error?.message).toMatch(
      /is a type.googleapis.com\/istio.security.Authorization/,
    );

    // A type nobody subscribed to.
    ack = cp.nextRequest((r) => r.nonce === "unknown");
    cp.push("type.googleapis.com/envoy.config.cluster.v3.Cluster", "unknown", []);
    const unk = await ack;
    expect(unk.typeUrl).toBe("type.googleapis.com/envoy.config.cluster.v3.Cluster");
    expect(unk.error?.message).toMatch(/unexpected resource type/);

    // An Authorization whose resource name is not its namespace/name.
    ack = cp.nextRequest((r) => r.nonce === "misnamed");
    cp.push(AUTHORIZATION_TYPE_URL, "misnamed", [
      { name: "other/name", version: "v1", authorization: { name: "p", namespace: "default" } },
    ]);
    expect((await ack).error?.message).toMatch(/resource name must be the same/);

    expect(h.state.snapshot()).toEqual(before);
    // After all that the stream still works.
    ack = cp.nextRequest((r) => r.nonce === "after");
    cp.push(ADDRESS_TYPE_URL, "after", [{ name: wl(4).uid, version: "v4", workload: wl(4) }]);
    expect((await ack).error).toBeNull();
    expect(h.state.workloadCount).toBe(2);
  });

  it("reconnects with backoff after a dropped stream and sends initial_resource_versions", async () => {
    const cp = await plane();
    const h = client(cp);
    h.client.start();
    await initialRequests(cp, 1);
    let ack = cp.nextRequest((r) => r.nonce === "1");
    cp.push(ADDRESS_TYPE_URL, "1", [
      { name: wl(1).uid, version: "v1", workload: wl(1) },
      { name: wl(2).uid, version: "v7", workload: wl(2) },
    ]);
    await ack;
    ack = cp.nextRequest((r) => r.nonce === "2");
    cp.push(AUTHORIZATION_TYPE_URL, "2", [
      { name: "default/p", version: "p3", authorization: { name: "p", namespace: "default" } },
    ]);
    await ack;

    cp.send({ cmd: "drop" });
    const again = await initialRequests(cp, 2);
    expect(again.get(ADDRESS_TYPE_URL)?.initialVersions).toEqual({
      [wl(1).uid]: "v1",
      [wl(2).uid]: "v7",
    });
    expect(again.get(AUTHORIZATION_TYPE_URL)?.initialVersions).toEqual({ "default/p": "p3" });
    // The state kept serving across the drop.
    expect(h.state.workloadCount).toBe(2);
    expect(h.disconnects[0]?.error?.code).toBe("ERR_XDS_CLIENT_STREAM");
    expect(h.disconnects[0]?.reason).toBe("Error");
    expect(h.metrics.terminations("Error")).toBe(1);
    expect(h.client.connects).toBe(2);

    // Only the diff comes now.
    ack = cp.nextRequest((r) => r.nonce === "3");
    cp.push(ADDRESS_TYPE_URL, "3", [], [wl(1).uid]);
    await ack;
    expect(h.state.workloadCount).toBe(1);
  });

  it("keeps retrying, with growing delays, while the control plane is down; nothing half-applied", async () => {
    // A port nothing listens on: connection errors, counted as ConnectionError.
    const down = await plane();
    const port = down.port;
    await down.close();
    const state = new MeshStateStore();
    const metrics = new XdsMetrics();
    const delays: number[] = [];
    const c = new DeltaXdsClient({
      address: `http://127.0.0.1:${port}`,
      node,
      state,
      metrics,
      backoff: fast,
      random: () => 0.5,
      log: (_l, m, f) => {
        if (m === "xds: reconnecting") delays.push(f?.inMs as number);
      },
    });
    clients.push(c);
    c.start();
    await new Promise((r) => setTimeout(r, 600));
    await c.close();
    expect(metrics.terminations("ConnectionError")).toBeGreaterThanOrEqual(3);
    expect(c.lastError?.code).toBe("ERR_XDS_CLIENT_STREAM");
    expect(delays.slice(0, 4)).toEqual([20, 40, 80, 160]);
    expect(state.workloadCount).toBe(0);
    expect(state.isReady()).toBe(false);
  });

  it("sends the bearer token, re-read from its file on every connect; a refused token is a clear error", async () => {
    const cp = await plane(["--token", "good-token"]);
    const tokenFile = join(dir, "istio-token");
    writeFileSync(tokenFile, "stale-token\n");
    const h = client(cp, { tokenFile });
    h.client.start();
    await cp.next((e) => e.event === "stream-end" && e.reason === "unauthenticated");
    await expect.poll(() => h.disconnects.length).toBeGreaterThan(0);
    expect(h.disconnects[0]?.error?.code).toBe("ERR_XDS_CLIENT_UNAUTHENTICATED");
    expect(h.disconnects[0]?.error?.message).toMatch(/token file/);
    expect(h.state.isReady()).toBe(false);

    writeFileSync(tokenFile, "good-token\n");
    const ok = await cp.next(
      (e) => e.event === "stream" && e.authorization === "Bearer good-token",
      10_000,
    );
    const id = ok.id as number;
    await cp.next((e) => e.event === "request" && e.stream === id);
    const ack = cp.nextRequest((r) => r.nonce === "t1");
    cp.push(ADDRESS_TYPE_URL, "t1", [{ name: wl(1).uid, version: "v1", workload: wl(1) }]);
    expect((await ack).error).toBeNull();
    expect(h.state.workloadCount).toBe(1);
  });

  it("a missing token file is ERR_XDS_CLIENT_TOKEN and never reaches the server", async () => {
    const cp = await plane();
    const h = client(cp, { tokenFile: join(dir, "no-such-token") });
    h.client.start();
    await expect.poll(() => h.disconnects.length).toBeGreaterThan(0);
    expect(h.disconnects[0]?.error?.code).toBe("ERR_XDS_CLIENT_TOKEN");
    expect(cp.events.filter((e) => e.event === "stream")).toEqual([]);
  });

  it("an oversized response fails the stream; the last good state keeps serving", async () => {
    const cp = await plane();
    const h = client(cp, { maxMessageBytes: 2_000 });
    h.client.start();
    await initialRequests(cp, 1);
    const ack = cp.nextRequest((r) => r.nonce === "small");
    cp.push(ADDRESS_TYPE_URL, "small", [{ name: wl(1).uid, version: "v1", workload: wl(1) }]);
    await ack;
    cp.push(
      ADDRESS_TYPE_URL,
      "big",
      Array.from({ length: 40 }, (_, i) => ({
        name: wl(i + 10).uid,
        version: "v2",
        workload: wl(i + 10),
      })),
    );
    await cp.next((e) => e.event === "stream" && e.id === 2);
    expect(h.disconnects[0]?.error?.message).toMatch(/xDS stream .* failed/);
    expect(h.state.workloadCount).toBe(1);
  });

  it("on-demand: opts out of the wildcard, fetches by network/ip, re-subscribes after a reconnect", async () => {
    const cp = await plane();
    const h = client(cp, { onDemand: true });
    h.client.start();
    const first = await initialRequests(cp, 1);
    expect(first.get(ADDRESS_TYPE_URL)?.subscribe).toEqual(["*"]);
    expect(first.get(ADDRESS_TYPE_URL)?.unsubscribe).toEqual(["*"]);
    expect(first.get(AUTHORIZATION_TYPE_URL)?.subscribe).toEqual([]);

    const sub = cp.nextRequest((r) => r.subscribe.length > 0);
    h.client.subscribe(["/10.0.1.5", "/10.0.1.5"]);
    expect((await sub).subscribe).toEqual(["/10.0.1.5"]);
    const ack = cp.nextRequest((r) => r.nonce === "od");
    cp.push(ADDRESS_TYPE_URL, "od", [{ name: wl(5).uid, version: "v1", workload: wl(5) }]);
    await ack;
    expect(h.state.workloadByIp("10.0.1.5")?.name).toBe("app-5");

    cp.send({ cmd: "drop" });
    const again = await initialRequests(cp, 2);
    expect(again.get(ADDRESS_TYPE_URL)?.subscribe).toEqual(["*", "/10.0.1.5"]);
    const unsub = cp.nextRequest((r) => r.unsubscribe.length > 0);
    h.client.unsubscribe(["/10.0.1.5"]);
    expect((await unsub).unsubscribe).toEqual(["/10.0.1.5"]);
  });
});

describe("TLS to the control plane (istiod's port 15012 shape)", () => {
  const pki = join(dir, "pki");
  beforeAll(() => {
    // An independent PKI from the openssl CLI: a root, and a serving cert for istiod's name.
    execFileSync("mkdir", ["-p", pki]);
    const sh = (args: string[]) => execFileSync("openssl", args, { cwd: pki, stdio: "pipe" });
    for (const name of ["root", "other"]) opensslRoot(pki, name);
    sh([
      "req",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      "istiod.key",
      "-out",
      "istiod.csr",
      "-subj",
      "/O=istiod",
    ]);
    writeFileSync(join(pki, "ext.cnf"), "subjectAltName=DNS:istiod.istio-system.svc\n");
    sh([
      "x509",
      "-req",
      "-in",
      "istiod.csr",
      "-CA",
      "root.pem",
      "-CAkey",
      "root.key",
      "-CAcreateserial",
      "-days",
      "1",
      "-extfile",
      "ext.cnf",
      "-out",
      "istiod.pem",
    ]);
  });

  it("verifies istiod's certificate against the mesh root and its service name", async () => {
    const cp = await plane([
      "--tls-cert",
      join(pki, "istiod.pem"),
      "--tls-key",
      join(pki, "istiod.key"),
    ]);
    const { readFileSync } = await import("node:fs");
    const h = client(cp, {
      address: `https://127.0.0.1:${cp.port}`,
      rootCert: readFileSync(join(pki, "root.pem"), "utf8"),
      serverName: "istiod.istio-system.svc",
    });
    h.client.start();
    await initialRequests(cp, 1);
    const ack = cp.nextRequest((r) => r.nonce === "tls");
    cp.push(ADDRESS_TYPE_URL, "tls", [{ name: wl(1).uid, version: "v1", workload: wl(1) }]);
    expect((await ack).error).toBeNull();
    expect(h.state.workloadCount).toBe(1);
  });

  it("refuses a server whose certificate another root signed, or that has another name", async () => {
    const cp = await plane([
      "--tls-cert",
      join(pki, "istiod.pem"),
      "--tls-key",
      join(pki, "istiod.key"),
    ]);
    const { readFileSync } = await import("node:fs");
    for (const [root, serverName] of [
      ["other.pem", "istiod.istio-system.svc"],
      ["root.pem", "evil.example.com"],
    ] as const) {
      const h = client(cp, {
        address: `https://127.0.0.1:${cp.port}`,
        rootCert: readFileSync(join(pki, root), "utf8"),
        serverName,
      });
      h.client.start();
      await expect.poll(() => h.disconnects.length).toBeGreaterThan(0);
      await h.client.close();
      expect(h.disconnects[0]?.error?.code).toBe("ERR_XDS_CLIENT_STREAM");
      expect(h.disconnects[0]?.reason).toBe("ConnectionError");
      expect(h.state.isReady()).toBe(false);
    }
    expect(cp.events.filter((e) => e.event === "request")).toEqual([]);
  });

  it("rejects bad configuration at construction with ERR_XDS_CLIENT_CONFIG", () => {
    const state = new MeshStateStore();
    for (const address of ["istiod:15012", "ftp://istiod:15012"])
      expect(() => new DeltaXdsClient({ address, node, state })).toThrow(
        expect.objectContaining({ code: "ERR_XDS_CLIENT_CONFIG" }),
      );
    expect(
      () => new DeltaXdsClient({ address: "https://istiod.istio-system.svc:15012", node, state }),
    ).toThrow(/rootCert/);
    expect(
      () => new DeltaXdsClient({ address: "http://127.0.0.1:1", node, state, kinds: [] }),
    ).toThrow(/at least one/);
  });
});
