// `npm start`: a whole ambient mesh on loopback, built only from the @ambientkit packages. It loads
// examples/scenario/ (LOCAL_XDS YAML + Istio YAML), starts an in-process CA, two reference ztunnel
// "nodes", a reference waypoint and sample apps, runs a scripted tour and prints what happened.
// `--serve` keeps it running (try `curl --socks5-hostname 127.0.0.1:15080 http://echo.default.svc.cluster.local:8000/`).
// Exits 0 only when every step behaved; always closes every listener.
import net from "node:net";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { CertificateAuthority } from "@ambientkit/identity";
import { loadCaDirectory } from "@ambientkit/identity/node";
import { LocalControlPlane } from "@ambientkit/xds";
import type { Authorization, LocalConfig } from "@ambientkit/xds-types";
import { parseLocalXds } from "@ambientkit/xds-types/local-xds";
import { type EchoReply, httpRequest, startHttpEcho } from "./apps/echo.js";
import type { LogEntry, MemoryLog } from "./mesh/access-log.js";
import { WorkloadCertificates } from "./mesh/certs.js";
import { loadScenario, type MeshConfig } from "./mesh/config.js";
import { ExampleError } from "./mesh/errors.js";
import type { Listener } from "./mesh/net.js";
import { seededRandom } from "./mesh/state.js";
import { Waypoint } from "./waypoint/waypoint.js";
import { ZtunnelControlPlane } from "./ztunnel/control-plane.js";
import { ZTUNNEL_PORTS, Ztunnel } from "./ztunnel/ztunnel.js";

/** examples/scenario, from src/ (tests) and dist/ (npm start) alike. */
export const SCENARIO_DIR: string = join(import.meta.dirname, "..", "scenario");

export interface DemoOptions {
  /** Directory with mesh.yaml (LOCAL_XDS) and istio.yaml (default examples/scenario). */
  scenarioDir?: string;
  /** `real`: ztunnel's port numbers (15000/15020/15021/15080); `ephemeral`: port 0 (tests). */
  ports?: "real" | "ephemeral";
  /** Seed of the load-balancing / route-split randomness (default 7). */
  seed?: number;
  /** Access-log lines (JSON) of every proxy. */
  log?: (line: string) => void;
  /** Use this Istio `cacerts` directory (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem) instead of a fresh self-signed CA. */
  cacertsDir?: string;
  /**
   * Control-plane mode: both ztunnels get their config over delta xDS and their certificates over
   * Istio's CA API from a local control plane (gRPC on loopback) instead of reading the files.
   */
  xds?: boolean;
}

/** Everything the demo started. `close()` stops it all. */
export interface DemoMesh {
  readonly config: MeshConfig;
  readonly ca: CertificateAuthority;
  readonly certificates: WorkloadCertificates;
  readonly nodeA: Ztunnel;
  readonly nodeB: Ztunnel;
  readonly waypoint: Waypoint;
  readonly apps: readonly Listener[];
  /** The local control plane in control-plane mode. */
  readonly controlPlane?: LocalControlPlane;
  /** Each ztunnel's xDS + CA clients in control-plane mode (node-a, node-b). */
  readonly planes?: readonly ZtunnelControlPlane[];
  close(): Promise<void>;
}

