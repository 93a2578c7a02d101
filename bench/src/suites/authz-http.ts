// Issue #19's numbers: what @ambientkit/authz-http costs a hello-world route with 100 policies
// attached, on Express 5 and Fastify 5, against the bare route and against casbin's Express
// middleware (casbin-express-authz) with an equivalent 100-row policy, all measured in one run by
// autocannon. The servers live in a child process so the load generator does not share their
// event loop; after a warm-up, one server is under load at a time, in five short interleaved rounds
// (the best of five is kept, so a neighbour's burst on the shared machine does not decide a ratio).
import { type ChildProcess, fork } from "node:child_process";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { createAuthorizer, parsePolicyYaml, staticPolicySource } from "@ambientkit/authz-http";
import { expressAuthz, fastifyAuthz } from "@ambientkit/authz-http/node";
import autocannon from "autocannon";
import { authz as casbinAuthz } from "casbin-express-authz";
import express from "express";
import Fastify from "fastify";
import type { BenchGroup, BenchSuite, MeasureRow } from "../harness.js";

const POLICIES = 100;
const CALLER = POLICIES - 1;
const DURATION_S = 2;
const CONNECTIONS = 10;
const ROUNDS = 5;

/** 100 ALLOW policies on the app's Service, one per caller; the benchmark's caller is the last. */
function policyYaml(): string {
  return Array.from(
    { length: POLICIES },
    (_, i) => `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-user-${i}, namespace: bench }
spec:
  targetRefs: [{ kind: Service, group: "", name: hello }]
  rules:
    - from: [{ source: { principals: ["cluster.local/ns/bench/sa/user-${i}"] } }]
      to: [{ operation: { methods: ["GET"], paths: ["/hello"] } }]
`,
  ).join("---\n");
}

/** The same rule set as casbin rows: user, path, method (keyMatch on the path). */
const CASBIN_MODEL = `
[request_definition]
r = sub, obj, act
[policy_definition]
p = sub, obj, act
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = r.sub == p.sub && keyMatch(r.obj, p.obj) && r.act == p.act
`;
const casbinRows = (): string =>
  Array.from({ length: POLICIES }, (_, i) => `p, user-${i}, /hello, GET`).join("\n");

type Target =
  | "express"
  | "express+no-op"
  | "express+authz-http"
  | "express+casbin"
  | "fastify"
  | "fastify+no-op"
  | "fastify+authz-http";
// The no-op rows are the framework's own price of one middleware / one onRequest hook: the floor
// under any authorization middleware.
const TARGETS: Target[] = [
  "express",
  "express+no-op",
  "express+authz-http",
  "express+casbin",
  "fastify",
  "fastify+no-op",
  "fastify+authz-http",
];

/** Child side: all the servers on 127.0.0.1, ports sent back over IPC. */
async function serveAll(): Promise<Record<Target, number>> {
  const parsed = parsePolicyYaml(policyYaml(), "bench.yaml");
  if (parsed.issues.length > 0) throw new Error(parsed.issues.map((i) => i.message).join("\n"));
  const authorizer = await createAuthorizer({
    app: { workload: { namespace: "bench", labels: { app: "hello" } }, service: { name: "hello" } },
    sources: [staticPolicySource({ resources: parsed.resources })],
    // The load generator stands in for the trusted proxy that forwards the caller's identity.
    identity: { xfcc: { trustedProxies: { cidrs: ["127.0.0.1/32"] } } },
  });
  const listen = async (handler: Parameters<typeof createServer>[1]): Promise<number> => {
    const s = createServer(handler);
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    return (s.address() as AddressInfo).port;
  };
  const hello = (_req: unknown, res: { send(b: string): void }) => res.send("hello");

  const bare = express();
  bare.get("/hello", hello);
  const noop = express();
  noop.use((_req, _res, next) => next());
  noop.get("/hello", hello);
  const ours = express();
  ours.use(expressAuthz(authorizer));
  ours.get("/hello", hello);
  // casbin ships CommonJS and ESM builds; casbin-express-authz checks `instanceof Enforcer` against
  // the CommonJS one, so the enforcer must come from that build too (the dual-package hazard).
  const { newEnforcer, newModelFromString, StringAdapter } = createRequire(import.meta.url)(
    "casbin",
  ) as typeof import("casbin");
  const enforcer = newEnforcer(
    await newModelFromString(CASBIN_MODEL),
    new StringAdapter(casbinRows()),
  );
  const casbin = express();
  casbin.use(casbinAuthz({ newEnforcer: enforcer }));
  casbin.get("/hello", hello);

  const fastifyPort = async (kind: "bare" | "no-op" | "authz"): Promise<number> => {
    const f = Fastify();
    if (kind === "no-op") f.addHook("onRequest", (_request, _reply, done) => done());
    if (kind === "authz") await f.register(fastifyAuthz, { authorizer });
    f.get("/hello", async () => "hello");
    await f.listen({ port: 0, host: "127.0.0.1" });
    return (f.server.address() as AddressInfo).port;
  };
  return {
    express: await listen(bare),
    "express+no-op": await listen(noop),
    "express+authz-http": await listen(ours),
    "express+casbin": await listen(casbin),
    fastify: await fastifyPort("bare"),
    "fastify+no-op": await fastifyPort("no-op"),
    "fastify+authz-http": await fastifyPort("authz"),
  };
}

