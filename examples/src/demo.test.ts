import { execFile } from "node:child_process";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { CertificateAuthority } from "@ambientkit/identity";
import { writeCaDirectory } from "@ambientkit/identity/node";
import { parseLocalXds } from "@ambientkit/xds-types/local-xds";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { httpRequest } from "./apps/echo.js";
import { type DemoMesh, formatTable, runTour, SCENARIO_DIR, startMesh } from "./demo.js";
import { ExampleError } from "./mesh/errors.js";
import { isListening, scrape } from "./testing.js";

const run = promisify(execFile);

describe("the demo mesh", () => {
  let mesh: DemoMesh;
  beforeAll(async () => {
    mesh = await startMesh({ ports: "ephemeral" });
  });
  afterAll(async () => {
    await mesh?.close();
  });

  it("runs the tour and every step behaves", async () => {
    const steps = await runTour(mesh);
    const table = formatTable(steps);
    expect(
      steps.map((s) => [s.step, s.ok]),
      table,
    ).toEqual(steps.map((s) => [s.step, true]));
    expect(steps.map((s) => s.step)).toEqual([
      "mTLS identity seen by the server",
      "L4 deny by the destination ztunnel",
      "L7 deny by the waypoint",
      "HTTPRoute 90/10 split",
      "HTTPRoute header match",
      "out-of-mesh destination",
      "metrics",
    ]);
    expect(steps[0]?.observed).toContain("spiffe://cluster.local/ns/default/sa/sleep");
    expect(steps[1]?.observed).toContain("allow policies exist, but none allowed");
    expect(steps[2]?.observed).toContain("default/echo-deny-admin");
  });

  it("denies /admin at the waypoint with 403 and counts it with reporter=waypoint", async () => {
    const r = await httpRequest({
      host: "127.0.20.1",
      port: 8000,
      path: "/admin/x",
      localAddress: "127.0.10.1",
    });
    expect(r.status).toBe(403);
    const ok = await httpRequest({
      host: "127.0.20.1",
      port: 8000,
      path: "/administrator",
      localAddress: "127.0.10.1",
    });
    expect(ok.status).toBe(200);
    const samples = await scrape(mesh.waypoint.metricsAddress ?? "");
    const denied = samples.filter(
      (s) =>
        s.name === "istio_requests_total" &&
        s.labels.reporter === "waypoint" &&
        s.labels.response_code === "403",
    );
    expect(denied.length).toBeGreaterThan(0);
    expect(denied[0]?.labels.source_principal).toBe("spiffe://cluster.local/ns/default/sa/sleep");
    expect(denied[0]?.labels.destination_service).toBe("echo.default.svc.cluster.local");
  });

  it("serves /config_dump in ztunnel's JSON shape, and as LOCAL_XDS that parses back", async () => {
    const [host, port] = (mesh.nodeA.addresses.admin ?? "").split(":");
    const r = await httpRequest({
      host: host ?? "",
      port: Number(port),
      path: "/config_dump?format=local_xds",
    });
    expect(r.status).toBe(200);
    const parsed = parseLocalXds(r.body);
    expect(parsed.issues).toEqual([]);
    expect(parsed.value).toEqual(mesh.config.local);
    expect(parsed.value?.policies.map((p) => p.name)).toContain("istio_converted_static_strict");
    const json = await httpRequest({ host: host ?? "", port: Number(port), path: "/config_dump" });
    expect(json.headers["content-type"]).toBe("application/json");
    const dump = JSON.parse(json.body) as {
      workloads: unknown[];
      services: unknown[];
      policies: unknown[];
      certificates: { identity: string; state: string; certChain: { serialNumber: string }[] }[];
    };
    // The state part is ztunnel's serde shape: LOCAL_XDS input as it stands.
    const { workloads, services, policies } = dump;
    expect(parseLocalXds(JSON.stringify({ workloads, services, policies })).value).toEqual(
      mesh.config.local,
    );
    expect(dump.certificates.length).toBeGreaterThan(0);
    expect(dump.certificates[0]).toMatchObject({ state: "Available" });
    expect(dump.certificates[0]?.certChain[0]?.serialNumber).toMatch(/^[0-9a-f]+$/);
  });

  it("is ready on /healthz/ready and proxies curl over SOCKS5 to a service hostname", async () => {
    const [host, port] = (mesh.nodeA.addresses.readiness ?? "").split(":");
    const ready = await httpRequest({
      host: host ?? "",
      port: Number(port),
      path: "/healthz/ready",
    });
    expect(ready.status).toBe(200);
    const { stdout } = await run("curl", [
      "-sS",
      "--max-time",
      "10",
      "--socks5-hostname",
      mesh.nodeA.addresses.socks5 ?? "",
      "-H",
      "x-version: v2",
      "http://echo.default.svc.cluster.local:8000/socks",
    ]);
    const reply = JSON.parse(stdout) as { version: string; path: string };
    expect(reply).toMatchObject({ version: "v2", path: "/socks" });
  });
});