/** Loads the scenario and starts the mesh; on failure closes whatever had started and rethrows. */
export async function startMesh(options: DemoOptions = {}): Promise<DemoMesh> {
  const dir = options.scenarioDir ?? SCENARIO_DIR;
  // Config first: a bad file stops startup before anything listens.
  const config = await loadScenario(join(dir, "mesh.yaml"), join(dir, "istio.yaml"));
  const random = seededRandom(options.seed ?? 7);
  const real = (options.ports ?? "real") === "real";
  const ports = (on: boolean) =>
    on
      ? {
          admin: real ? ZTUNNEL_PORTS.admin : 0,
          metrics: real ? ZTUNNEL_PORTS.metrics : 0,
          readiness: real ? ZTUNNEL_PORTS.readiness : 0,
          socks5: real ? ZTUNNEL_PORTS.socks5 : 0,
        }
      : { admin: null, metrics: real ? ZTUNNEL_PORTS.metrics : 0, readiness: null, socks5: null };
  const started: { close(): Promise<void> }[] = [];
  let certificates: WorkloadCertificates | undefined;
  const closeAll = async (): Promise<void> => {
    const list = started.splice(0).reverse();
    for (const s of list) await s.close();
    certificates?.close();
  };
  try {
    const ca =
      options.cacertsDir !== undefined
        ? await loadCaDirectory(options.cacertsDir, { trustDomain: config.trustDomain })
        : await CertificateAuthority.createRoot({
            trustDomain: config.trustDomain,
            keyAlgorithm: "ec-p256",
          });
    certificates = new WorkloadCertificates(ca);
    const apps: Listener[] = [];
    for (const [pod, ip, version, app] of [
      ["echo-v1", "127.0.10.2", "v1", "echo"],
      ["echo-v2", "127.0.10.3", "v2", "echo"],
      ["legacy", "127.0.10.5", "v1", "legacy"],
    ] as const) {
      const l = await startHttpEcho({ host: ip, port: 8080, app, version, pod });
      started.push(l);
      apps.push(l);
    }
    const log = options.log;
    // Control-plane mode: a local istiod stand-in serves the same config and signs certificates.
    let controlPlane: LocalControlPlane | undefined;
    const planes: ZtunnelControlPlane[] = [];
    if (options.xds === true) {
      controlPlane = await LocalControlPlane.start(config.local, { ca });
      started.push(controlPlane);
    }
    const shared: WorkloadCertificates = certificates;
    const ztunnel = async (
      node: string,
      host: string,
      opts: Omit<Parameters<typeof Ztunnel.start>[0], "node" | "config" | "certificates">,
    ): Promise<Ztunnel> => {
      if (controlPlane === undefined) {
        const z = await Ztunnel.start({
          node,
          config: config.local,
          certificates: shared,
          ...opts,
        });
        started.push(z);
        return z;
      }
      const plane = new ZtunnelControlPlane(
        {
          xdsAddress: controlPlane.address,
          caAddress: controlPlane.address,
          instanceIp: host,
          podName: `ztunnel-${node}`,
          podNamespace: "istio-system",
          nodeName: node,
        },
        log ? { log: (level, message) => log(JSON.stringify({ level, message, node })) } : {},
      );
      started.push(plane);
      planes.push(plane);
      const first = await plane.start(10_000);
      const source = plane.certificateSource;
      const nodeCerts = source === undefined ? shared : new WorkloadCertificates(source);
      if (nodeCerts !== shared) started.push({ close: async () => nodeCerts.close() });
      const z = await Ztunnel.start({ node, config: first, certificates: nodeCerts, ...opts });
      started.push(z);
      plane.attach(z);
      plane.registerMetrics(z.registry);
      return z;
    };
    const nodeB = await ztunnel("node-b", "127.0.0.2", {
      ports: ports(false),
      adminHost: "127.0.0.2",
      captureServices: false,
      random,
      ...(log ? { log } : {}),
    });
    const waypoint = await Waypoint.start({
      namespace: "default",
      name: "waypoint",
      config,
      certificates,
      metricsPort: real ? 15020 : 0,
      random,
      ...(log ? { log } : {}),
    });
    started.push(waypoint);
    const nodeA = await ztunnel("node-a", "127.0.0.1", {
      ports: ports(true),
      adminHost: "127.0.0.1",
      defaultSource: "default/sleep",
      random,
      ...(log ? { log } : {}),
    });
    const certs = certificates;
    return {
      config,
      ca,
      certificates: certs,
      nodeA,
      nodeB,
      waypoint,
      apps,
      ...(controlPlane !== undefined ? { controlPlane, planes } : {}),
      close: closeAll,
    };
  } catch (e) {
    await closeAll();
    throw e;
  }
}

/** One line of the tour table. */
export interface TourStep {
  step: string;
  expected: string;
  observed: string;
  ok: boolean;
}

const SLEEP = "127.0.10.1";
const INTRUDER = "127.0.10.4";

async function waitFor<T>(fn: () => T | undefined, timeoutMs = 3000): Promise<T | undefined> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 10));
  }
}

function lastEntry(log: MemoryLog, pred: (e: LogEntry) => boolean): LogEntry | undefined {
  return log.entries.findLast(pred);
}

async function step(
  name: string,
  expected: string,
  fn: () => Promise<{ observed: string; ok: boolean }>,
): Promise<TourStep> {
  try {
    const r = await fn();
    return { step: name, expected, ...r };
  } catch (e) {
    return { step: name, expected, observed: `error: ${(e as Error).message}`, ok: false };
  }
}

