// hbone over @ambientkit/identity's own TLS helpers and CA (SVIDs as istiod issues them).
import {
  hboneClientTlsOptions,
  hboneServerTlsOptions,
  verifyHboneClient,
} from "@ambientkit/identity/node";
import { createTestCa, type TestCa, type TestSvid } from "@ambientkit/identity/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTunnel } from "./client.js";
import type { HboneError } from "./errors.js";
import { HboneServer } from "./server.js";
import { readAll, startEcho, type TestTcpServer } from "./testdata/echo.test.util.js";

let echo: TestTcpServer;
let server: HboneServer;
let port: number;
let mesh: TestCa;
const errors: HboneError[] = [];
let serverSvid: TestSvid;

beforeAll(async () => {
  mesh = await createTestCa();
  serverSvid = await mesh.issue("default/server");
  const config = { identity: serverSvid.mtls, trustBundles: mesh.trustBundles };
  echo = await startEcho();
  server = new HboneServer({
    credentials: serverSvid.credentials,
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
    const client = await mesh.issue("default/client");
    const t = await openTunnel({
      address: { host: "127.0.0.1", port },
      credentials: client.credentials,
      expectedIdentities: [serverSvid.identity],
      tlsOptions: hboneClientTlsOptions({
        identity: client.mtls,
        trustBundles: mesh.trustBundles,
        expectedIdentities: [serverSvid.identity],
      }),
      authority: `127.0.0.1:${echo.port}`,
    });
    expect(t.info.peerIdentity).toBe(serverSvid.identity);
    t.end("via identity");
    expect((await readAll(t)).toString()).toBe("via identity");
  });

  it("identity's client check refuses an unexpected server SAN", async () => {
    const client = await mesh.issue("default/client");
    const err = (await openTunnel({
      address: { host: "127.0.0.1", port },
      credentials: client.credentials,
      expectedIdentities: ["spiffe://cluster.local/ns/x/sa/y"],
      tlsOptions: hboneClientTlsOptions({
        identity: client.mtls,
        trustBundles: mesh.trustBundles,
        expectedIdentities: ["spiffe://cluster.local/ns/x/sa/y"],
      }),
      authority: `127.0.0.1:${echo.port}`,
    }).catch((e: unknown) => e)) as HboneError;
    expect(err.code).toBe("ERR_HBONE_PEER_IDENTITY");
    expect(err.message).toContain("expected SAN");
  });

  it("identity's server check refuses a client of another trust domain", async () => {
    const foreign = await mesh.issue("spiffe://evil.example/ns/default/sa/client");
    const before = errors.length;
    const err = await openTunnel({
      address: { host: "127.0.0.1", port },
      // `ca` would be bound to evil.example (our own trust domain); trust cluster.local explicitly
      // so the handshake reaches the server's check
      credentials: { ...foreign.credentials, trustBundles: mesh.trustBundles },
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
