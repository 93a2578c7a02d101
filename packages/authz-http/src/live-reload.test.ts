// Live policies: a watched directory rewritten 100 times under a bounded load, a broken file that
// keeps the last good set serving (reported with file:line), a LOCAL_XDS file and istiod's
// Authorizations through @ambientkit/xds's MeshStateStore.
import { mkdtemp, rename, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatPrometheusText } from "@ambientkit/telemetry";
import { MeshStateStore } from "@ambientkit/xds";
import { parseLocalXds } from "@ambientkit/xds-types/local-xds";
import express from "express";
import { Agent, fetch as undiciFetch } from "undici";
import { afterAll, describe, expect, it } from "vitest";
import { APP, listen, memoryLogger } from "./harness.testutil.js";
import {
  type AppDecision,
  type Authorizer,
  AuthzHttpMetrics,
  createAuthorizer,
  meshStatePolicySource,
  type PolicySetEvent,
} from "./index.js";
import { directoryPolicySource, expressAuthz, localXdsFileSource } from "./node/index.js";

const closers: (() => unknown)[] = [];
afterAll(async () => {
  for (const c of closers.reverse()) await c();
});

/** Version `v`: `allow-v<v>` allows /probe and /gen/<v> only; every version allows /probe. */
function policyFile(v: number): string {
  return `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-v${v}, namespace: shop }
spec:
  targetRefs: [{ kind: Service, group: "", name: api }]
  rules:
    - to: [{ operation: { paths: ["/probe", "/gen/${v}"] } }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-not-v${v}, namespace: shop }
spec:
  selector: { matchLabels: { app: api } }
  action: DENY
  rules:
    - to: [{ operation: { paths: ["/gen/*"], notPaths: ["/gen/${v}"] } }]
`;
}

/** Writes atomically: a dot-file renamed into place, as the source's docs ask. */
async function atomicWrite(file: string, text: string): Promise<void> {
  const tmp = join(file, "..", `.tmp-${Date.now()}-${Math.random()}`);
  await writeFile(tmp, text);
  await rename(tmp, file);
}

async function serve(authorizer: Authorizer) {
  const app = express();
  app.use(expressAuthz(authorizer));
  app.all("/{*any}", (req, res) => {
    const d = (req as IncomingMessage & { authz?: AppDecision }).authz;
    res.json({ decidedBy: d?.decidedBy, revision: d?.policyRevision });
  });
  const server = createServer(app);
  const port = await listen(server);
  closers.push(() => server.close());
  return `http://127.0.0.1:${port}`;
}

/** Resolves when `pred` holds for a swapped-in set; rejects after `ms` (the bound under test). */
function swappedWithin(authorizer: Authorizer, ms: number, pred: (e: PolicySetEvent) => boolean) {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`policy change not applied within ${ms} ms`));
    }, ms);
    const off = authorizer.onPolicyChange((e) => {
      if (e.type === "swapped" && pred(e)) {
        clearTimeout(timer);
        off();
        resolve();
      }
    });
  });
}

