// The universal entries (authz, xds-types, crds, and the roots of identity and telemetry) are claimed
// to run in browsers.
// This proves it as a user would meet it: each entry bundled by esbuild for the browser platform from
// the built packages (their package.json `exports` and `sideEffects` as published, no source
// condition), loaded in headless Chromium, and made to compute something real. A bundler that
// honours `"sideEffects": false` drops side-effect-only modules, which is how identity's Reflect shim
// went missing before (issue 13).
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Debian's chromium; CHROMIUM may name another binary. */
function chromiumPath(): string {
  const candidates = [process.env.CHROMIUM, "/usr/bin/chromium", "/usr/bin/chromium-browser"];
  const found = candidates.find((p): p is string => p !== undefined && p !== "" && existsSync(p));
  if (found === undefined)
    throw new Error(
      "headless Chromium is needed for the browser-bundle test and was not found: " +
        "`apt-get install -y chromium` (Debian), or run `bash .ci/run`, which installs it",
    );
  return found;
}

// One bundle per package, so a failure names the package. Each posts its result to /result/<name>.
const ENTRIES: Record<string, string> = {
  authz: `
import { compilePolicies, parsePolicyResource } from "@ambientkit/authz";
const parsed = parsePolicyResource({
  apiVersion: "security.istio.io/v1", kind: "AuthorizationPolicy",
  metadata: { name: "allow-get", namespace: "foo" },
  spec: { targetRefs: [{ kind: "Service", group: "", name: "httpbin" }],
    rules: [{ from: [{ source: { namespaces: ["bar"] } }], to: [{ operation: { methods: ["GET"] } }] }] },
});
if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
const policies = compilePolicies([parsed.value], { rootNamespace: "istio-system", trustDomain: "cluster.local", trustDomainAliases: [] });
const ask = (method) => policies.decide({
  enforcement: "waypoint",
  workload: { namespace: "foo", labels: { app: "httpbin" } },
  waypoint: { name: "waypoint", namespace: "foo" },
  service: { kind: "Service", name: "httpbin", namespace: "foo", protocol: "HTTP", port: 8000 },
  connection: { sourcePrincipal: "spiffe://cluster.local/ns/bar/sa/sleep", sourceIp: "10.0.2.20", destinationIp: "10.96.0.50", destinationPort: 8000 },
  request: { method, path: "/status", host: "httpbin.foo:8000", headers: {}, jwt: null },
}).decision;
report({ get: ask("GET"), post: ask("POST") });
`,
  "xds-types": `
import { authorizationFromProto, authorizationToProto, decodeAuthorization, encodeAuthorization } from "@ambientkit/xds-types";
const bytes = encodeAuthorization(authorizationToProto({ name: "deny-9999", namespace: "default", scope: "Namespace", action: "Deny", dryRun: false, rules: [[[{ destinationPorts: [9999] }]]] }));
const back = authorizationFromProto(decodeAuthorization(bytes));
report({ name: back.name, action: back.action, bytes: bytes.length });
`,
  crds: `
import { validate } from "@ambientkit/crds";
const bad = validate({ apiVersion: "networking.istio.io/v1", kind: "Gateway", metadata: { name: "g" }, spec: { selektor: {} } });
const good = validate({ apiVersion: "security.istio.io/v1", kind: "AuthorizationPolicy", metadata: { name: "p" }, spec: { action: "ALLOW" } });
report({ bad: bad.issues.map((i) => i.code), good: good.issues.filter((i) => i.severity === "error").length });
`,
  telemetry: `
import { formatPrometheusText, IstioMetrics, parseBaggage, tcpLabels, workloadFromBaggage, workloadFromKubernetes } from "@ambientkit/telemetry";
const metrics = new IstioMetrics({ build: { component: "ztunnel", tag: "1.28.0" } });
const local = workloadFromKubernetes({ name: "echo-7f9c", workloadName: "echo", namespace: "prod", labels: { app: "echo", version: "v1" }, serviceAccount: "echo" });
const peer = workloadFromBaggage(parseBaggage("k8s.namespace.name=default,k8s.deployment.name=sleep,service.name=sleep"), "spiffe://cluster.local/ns/default/sa/sleep");
const conn = metrics.openConnection(tcpLabels({ reporter: "destination", derivedSource: peer, destination: local, securityPolicy: "mutual_tls" }), { src: "10.0.0.1:40000", dst: "10.0.0.2:15008" });
conn.received(67);
conn.close();
const line = formatPrometheusText(metrics).split("\\n").find((l) => l.startsWith("istio_tcp_received_bytes_total{"));
report({ workload: /source_workload="([^"]*)"/.exec(line)?.[1], bytes: line?.split(" ").at(-1) });
`,
  identity: `
import { CertificateAuthority, decodePemCertificates, parseX509Svid, TrustBundle, TrustBundleSet, verifyX509Svid } from "@ambientkit/identity";
const ca = await CertificateAuthority.createRoot({ trustDomain: "cluster.local", keyAlgorithm: "ec-p256" });
const issued = await ca.issue("spiffe://cluster.local/ns/default/sa/web");
const chain = decodePemCertificates(issued.certChainPem);
const svid = parseX509Svid(chain);
const bundles = new TrustBundleSet([TrustBundle.fromPem("cluster.local", ca.rootCertPem)]);
const { id } = await verifyX509Svid(chain, bundles);
report({ parsed: String(svid.id), verified: String(id) });
`,
};