if (process.env.AMBIENTKIT_AUTHZ_HTTP_BENCH_CHILD === "1") {
  const ports = await serveAll();
  process.send?.({ ports });
}

async function load(
  port: number,
  duration = DURATION_S,
): Promise<{ rps: number; non2xx: number; errors: number }> {
  const r = await autocannon({
    url: `http://127.0.0.1:${port}/hello`,
    connections: CONNECTIONS,
    duration,
    headers: {
      // Ours reads the caller from XFCC, casbin-express-authz from HTTP basic auth: same caller.
      "x-forwarded-client-cert": `URI=spiffe://cluster.local/ns/bench/sa/user-${CALLER}`,
      authorization: `Basic ${Buffer.from(`user-${CALLER}:x`).toString("base64")}`,
    },
  });
  return { rps: r.requests.average, non2xx: r.non2xx, errors: r.errors };
}

async function measure(): Promise<MeasureRow[]> {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), [], {
    env: { ...process.env, AMBIENTKIT_AUTHZ_HTTP_BENCH_CHILD: "1" },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  try {
    const ports = await new Promise<Record<Target, number>>((resolve, reject) => {
      child.once("message", (m) => resolve((m as { ports: Record<Target, number> }).ports));
      child.once("exit", (code) => reject(new Error(`bench servers exited (${code})`)));
    });
    // Warm-up: JIT and the decision memo, so round one measures the steady state too.
    for (const t of TARGETS) await load(ports[t], 1);
    const best = new Map<Target, number>();
    for (let round = 0; round < ROUNDS; round++) {
      for (const t of TARGETS) {
        const r = await load(ports[t]);
        // Every request of every target is allowed: a refusal would mean unequal work.
        if (r.non2xx > 0 || r.errors > 0)
          throw new Error(`${t}: ${r.non2xx} non-2xx answers, ${r.errors} errors`);
        best.set(t, Math.max(best.get(t) ?? 0, r.rps));
      }
    }
    const rps = (t: Target): number => best.get(t) ?? Number.NaN;
    const addedUs = (t: Target, bare: Target): number => (1 / rps(t) - 1 / rps(bare)) * 1e6;
    const ours = addedUs("express+authz-http", "express");
    const casbin = addedUs("express+casbin", "express");
    return [
      ...TARGETS.map((t) => ({
        name: t.endsWith("+no-op")
          ? `${t} (one empty middleware / hook)`
          : `${t} (${POLICIES} policies)`.replace(/^(express|fastify) \(.*\)$/, "$1 bare route"),
        value: Math.round(rps(t)),
        unit: "req/s",
        ...(t === "express+casbin" ? { peer: true } : {}),
      })),
      {
        name: "Express: req/s lost to authz-http (target ≤ 5 %)",
        value: +((1 - rps("express+authz-http") / rps("express")) * 100).toFixed(1),
        unit: "%",
      },
      {
        name: "Fastify: req/s lost to authz-http (target ≤ 5 %)",
        value: +((1 - rps("fastify+authz-http") / rps("fastify")) * 100).toFixed(1),
        unit: "%",
      },
      {
        name: "Express: req/s lost to an empty middleware (the framework's floor)",
        value: +((1 - rps("express+no-op") / rps("express")) * 100).toFixed(1),
        unit: "%",
      },
      {
        name: "Fastify: req/s lost to an empty onRequest hook (the framework's floor)",
        value: +((1 - rps("fastify+no-op") / rps("fastify")) * 100).toFixed(1),
        unit: "%",
      },
      { name: "Express: added cost per request, authz-http", value: +ours.toFixed(2), unit: "µs" },
      {
        name: "Express: added cost per request, casbin-express-authz",
        value: +casbin.toFixed(2),
        unit: "µs",
        peer: true,
      },
      {
        name: "added cost authz-http / casbin-express-authz (target ≤ 0.2)",
        value: +(ours / casbin).toFixed(3),
        unit: "×",
      },
    ];
  } finally {
    child.kill();
  }
}

const suite: BenchSuite = {
  package: "authz-http",
  async groups(): Promise<BenchGroup[]> {
    return [
      {
        name: "authz-http/middleware-overhead",
        target: `≤ 5 % req/s lost on a hello-world Express / Fastify route with ${POLICIES} policies; added cost per request ≤ 1/5 of casbin-express-authz's`,
        cases: [],
        measure,
      },
    ];
  },
};
export default suite;