describe("demo startup", () => {
  it("stops on bad config with the file and line, and leaves nothing listening", async () => {
    const dir = await mkdtemp(join(tmpdir(), "ambientkit-demo-"));
    try {
      await cp(SCENARIO_DIR, dir, { recursive: true });
      const file = join(dir, "mesh.yaml");
      const text = await readFile(file, "utf8");
      // echo-v2 gets echo-v1's IP
      await writeFile(
        file,
        text.replace('workloadIps: ["127.0.10.3"]', 'workloadIps: ["127.0.10.2"]'),
      );
      const line = text.split("\n").findIndex((l) => l.includes('"127.0.10.3"')) + 1;
      const err = await startMesh({ scenarioDir: dir, ports: "ephemeral" }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ExampleError);
      expect((err as ExampleError).code).toBe("ERR_EXAMPLES_CONFIG");
      expect((err as ExampleError).message).toBe(
        `${file}:${line}: duplicate workload IP 127.0.10.2 (already used by workload echo-v1)`,
      );
      expect(await isListening("127.0.10.2", 8080)).toBe(false);
      expect(await isListening("127.0.10.2", 15008)).toBe(false);

      // an unknown field, an unknown service in a policy
      await writeFile(
        file,
        text.replace("    protocol: TCP\n", "    protocol: TCP\n    protocl: TCP\n"),
      );
      await expect(startMesh({ scenarioDir: dir, ports: "ephemeral" })).rejects.toThrow(
        /mesh\.yaml:\d+: .*protocl/,
      );
      await writeFile(file, text);
      const istio = await readFile(join(dir, "istio.yaml"), "utf8");
      await writeFile(
        join(dir, "istio.yaml"),
        istio.replace("      name: echo\n  action: DENY", "      name: ech0\n  action: DENY"),
      );
      await expect(startMesh({ scenarioDir: dir, ports: "ephemeral" })).rejects.toThrow(
        /istio\.yaml:\d+: AuthorizationPolicy default\/echo-deny-admin targets unknown Service default\/ech0/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("issues workload certificates from a cacerts directory", async () => {
    const dir = await mkdtemp(join(tmpdir(), "ambientkit-cacerts-"));
    try {
      const root = await CertificateAuthority.createRoot({
        trustDomain: "cluster.local",
        keyAlgorithm: "ec-p256",
      });
      await writeCaDirectory(dir, root);
      const mesh = await startMesh({ ports: "ephemeral", cacertsDir: dir });
      try {
        expect(mesh.ca.rootCertPem).toBe(root.rootCertPem);
        const r = await httpRequest({ host: "127.0.20.2", port: 8000, localAddress: "127.0.10.1" });
        expect(r.status).toBe(200);
        const creds = mesh.certificates.current("spiffe://cluster.local/ns/default/sa/echo");
        expect(String(creds?.ca)).toBe(root.rootCertPem);
      } finally {
        await mesh.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("closes every listener", async () => {
    const mesh = await startMesh({ ports: "ephemeral" });
    const admin = mesh.nodeA.addresses.admin ?? "";
    const [ah, ap] = admin.split(":");
    expect(await isListening(ah ?? "", Number(ap))).toBe(true);
    expect(await isListening("127.0.10.2", 15008)).toBe(true);
    await mesh.close();
    for (const [h, p] of [
      [ah ?? "", Number(ap)],
      ["127.0.10.2", 15008],
      ["127.0.10.10", 15008],
      ["127.0.20.1", 8000],
      ["127.0.10.2", 8080],
    ] as const) {
      expect(await isListening(h, p), `${h}:${p}`).toBe(false);
    }
  });
});

describe("formatTable", () => {
  it("shows what was expected next to a failed step", () => {
    const t = formatTable([
      { step: "a", expected: "x", observed: "x", ok: true },
      { step: "bb", expected: "403", observed: "200", ok: false },
    ]);
    expect(t.split("\n")).toEqual([
      "      step  observed",
      "ok    a     x",
      "FAIL  bb    200 (expected: 403)",
    ]);
  });
});

describe("the demo mesh in control-plane mode (npm start -- --xds)", () => {
  let mesh: DemoMesh;
  beforeAll(async () => {
    mesh = await startMesh({ ports: "ephemeral", xds: true });
  });
  afterAll(async () => {
    await mesh?.close();
  });

  it("feeds both ztunnels over delta xDS and certifies them over Istio's CA API", async () => {
    expect(mesh.controlPlane?.streams).toBe(2);
    expect(mesh.planes?.map((p) => p.state.workloadCount)).toEqual([
      mesh.config.local.workloads.length,
      mesh.config.local.workloads.length,
    ]);
    expect(mesh.nodeA.state.config).toEqual(mesh.planes?.[1]?.state.snapshot());
  });

  it("runs the same tour, plus a policy push that closes a live connection it now denies", async () => {
    const steps = await runTour(mesh, { splitRequests: 100 });
    expect(
      steps.map((s) => [s.step, s.ok]),
      formatTable(steps),
    ).toEqual(steps.map((s) => [s.step, true]));
    expect(steps.map((s) => s.step)).toContain("policy pushed over xDS mid-connection");
    expect(steps.find((s) => s.step === "policy pushed over xDS mid-connection")?.observed).toMatch(
      /after the push: closed; node-b: connection closed due to policy change; policy removed again: HTTP 200/,
    );
  });
});