/** The scripted tour: every step checks what the mesh did. */
export async function runTour(
  mesh: DemoMesh,
  options: { splitRequests?: number } = {},
): Promise<TourStep[]> {
  const steps: TourStep[] = [];
  const sleepId = "spiffe://cluster.local/ns/default/sa/sleep";

  steps.push(
    await step("mTLS identity seen by the server", `node-b ztunnel sees ${sleepId}`, async () => {
      const r = await httpRequest({ host: "127.0.20.2", port: 8000, localAddress: SLEEP });
      const reply = JSON.parse(r.body) as EchoReply;
      const e = await waitFor(() =>
        lastEntry(
          mesh.nodeB.log,
          (x) =>
            x.message === "connection complete" &&
            x.fields["dst.workload"] === "echo-v1" &&
            x.fields["src.identity"] !== undefined,
        ),
      );
      const id = String(e?.fields["src.identity"] ?? "none");
      return {
        observed: `${r.status} from ${reply.pod}; node-b ztunnel saw ${id}; app saw client ${reply.remoteAddress}`,
        ok: r.status === 200 && id === sleepId && reply.remoteAddress === SLEEP,
      };
    }),
  );

  steps.push(
    await step(
      "L4 deny by the destination ztunnel",
      "intruder → echo-v1 refused (HBONE 401)",
      async () => {
        let outcome = "connected";
        try {
          const r = await httpRequest({
            host: "127.0.20.2",
            port: 8000,
            localAddress: INTRUDER,
            timeoutMs: 5000,
          });
          outcome = `HTTP ${r.status}`;
        } catch (e) {
          outcome = `connection closed (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
        }
        const denied = await waitFor(() =>
          lastEntry(
            mesh.nodeB.log,
            (x) =>
              String(x.fields["src.identity"] ?? "").endsWith("/sa/intruder") &&
              String(x.fields.error ?? "").includes("policy rejection"),
          ),
        );
        const src = await waitFor(() =>
          lastEntry(
            mesh.nodeA.log,
            (x) =>
              x.fields["src.workload"] === "intruder" &&
              String(x.fields.error ?? "").includes("401"),
          ),
        );
        return {
          observed: `${outcome}; node-b: ${String(denied?.fields.error ?? "no log")}; node-a: ${String(src?.fields.error ?? "no log")}`,
          ok: outcome.startsWith("connection closed") && denied !== undefined && src !== undefined,
        };
      },
    ),
  );

  steps.push(
    await step(
      "L7 deny by the waypoint",
      "GET /admin → 403 by default/echo-deny-admin",
      async () => {
        const r = await httpRequest({
          host: "127.0.20.1",
          port: 8000,
          path: "/admin",
          localAddress: SLEEP,
        });
        const e = await waitFor(() =>
          lastEntry(
            mesh.waypoint.log,
            (x) => x.fields.policy !== undefined && x.fields.path === "/admin",
          ),
        );
        const policy = String(e?.fields.policy ?? "none");
        return {
          observed: `${r.status} ${r.body.trim()}; waypoint log: denied by ${policy}`,
          ok: r.status === 403 && policy === "default/echo-deny-admin",
        };
      },
    ),
  );

  const n = options.splitRequests ?? 200;
  steps.push(
    await step("HTTPRoute 90/10 split", `${n} requests: v1 share 90% ± 8`, async () => {
      const counts: Record<string, number> = {};
      let routedBy = 0;
      let routeHeader = 0;
      for (let i = 0; i < n; i += 10) {
        const batch = await Promise.all(
          Array.from({ length: Math.min(10, n - i) }, () =>
            httpRequest({ host: "127.0.20.1", port: 8000, path: "/hello", localAddress: SLEEP }),
          ),
        );
        for (const r of batch) {
          const reply = JSON.parse(r.body) as EchoReply;
          counts[reply.version] = (counts[reply.version] ?? 0) + 1;
          if (reply.headers["x-routed-by"] === "waypoint") routedBy++;
          if (r.headers["x-route"] === "echo-split") routeHeader++;
        }
      }
      const v1 = counts.v1 ?? 0;
      const v2 = counts.v2 ?? 0;
      const share = (100 * v1) / n;
      return {
        observed: `v1 ${v1}, v2 ${v2} (${share.toFixed(1)}% v1); header modifiers applied ${Math.min(routedBy, routeHeader)}/${n}`,
        ok: v1 + v2 === n && Math.abs(share - 90) <= 8 && routedBy === n && routeHeader === n,
      };
    }),
  );

  steps.push(
    await step("HTTPRoute header match", "x-version: v2 → always echo-v2", async () => {
      const versions: string[] = [];
      for (let i = 0; i < 5; i++) {
        const r = await httpRequest({
          host: "127.0.20.1",
          port: 8000,
          headers: { "x-version": "v2" },
          localAddress: SLEEP,
        });
        versions.push((JSON.parse(r.body) as EchoReply).version);
      }
      return { observed: versions.join(","), ok: versions.every((v) => v === "v2") };
    }),
  );

  steps.push(
    await step(
      "out-of-mesh destination",
      "legacy (protocol TCP) → plain TCP passthrough",
      async () => {
        const r = await httpRequest({ host: "127.0.20.5", port: 8000, localAddress: SLEEP });
        const e = await waitFor(() =>
          lastEntry(
            mesh.nodeA.log,
            (x) => x.message === "connection complete" && x.fields["dst.workload"] === "legacy",
          ),
        );
        const tunnelled = e?.fields["dst.hbone_addr"] !== undefined;
        return {
          observed: `${r.status} from ${(JSON.parse(r.body) as EchoReply).pod}; ${e ? (tunnelled ? "HBONE" : "plain TCP") : "no log"}`,
          ok: r.status === 200 && e !== undefined && !tunnelled,
        };
      },
    ),
  );

  const cp = mesh.controlPlane;
  if (cp !== undefined) {
    steps.push(
      await step(
        "policy pushed over xDS mid-connection",
        "a live sleep → echo-v1 connection closes when a DENY for sleep is pushed",
        async () => {
          const conn = await openHttpConnection("127.0.20.2", 8000, SLEEP);
          try {
            const before = await conn.request();
            const closed = conn.closed();
            cp.setConfig(withPolicy(mesh.config.local, DENY_SLEEP_YAML));
            const outcome = await Promise.race([
              closed.then(() => "closed"),
              new Promise<string>((r) => setTimeout(() => r("still open after 5 s"), 5000)),
            ]);
            const logged = await waitFor(() =>
              lastEntry(
                mesh.nodeB.log,
                (x) => x.message === "connection closed due to policy change",
              ),
            );
            cp.setConfig(mesh.config.local);
            await Promise.all((mesh.planes ?? []).map((p) => p.settled()));
            // With the policy gone again, new connections work.
            const after = await httpRequest({
              host: "127.0.20.2",
              port: 8000,
              localAddress: SLEEP,
            });
            return {
              observed: `HTTP ${before} on the open connection; after the push: ${outcome}; node-b: ${logged?.message ?? "no log"}; policy removed again: HTTP ${after.status}`,
              ok:
                before === 200 &&
                outcome === "closed" &&
                logged !== undefined &&
                after.status === 200,
            };
          } finally {
            conn.destroy();
          }
        },
      ),
    );
  }

  steps.push(
    await step("metrics", "Istio metrics on /metrics", async () => {
      const a = mesh.nodeA.addresses.metrics ?? "";
      const [host, port] = a.split(":");
      const r = await httpRequest({ host: host ?? "", port: Number(port), path: "/metrics" });
      const wm = mesh.waypoint.metricsAddress ?? "";
      const [wh, wp] = wm.split(":");
      const w = await httpRequest({ host: wh ?? "", port: Number(wp), path: "/metrics" });
      const tcp = /istio_tcp_connections_opened_total\{[^}]*reporter="source"[^}]*\} [1-9]/.test(
        r.body,
      );
      const l7 =
        /istio_requests_total\{[^}]*reporter="waypoint"[^}]*response_code="403"[^}]*\} [1-9]/.test(
          w.body,
        );
      return {
        observed: `ztunnel http://${a}/metrics, waypoint http://${wm}/metrics`,
        ok: r.status === 200 && tcp && w.status === 200 && l7,
      };
    }),
  );
  return steps;
}

