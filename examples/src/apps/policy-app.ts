// The scenario's echo service as an app that enforces the mesh's policies itself (issue #19):
// Express or Fastify, protected by examples/scenario/istio.yaml (L7: AuthorizationPolicies with
// targetRefs to Service echo) and examples/scenario/mesh.yaml (ztunnel's LOCAL_XDS: who each
// source IP is, and the L4 Authorizations that select this workload), both reloaded on change.
//
//   node examples/dist/apps/policy-app.js [--framework express|fastify] [--host 127.0.10.2] [--port 8080] [--dry-run]
//   curl --interface 127.0.10.1 http://127.0.10.2:8080/          # sleep: allowed
//   curl --interface 127.0.10.1 http://127.0.10.2:8080/admin     # sleep: 403 by default/echo-deny-admin
//   curl --interface 127.0.10.4 http://127.0.10.2:8080/          # intruder: 403 at L4 (echo-allow-mesh-clients)
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import {
  type AppDecision,
  type Authorizer,
  AuthzHttpMetrics,
  createAuthorizer,
  type DecisionLogEntry,
} from "@ambientkit/authz-http";
import {
  directoryPolicySource,
  expressAuthz,
  fastifyAuthz,
  localXdsFileSource,
} from "@ambientkit/authz-http/node";
import { formatPrometheusText } from "@ambientkit/telemetry";
import express from "express";
import Fastify from "fastify";

const scenarioDir = fileURLToPath(new URL("../../scenario/", import.meta.url));

export interface PolicyApp {
  readonly url: string;
  readonly authorizer: Authorizer;
  readonly metrics: AuthzHttpMetrics;
  close(): Promise<void>;
}

export interface PolicyAppOptions {
  framework: "express" | "fastify";
  host?: string;
  port?: number;
  dryRun?: boolean;
  /** Where decisions go (default: one JSON line each on stdout). */
  onDecision?: (e: DecisionLogEntry) => void;
}

/** Who the echo-v1 pod is, as the scenario's Service and LOCAL_XDS describe it. */
const SELF = { namespace: "default", name: "echo-v1" };

export async function startPolicyApp(options: PolicyAppOptions): Promise<PolicyApp> {
  const metrics = new AuthzHttpMetrics();
  // mesh.yaml answers both "who is calling" (source IP → workload) and the L4 policies.
  const mesh = localXdsFileSource(`${scenarioDir}mesh.yaml`, SELF);
  const authorizer = await createAuthorizer({
    app: {
      workload: { namespace: "default", labels: { app: "echo", version: "v1" }, name: "echo-v1" },
      service: { name: "echo", port: 8000 },
    },
    sources: [directoryPolicySource(scenarioDir, { include: /^istio\.yaml$/ }), mesh],
    identity: { workloads: mesh },
    mode: options.dryRun ? "dry-run" : "enforce",
    // The policies were written for the Service port, not the container port.
    destinationPort: 8000,
    metrics,
    decisionLog: {
      sink: options.onDecision ?? ((e) => process.stdout.write(`${JSON.stringify(e)}\n`)),
      sampleAllow: 0.1,
    },
  });
  const answer = (d: AppDecision | undefined | null) => ({
    app: "echo",
    caller: d?.identity.principal ?? null,
    identitySource: d?.identity.source,
    decidedBy: d?.decidedBy,
    enforced: d?.enforced,
  });
  let close: () => Promise<void>;
  let address: AddressInfo;
  if (options.framework === "express") {
    const app = express();
    app.get("/metrics", (_req, res) => {
      res.type("text/plain").send(formatPrometheusText(metrics.collect()));
    });
    app.use(expressAuthz(authorizer));
    app.all("/{*any}", (req, res) => {
      res.json(answer((req as IncomingMessage & { authz?: AppDecision }).authz));
    });
    const server: Server = createServer(app);
    await new Promise<void>((r) =>
      server.listen(options.port ?? 0, options.host ?? "127.0.0.1", r),
    );
    address = server.address() as AddressInfo;
    close = () => new Promise((r) => server.close(() => r()));
  } else {
    const app = Fastify();
    app.get("/metrics", async (_req, reply) =>
      reply.type("text/plain").send(formatPrometheusText(metrics.collect())),
    );
    // Registered in its own context: /metrics above stays outside the policy, as in a mesh where
    // the scrape port is not the app port.
    await app.register((child, _opts, done) => {
      child.register(fastifyAuthz, { authorizer });
      child.all("/*", async (request) =>
        answer((request as unknown as { authz?: AppDecision }).authz),
      );
      done();
    });
    await app.listen({ port: options.port ?? 0, host: options.host ?? "127.0.0.1" });
    address = app.server.address() as AddressInfo;
    close = async () => {
      await app.close();
    };
  }
  return {
    url: `http://${address.address}:${address.port}`,
    authorizer,
    metrics,
    async close() {
      await close();
      await authorizer.close();
    },
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({
    options: {
      framework: { type: "string", default: "express" },
      host: { type: "string", default: "127.0.10.2" },
      port: { type: "string", default: "8080" },
      "dry-run": { type: "boolean", default: false },
    },
  });
  const framework = values.framework === "fastify" ? "fastify" : "express";
  const app = await startPolicyApp({
    framework,
    host: values.host,
    port: Number(values.port),
    dryRun: values["dry-run"],
  });
  process.stderr.write(`policy-app (${framework}) on ${app.url}; policies from ${scenarioDir}\n`);
  process.once("SIGINT", () => void app.close());
}