describe("watched directory", () => {
  it("100 rewrites under load: every request answered by the set in force, each set live within 1 s", async () => {
    const dir = await mkdtemp(join(tmpdir(), "authz-http-live-"));
    const file = join(dir, "policies.yaml");
    await atomicWrite(file, policyFile(0));
    const metrics = new AuthzHttpMetrics();
    const authorizer = await createAuthorizer({
      app: APP,
      sources: [directoryPolicySource(dir)],
      logger: memoryLogger(),
      metrics,
    });
    closers.push(() => authorizer.close());
    const url = await serve(authorizer);
    const dispatcher = new Agent({ connections: 10 });
    closers.push(() => dispatcher.close());

    let stop = false;
    const failures: string[] = [];
    let requests = 0;
    // Bounded load: 10 workers, one request in flight each, /probe is allowed by every version.
    const workers = Array.from({ length: 10 }, async () => {
      let lastVersion = 0;
      while (!stop) {
        const r = await undiciFetch(`${url}/probe`, { dispatcher });
        const body = (await r.json().catch(() => ({}))) as { decidedBy?: string };
        requests++;
        const v = Number(/allow-v(\d+)$/.exec(body.decidedBy ?? "")?.[1] ?? -1);
        if (r.status !== 200 || v < 0) failures.push(`${r.status} ${JSON.stringify(body)}`);
        // A swap is one reference: a worker never sees an older set after a newer one.
        else if (v < lastVersion) failures.push(`went back from v${lastVersion} to v${v}`);
        else lastVersion = v;
      }
    });

    for (let v = 1; v <= 100; v++) {
      const applied = swappedWithin(authorizer, 1000, (e) =>
        e.type === "swapped" ? e.set.attached.includes(`shop/allow-v${v}`) : false,
      );
      await atomicWrite(file, policyFile(v));
      await applied;
      // The new set is the one answering: its path allowed, the previous version's path denied.
      const now = await undiciFetch(`${url}/gen/${v}`, { dispatcher });
      expect(now.status).toBe(200);
      await now.text();
      const old = await undiciFetch(`${url}/gen/${v - 1}`, { dispatcher });
      expect(old.status).toBe(403);
      await old.text();
    }
    stop = true;
    await Promise.all(workers);
    expect(failures).toEqual([]);
    expect(requests).toBeGreaterThan(100);
    expect(metrics.decisions({ decision: "deny" })).toBe(100);
    // Scraped as Prometheus text beside the Istio metrics.
    const text = formatPrometheusText(metrics.collect());
    const swapped = /ambientkit_authz_http_policy_reloads_total\{result="swapped"\} (\d+)/.exec(
      text,
    );
    expect(Number(swapped?.[1])).toBeGreaterThanOrEqual(101);
  });

  it("a broken file keeps the last good set serving and is reported with file:line", async () => {
    const dir = await mkdtemp(join(tmpdir(), "authz-http-broken-"));
    const file = join(dir, "policies.yaml");
    await atomicWrite(file, policyFile(1));
    const logger = memoryLogger();
    const authorizer = await createAuthorizer({
      app: APP,
      sources: [directoryPolicySource(dir)],
      logger,
    });
    closers.push(() => authorizer.close());
    const url = await serve(authorizer);
    const rejected = new Promise<PolicySetEvent>((resolve) =>
      authorizer.onPolicyChange((e) => {
        if (e.type === "rejected") resolve(e);
      }),
    );
    // Line 7: a value of the wrong type (paths must be a list of strings).
    await atomicWrite(file, policyFile(2).replace('paths: ["/probe", "/gen/2"]', "paths: 42"));
    const e = await rejected;
    expect(e.type === "rejected" && e.issues[0]).toMatchObject({ file, line: 7 });
    expect(e.type === "rejected" && e.serving).toMatch(/@1$/);
    expect(logger.lines.join("\n")).toMatch(
      new RegExp(`rejected, still serving revision .*\\n  ${file.replace(/[.]/g, "\\.")}:7:\\d+ `),
    );
    const r = await fetch(`${url}/gen/1`);
    expect(await r.json()).toMatchObject({ decidedBy: "shop/allow-v1" });
    // YAML that does not parse at all, then a fix.
    const rejectedAgain = new Promise<PolicySetEvent>((resolve) =>
      authorizer.onPolicyChange((ev) => {
        if (ev.type === "rejected") resolve(ev);
      }),
    );
    await atomicWrite(file, "kind: AuthorizationPolicy\nmetadata: { name: x\n");
    const syntax = await rejectedAgain;
    expect(syntax.type === "rejected" && syntax.issues[0]?.file).toBe(file);
    const fixed = swappedWithin(authorizer, 1000, (ev) =>
      ev.type === "swapped" ? ev.set.attached.includes("shop/allow-v3") : false,
    );
    await atomicWrite(file, policyFile(3));
    await fixed;
    expect((await fetch(`${url}/gen/3`)).status).toBe(200);
    // The parser notices the unclosed flow map where the next line starts.
    expect(logger.lines.join("\n")).toContain(`${file}:3:1 Flow map`);
  });
});