/** A DENY for sleep, as istiod would convert it for ztunnel (LOCAL_XDS policy form). */
const DENY_SLEEP_YAML = `workloads: []
services: []
policies:
  - name: demo-deny-sleep
    namespace: default
    scope: Namespace
    action: Deny
    dryRun: false
    rules:
      - - - principals: [{ Exact: cluster.local/ns/default/sa/sleep }]
`;

function withPolicy(config: LocalConfig, yaml: string): LocalConfig {
  const r = parseLocalXds(yaml);
  if (!r.ok) throw new ExampleError("ERR_EXAMPLES_CONFIG", "demo policy does not parse");
  const policies: Authorization[] = [...config.policies, ...r.value.policies];
  return { ...config, policies };
}

/** A kept-alive HTTP/1.1 connection: one request on it, and a promise of its close. */
async function openHttpConnection(
  host: string,
  port: number,
  localAddress: string,
): Promise<{ request(): Promise<number>; closed(): Promise<void>; destroy(): void }> {
  const s = net.connect({ host, port, localAddress });
  s.on("error", () => {});
  const closed = new Promise<void>((resolve) => s.once("close", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    s.once("connect", resolve);
    s.once("error", reject);
  });
  return {
    request: () =>
      new Promise<number>((resolve, reject) => {
        let buf = "";
        const onData = (d: Buffer): void => {
          buf += d.toString("latin1");
          const m = /^HTTP\/1\.1 (\d{3})/.exec(buf);
          if (m !== null && buf.includes("\r\n\r\n")) {
            s.off("data", onData);
            resolve(Number(m[1]));
          }
        };
        s.on("data", onData);
        s.once("close", () => reject(new Error("connection closed before the response")));
        s.write(`GET / HTTP/1.1\r\nhost: echo\r\nconnection: keep-alive\r\n\r\n`);
      }),
    closed: () => closed,
    destroy: () => s.destroy(),
  };
}

