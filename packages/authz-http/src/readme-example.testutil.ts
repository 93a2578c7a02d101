// The README example, verbatim between the markers; readme.test.ts runs it and checks the README.
// --- example start
import { mkdtemp, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AuthzHttpMetrics, createAuthorizer } from "@ambientkit/authz-http";
import { authzOf, directoryPolicySource, expressAuthz } from "@ambientkit/authz-http/node";
import express from "express";

// A directory of AuthorizationPolicies, as a ConfigMap mount would hold them.
const dir = await mkdtemp(join(tmpdir(), "policies-"));
await writeFile(
  join(dir, "orders.yaml"),
  `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: writers-create-orders, namespace: shop }
spec:
  targetRefs: [{ kind: Service, group: "", name: api }]
  rules:
    - from: [{ source: { principals: ["cluster.local/ns/shop/sa/writer"] } }]
      to: [{ operation: { methods: ["POST"], paths: ["/orders"] } }]
`,
);

const authorizer = await createAuthorizer({
  app: {
    workload: { namespace: "shop", name: "api", labels: { app: "api" }, serviceAccount: "api" },
    service: { name: "api" },
  },
  sources: [directoryPolicySource(dir)],
  // The gateway at 127.0.0.1 terminates mTLS and forwards the client's identity in XFCC.
  identity: { xfcc: { trustedProxies: { cidrs: ["127.0.0.1/32"] } } },
  metrics: new AuthzHttpMetrics(),
});

const app = express();
app.use(expressAuthz(authorizer));
app.post("/orders", (req, res) => {
  const d = authzOf(req);
  res.json({ caller: d?.identity.principal, decidedBy: d?.decidedBy });
});
const server = createServer(app).listen(0, "127.0.0.1");
await new Promise((resolve) => server.once("listening", resolve));
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/orders`;

const xfcc = (sa: string) => ({
  "x-forwarded-client-cert": `URI=spiffe://cluster.local/ns/shop/sa/${sa}`,
});
const writer = await fetch(url, { method: "POST", headers: xfcc("writer") });
console.log(writer.status, await writer.json());
// 200 { caller: 'spiffe://cluster.local/ns/shop/sa/writer', decidedBy: 'shop/writers-create-orders' }
const reader = await fetch(url, { method: "POST", headers: xfcc("reader") });
console.log(reader.status, await reader.text()); // 403 RBAC: access denied
server.close();
await authorizer.close();
// --- example end
export const results = { writer: writer.status, reader: reader.status };
