// Shared fixtures of the tests: a CA of the project, policy YAML, servers on 127.0.0.1 port 0.
import type { AddressInfo } from "node:net";
import {
  CertificateAuthority,
  decodePemCertificates,
  TrustBundle,
  TrustBundleSet,
  verifyX509Svid,
} from "@ambientkit/identity";
import {
  type AuthorizerOptions,
  type AuthzLogger,
  createAuthorizer,
  parsePolicyYaml,
  staticPolicySource,
} from "./index.js";
import type { PeerVerifier } from "./node/index.js";

export const APP = {
  workload: { namespace: "shop", labels: { app: "api" }, serviceAccount: "api", name: "api" },
  service: { name: "api" },
} as const;

/** DENY /admin by selector (sidecar-style, L7), ALLOW GET or one gRPC method by targetRefs. */
export const POLICIES = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-admin, namespace: shop }
spec:
  selector: { matchLabels: { app: api } }
  action: DENY
  rules:
    - to: [{ operation: { paths: ["/admin", "/admin/*"] } }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-reads, namespace: shop }
spec:
  targetRefs: [{ kind: Service, group: "", name: api }]
  action: ALLOW
  rules:
    - to: [{ operation: { methods: ["GET"] } }]
    - to: [{ operation: { paths: ["/test.Echo/Allowed"] } }]
    - from: [{ source: { principals: ["cluster.local/ns/shop/sa/writer"] } }]
      to: [{ operation: { methods: ["POST"], paths: ["/orders"] } }]
`;

export function parsed(yaml: string) {
  const r = parsePolicyYaml(yaml, "test.yaml");
  if (r.issues.length > 0) throw new Error(r.issues.map((i) => i.message).join("\n"));
  return r.resources;
}

/** A logger that keeps lines, so tests can assert what an operator would see. */
export function memoryLogger(): AuthzLogger & { lines: string[] } {
  const lines: string[] = [];
  return { lines, warn: (m) => lines.push(`warn ${m}`), error: (m) => lines.push(`error ${m}`) };
}

export async function testAuthorizer(
  yaml: string = POLICIES,
  extra: Partial<AuthorizerOptions> = {},
) {
  const logger = memoryLogger();
  const authorizer = await createAuthorizer({
    app: APP,
    sources: [staticPolicySource({ resources: parsed(yaml) })],
    logger,
    ...extra,
  });
  return { authorizer, logger };
}

export async function listen(server: {
  listen(port: number, host: string, cb: () => void): unknown;
  address(): unknown;
}): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}

export interface TestCa {
  ca: CertificateAuthority;
  rootPem: string;
  bundles: TrustBundleSet;
  verifier: PeerVerifier;
  issue(id: string): Promise<{ cert: string; key: string }>;
}

let caPromise: Promise<TestCa> | undefined;
/** The project's Istio-compatible CA, one per test file. */
export function testCa(): Promise<TestCa> {
  caPromise ??= (async () => {
    const ca = await CertificateAuthority.createRoot({
      trustDomain: "cluster.local",
      keyAlgorithm: "ec-p256",
    });
    const bundles = new TrustBundleSet([TrustBundle.fromPem("cluster.local", ca.rootCertPem)]);
    return {
      ca,
      rootPem: ca.rootCertPem,
      bundles,
      verifier: async (chain) => (await verifyX509Svid(chain, bundles)).id.toString(),
      async issue(id) {
        const c = await ca.issue(id);
        return { cert: c.certChainPem, key: c.privateKeyPem };
      },
    };
  })();
  return caPromise;
}

export { decodePemCertificates };