/** Formats the tour as a compact table. */
export function formatTable(steps: readonly TourStep[]): string {
  const rows = [
    ["", "step", "observed"],
    ...steps.map((s) => [
      s.ok ? "ok" : "FAIL",
      s.step,
      s.ok ? s.observed : `${s.observed} (expected: ${s.expected})`,
    ]),
  ];
  const w0 = Math.max(...rows.map((r) => (r[0] ?? "").length));
  const w1 = Math.max(...rows.map((r) => (r[1] ?? "").length));
  return rows
    .map((r) => `${(r[0] ?? "").padEnd(w0)}  ${(r[1] ?? "").padEnd(w1)}  ${r[2] ?? ""}`)
    .join("\n");
}

async function main(argv: readonly string[]): Promise<number> {
  const serve = argv.includes("--serve");
  const verbose = argv.includes("--verbose");
  const i = argv.indexOf("--scenario");
  const scenarioDir = i >= 0 ? argv[i + 1] : undefined;
  const j = argv.indexOf("--cacerts");
  const cacertsDir = j >= 0 ? argv[j + 1] : undefined;
  const xds = argv.includes("--xds");
  let mesh: DemoMesh;
  try {
    mesh = await startMesh({
      ...(scenarioDir !== undefined ? { scenarioDir } : {}),
      ...(cacertsDir !== undefined ? { cacertsDir } : {}),
      ...(xds ? { xds: true } : {}),
      ...(verbose ? { log: (l: string) => process.stderr.write(`${l}\n`) } : {}),
    });
  } catch (e) {
    process.stderr.write(`ambientkit demo: cannot start: ${(e as Error).message}\n`);
    return e instanceof ExampleError && e.code === "ERR_EXAMPLES_CONFIG" ? 2 : 1;
  }
  let ok = false;
  try {
    process.stdout.write(
      `ambientkit demo: an ambient mesh on loopback (node-a: sleep, intruder; node-b: echo v1/v2, legacy; waypoint 127.0.10.10)${xds ? `\nboth ztunnels fed over delta xDS and certified over Istio's CA API by a local control plane at ${mesh.controlPlane?.address}` : ""}\n\n`,
    );
    const steps = await runTour(mesh);
    ok = steps.every((s) => s.ok);
    process.stdout.write(`${formatTable(steps)}\n\n`);
    process.stdout.write(
      `scrape:  curl http://${mesh.nodeA.addresses.metrics}/metrics   curl http://${mesh.nodeB.addresses.metrics}/metrics   curl http://${mesh.waypoint.metricsAddress}/metrics\n` +
        `admin:   curl http://${mesh.nodeA.addresses.admin}/config_dump   ready: curl http://${mesh.nodeA.addresses.readiness}/healthz/ready\n`,
    );
    if (serve) {
      process.stdout.write(
        `serving; try: curl --socks5-hostname ${mesh.nodeA.addresses.socks5} http://echo.default.svc.cluster.local:8000/  (Ctrl-C stops)\n`,
      );
      await new Promise<void>((resolve) => {
        process.once("SIGINT", () => resolve());
        process.once("SIGTERM", () => resolve());
      });
    }
  } finally {
    await mesh.close();
  }
  process.stdout.write(
    ok ? "every step behaved as expected\n" : "some steps did not behave as expected\n",
  );
  return ok ? 0 : 1;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`ambientkit demo: ${(e as Error).stack ?? String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