// The page: an error while a bundle loads or runs is reported as that bundle's answer (its script
// URL names it), so a failing package fails its own test at once instead of at the timeout.
const PAGE = `<!doctype html><meta charset="utf-8"><script>
const post = (name, body) => fetch("/error/" + name, { method: "POST", body: JSON.stringify(body) });
const nameOf = (text) => /\\/([\\w-]+)\\.js/.exec(String(text))?.[1] ?? "page";
addEventListener("error", (e) => post(nameOf(e.filename), String(e.error?.stack ?? e.message)));
addEventListener("unhandledrejection", (e) =>
  post(nameOf(e.reason?.stack), String(e.reason?.stack ?? e.reason)));
</script>${Object.keys(ENTRIES)
  .map((n) => `<script type="module" src="/${n}.js"></script>`)
  .join("")}`;

const bundles = new Map<string, string>();
const results = new Map<string, unknown>();
const errors = new Map<string, string>();
let server: Server;
let chromium: ChildProcess | undefined;
let profile: string;
let allIn: Promise<void>;

// A setup failure (no Chromium, a bundle that does not build, no answer) fails every test below with
// its message, rather than leaving them reported as skipped.
let setupError: unknown;

beforeAll(async () => {
  try {
    await setup();
  } catch (e) {
    setupError = e;
  }
}, 90_000);

async function setup(): Promise<void> {
  const binary = chromiumPath(); // throws with the install hint
  for (const [name, code] of Object.entries(ENTRIES)) {
    const out = await build({
      stdin: {
        contents: `const report = (r) => fetch("/result/${name}", { method: "POST", body: JSON.stringify(r) });\n${code}`,
        resolveDir: root,
        loader: "js",
      },
      bundle: true,
      platform: "browser",
      format: "esm",
      target: "es2022",
      write: false,
      logLevel: "silent",
    });
    bundles.set(name, out.outputFiles[0]?.text ?? "");
  }
  let done: () => void = () => {};
  allIn = new Promise((r) => {
    done = r;
  });
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const url = req.url ?? "/";
      if (req.method === "POST" && url.startsWith("/result/")) {
        results.set(url.slice("/result/".length), JSON.parse(body));
      } else if (req.method === "POST" && url.startsWith("/error/")) {
        errors.set(url.slice("/error/".length), JSON.parse(body) as string);
      } else if (url === "/") {
        res.setHeader("content-type", "text/html");
        res.write(PAGE);
      } else if (bundles.has(url.slice(1, -3))) {
        res.setHeader("content-type", "text/javascript");
        res.write(bundles.get(url.slice(1, -3)));
      } else res.statusCode = 404;
      res.end();
      const answered = new Set([...results.keys(), ...errors.keys()]);
      if (errors.has("page") || [...bundles.keys()].every((n) => answered.has(n))) done();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  profile = mkdtempSync(join(tmpdir(), "chromium-profile-"));
  chromium = spawn(
    binary,
    [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage", // a container's small /dev/shm would crash the renderer
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--user-data-dir=${profile}`,
      `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    ],
    // Its own process group, so that the renderers and helpers end with it.
    { stdio: "ignore", detached: true },
  );
  await Promise.race([
    allIn,
    new Promise((_r, reject) =>
      setTimeout(
        () => reject(new Error(`after 45 s Chromium had answered for ${[...results.keys()]} only`)),
        45_000,
      ),
    ),
  ]);
}

afterAll(async () => {
  if (chromium?.pid !== undefined && chromium.exitCode === null) {
    const exited = new Promise((r) => chromium?.once("exit", r));
    process.kill(-chromium.pid, "SIGKILL");
    await exited;
  }
  server?.close();
  // Helpers may still be flushing the profile for a moment after the group is killed.
  if (profile) rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
});

describe("universal entries bundled by esbuild run in headless Chromium", () => {
  beforeEach(() => {
    if (setupError !== undefined) throw setupError;
  });
  it("the page itself loaded without errors", () => {
    expect(errors.get("page")).toBeUndefined();
  });
  it("authz decides at a waypoint: GET from bar allowed, POST denied", () => {
    expect(errors.get("authz")).toBeUndefined();
    expect(results.get("authz")).toEqual({ get: "allow", post: "deny" });
  });
  it("xds-types round-trips an Authorization through protobuf", () => {
    expect(errors.get("xds-types")).toBeUndefined();
    expect(results.get("xds-types")).toMatchObject({ name: "deny-9999", action: "Deny" });
  });
  it("crds validates: an unknown field is an error, a valid policy has none", () => {
    expect(errors.get("crds")).toBeUndefined();
    expect(results.get("crds")).toEqual({ bad: ["unknown-field"], good: 0 });
  });
  it("telemetry's root records a connection with Istio's labels and formats it", () => {
    expect(errors.get("telemetry")).toBeUndefined();
    expect(results.get("telemetry")).toEqual({ workload: "sleep", bytes: "67" });
  });
  it("identity's root issues, parses and verifies an X.509-SVID with WebCrypto", () => {
    expect(errors.get("identity")).toBeUndefined();
    expect(results.get("identity")).toEqual({
      parsed: "spiffe://cluster.local/ns/default/sa/web",
      verified: "spiffe://cluster.local/ns/default/sa/web",
    });
  });
});