const LOCAL_XDS = (deny: boolean) => `workloads:
  - uid: Kubernetes//Pod/shop/api
    name: api
    namespace: shop
    serviceAccount: api
    trustDomain: cluster.local
    workloadIps: ["127.0.0.9"]
    protocol: HBONE
    node: node-a
    workloadName: api
    workloadType: deployment
    canonicalName: api
    canonicalRevision: v1
    clusterId: Kubernetes
    services: {}
    authorizationPolicies: ${deny ? '["shop/deny-loopback"]' : "[]"}
policies:
  - name: deny-loopback
    namespace: shop
    scope: WorkloadSelector
    action: Deny
    dryRun: false
    rules:
      - - - sourceIps: ["127.0.0.0/8"]
`;

describe("ztunnel Authorizations", () => {
  it("a LOCAL_XDS file: WorkloadSelector policies of the app's own workload apply at L4, live", async () => {
    const dir = await mkdtemp(join(tmpdir(), "authz-http-lx-"));
    const file = join(dir, "local-xds.yaml");
    await atomicWrite(file, LOCAL_XDS(false));
    const authorizer = await createAuthorizer({
      app: APP,
      sources: [localXdsFileSource(file, { namespace: "shop", name: "api" })],
      logger: memoryLogger(),
    });
    closers.push(() => authorizer.close());
    const url = await serve(authorizer);
    expect((await fetch(`${url}/x`)).status).toBe(200);
    const applied = swappedWithin(authorizer, 1000, () => true);
    await atomicWrite(file, LOCAL_XDS(true));
    await applied;
    const denied = await fetch(`${url}/x`);
    expect(denied.status).toBe(403);
    expect(await denied.text()).toBe("RBAC: access denied");
  });

  it("istiod's Authorizations through MeshStateStore events", async () => {
    const store = new MeshStateStore();
    const load = (deny: boolean) => {
      const r = parseLocalXds(LOCAL_XDS(deny));
      if (!r.ok) throw new Error(JSON.stringify(r.issues));
      store.loadLocalConfig(r.value, deny ? "v2" : "v1");
    };
    load(false);
    const log: string[] = [];
    const authorizer = await createAuthorizer({
      app: APP,
      sources: [meshStatePolicySource(store, { namespace: "shop", name: "api" })],
      logger: memoryLogger(),
      decisionLog: { sink: (e) => log.push(e.decidedBy) },
    });
    const url = await serve(authorizer);
    expect((await fetch(`${url}/x`)).status).toBe(200);
    load(true);
    expect((await fetch(`${url}/x`)).status).toBe(403);
    expect(log.at(-1)).toBe("ztunnel:shop/deny-loopback");
    load(false);
    expect((await fetch(`${url}/x`)).status).toBe(200);
  });

  it("a control plane that has not delivered yet does not hold the start, and denies until it does", async () => {
    const store = new MeshStateStore();
    const log: string[] = [];
    const authorizer = await createAuthorizer({
      app: APP,
      sources: [meshStatePolicySource(store, { namespace: "shop", name: "api" })],
      logger: memoryLogger(),
      decisionLog: { sink: (e) => log.push(e.decidedBy) },
    });
    const url = await serve(authorizer);
    expect((await fetch(`${url}/x`)).status).toBe(403);
    expect(log.at(-1)).toBe("error:ERR_AUTHZ_HTTP_NO_POLICY_SET");
    const swapped = swappedWithin(authorizer, 1000, () => true);
    const r = parseLocalXds(LOCAL_XDS(false));
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    store.loadLocalConfig(r.value, "v1");
    await swapped;
    expect((await fetch(`${url}/x`)).status).toBe(200);
  });
});
