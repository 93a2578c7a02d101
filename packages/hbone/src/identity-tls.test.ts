// hbone over @ambientkit/identity's own TLS helpers and CA (SVIDs as istiod issues them).
import { CertificateAuthority, TrustBundle, TrustBundleSet } from "@ambientkit/identity";
import {
  hboneClientTlsOptions,
  hboneServerTlsOptions,
  verifyHboneClient,
} from "@ambientkit/identity/node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTunnel } from "./client.js";
import type { HboneError } from "./errors.js";
import { HboneServer } from "./server.js";
import { readAll, startEcho, type TestTcpServer } from "./testdata/echo.test.util.js";

let echo: TestTcpServer;
let server: HboneServer;
let port: number;
let ca: CertificateAuthority;
let bundles: TrustBundleSet;
const errors: HboneError[] = [];
type Issued = Awaited<ReturnType<CertificateAuthority["issue"]>>;
let serverSvid: Issued;

const creds = (s: Issued) => ({ cert: s.certChainPem, key: s.privateKeyPem, ca: s.rootCertPem });

beforeAll(async () => {
  ca = await CertificateAuthority.createRoot({
    trustDomain: "cluster.local",
    keyAlgorithm: "ec-p256",
  });
  serverSvid = await ca.issue("spiffe://cluster.local/ns/default/sa/server");
  bundles = new TrustBundleSet([TrustBundle.fromPem("cluster.local", serverSvid.rootCertPem)]);
  const config = {
    identity: { certChainPem: serverSvid.certChainPem, privateKeyPem: serverSvid.privateKeyPem },
    trustBundles: bundles,
  };
  echo = await startEcho();
  server = new HboneServer({
    credentials: creds(serverSvid),
    tlsOptions: () => hboneServerTlsOptions(config),
    verifyClient: (socket) => verifyHboneClient(socket, config).identity,
  });
  server.on("clientError", (e: HboneError) => errors.push(e));
  port = (await server.listen(0)).port;
});

afterAll(async () => {
  await server?.close(500);
  await echo?.close();
});

describe("with @ambientkit/identity TLS helpers", () => {
  it("opens a tunnel with identity-issued SVIDs on both sides", async () => {
    const client = await ca.issue("spiffe://cluster.local/ns/default/sa/client");
    const t = await openTunnel({
      address: { host: "127.0.0.1", port },
      credentials: creds(client),
      expectedIdentities: [serverSvid.identity],
      tlsOptions: hboneClientTlsOptions({
        identity: { certChainPem: client.certChainPem, privateKeyPem: client.privateKeyPem },
        trustBundles: bundles,
        expectedIdentities: [serverSvid.identity],
      }),
      authority: `127.0.0.1:${echo.port}`,
    });
    expect(t.info.peerIdentity).toBe(serverSvid.identity);
    t.end("via identity");
    expect((await readAll(t)).toString()).toBe("via identity");
  });

  it("identity's client check refuses an unexpected server SAN", async () => {
    const client = await ca.issue("spiffe://cluster.local/ns/default/sa/client");
    const err = (await openTunnel({
      address: { host: "127.0.0.1", port },
      credentials: creds(client),
      expectedIdentities: ["spiffe://cluster.local/ns/x/sa/y"],
      tlsOptions: hboneClientTlsOptions({
        identity: { certChainPem: client.certChainPem, privateKeyPem: client.privateKeyPem },
        trustBundles: bundles,
        expectedIdentities: ["spiffe://cluster.local/ns/x/sa/y"],
      }),
      authority: `127.0.0.1:${echo.port}`,
    }).catch((e: unknown) => e)) as HboneError;
    expect(err.code).toBe("ERR_HBONE_PEER_IDENTITY");
    expect(err.message).toContain("expected SAN");
  });

  it("identity's server check refuses a client of another trust domain", async () => {
    const foreign = await ca.issue("spiffe://evil.example/ns/default/sa/client");
    const before = errors.length;
    const err = await openTunnel({
      address: { host: "127.0.0.1", port },
      // `ca` would be bound to evil.example (our own trust domain); trust cluster.local explicitly
      // so the handshake reaches the server's check
      credentials: { ...creds(foreign), trustBundles: bundles },
      expectedIdentities: [serverSvid.identity],
      authority: `127.0.0.1:${echo.port}`,
    }).catch((e: unknown) => e);
    expect(err).toBeDefined();
    const end = Date.now() + 5000;
    while (errors.length === before && Date.now() < end)
      await new Promise((r) => setTimeout(r, 10));
    expect(errors.at(-1)?.code).toBe("ERR_HBONE_PEER_IDENTITY");
    expect(errors.at(-1)?.message).toContain("expected trustdomain (cluster.local)");
  });
});
