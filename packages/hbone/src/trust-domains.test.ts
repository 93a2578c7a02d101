// Trust is chosen by the peer leaf's trust domain (never "any root"), and SPIFFE IDs are parsed by
// @ambientkit/identity (an upper-case trust domain is rejected, never lower-cased). Certificates
// come from the openssl CLI; every handshake is a real TLS 1.3 one on loopback.
import { X509Certificate } from "node:crypto";
import type net from "node:net";
import tls from "node:tls";
import { TrustBundle, TrustBundleSet } from "@ambientkit/identity";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dialHbone, openTunnel } from "./client.js";
import { HboneError } from "./errors.js";
import { HboneServer } from "./server.js";
import { HBONE_DEFAULTS } from "./settings.js";
import { readAll, startEcho, type TestTcpServer } from "./testdata/echo.test.util.js";
import { createTestCa, credsOf, type TestCa, type TestLeaf } from "./testdata/pki.test.util.js";
import {
  clientTlsOptions,
  type HboneCredentials,
  identityOfCredentials,
  matchesExpected,
  spiffeIdsOf,
  trustDomainOf,
} from "./tls.js";

const TD = "cluster.local";
const OTHER = "other.example";
let mesh: TestCa;
let other: TestCa;
let client: TestLeaf;
let server: TestLeaf;
let rogueServer: TestLeaf; // cluster.local ID, signed by other.example's root
let otherServer: TestLeaf; // other.example ID, signed by other.example's root
let rogueClient: TestLeaf;
let upperServer: TestLeaf; // spiffe://Cluster.Local/…, signed by the mesh root
let upperClient: TestLeaf;
let both: TrustBundleSet;
let echo: TestTcpServer;
let hbone: HboneServer; // cluster.local, trusts both bundles
let hboneOther: HboneServer; // an other.example workload accepting cluster.local clients
let port: number;
let otherPort: number;
const serverErrors: HboneError[] = [];
const rawServers: net.Server[] = [];

const withBundles = (leaf: TestLeaf, trustBundles: TrustBundleSet): HboneCredentials => ({
  cert: leaf.certPem,
  key: leaf.keyPem,
  ca: [],
  trustBundles,
});

beforeAll(async () => {
  mesh = createTestCa("mesh-root");
  other = createTestCa("other-root");
  client = mesh.issue(`spiffe://${TD}/ns/default/sa/client`);
  server = mesh.issue(`spiffe://${TD}/ns/default/sa/server`);
  rogueServer = other.issue(`spiffe://${TD}/ns/default/sa/server`);
  otherServer = other.issue(`spiffe://${OTHER}/ns/default/sa/server`);
  rogueClient = other.issue(`spiffe://${TD}/ns/default/sa/client`);
  upperServer = mesh.issue("spiffe://Cluster.Local/ns/default/sa/server");
  upperClient = mesh.issue("spiffe://Cluster.Local/ns/default/sa/client");
  both = new TrustBundleSet([
    TrustBundle.fromPem(TD, mesh.certPem),
    TrustBundle.fromPem(OTHER, other.certPem),
  ]);
  echo = await startEcho();
  hbone = new HboneServer({
    credentials: (local) =>
      local === "127.0.0.1"
        ? withBundles(server, both)
        : local === "127.0.0.2"
          ? withBundles(rogueServer, both)
          : undefined,
  });
  hbone.on("clientError", (e: HboneError) => serverErrors.push(e));
  port = (await hbone.listen(0, "0.0.0.0")).port;
  hboneOther = new HboneServer({ credentials: withBundles(otherServer, both), trustDomain: TD });
  hboneOther.on("clientError", (e: HboneError) => serverErrors.push(e));
  otherPort = (await hboneOther.listen(0)).port;
});

afterAll(async () => {
  await hbone?.close(500);
  await hboneOther?.close(500);
  for (const s of rawServers) s.close();
  await echo?.close();
  mesh?.cleanup();
  other?.cleanup();
});

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A bare TLS 1.3 server presenting `leaf` (no HBONE checks of its own). */
async function rawTlsServer(leaf: TestLeaf, extra: tls.TlsOptions = {}): Promise<number> {
  const s = tls.createServer(
    {
      cert: leaf.certPem,
      key: leaf.keyPem,
      minVersion: "TLSv1.3",
      ALPNProtocols: ["h2"],
      ...extra,
    },
    (sock) => sock.destroy(),
  );
  s.on("tlsClientError", () => {});
  rawServers.push(s);
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  return (s.address() as net.AddressInfo).port;
}

describe("the bundle is the one of the peer's trust domain", () => {
  it("accepts a server of another trust domain when trustBundles has that trust domain's bundle", async () => {
    const t = await openTunnel({
      address: { host: "127.0.0.1", port: otherPort },
      credentials: withBundles(client, both),
      expectedIdentities: [otherServer.id],
      authority: `127.0.0.1:${echo.port}`,
    });
    expect(t.info.peerIdentity).toBe(otherServer.id);
    t.end("federated");
    expect((await readAll(t)).toString()).toBe("federated");
  });

  it("client: a server chaining to another trust domain's root is rejected, though that root is in trustBundles", async () => {
    const err = (await dialHbone({
      address: { host: "127.0.0.2", port },
      credentials: withBundles(client, both),
      expectedIdentities: [rogueServer.id],
    }).catch((e: unknown) => e)) as HboneError;
    expect(err).toBeInstanceOf(HboneError);
    expect(err.code).toBe("ERR_HBONE_PEER_IDENTITY");
    expect(err.message).toContain(`does not lead to a root of trust domain "${TD}"`);
  });

  it("client: `ca` is bound to our own trust domain, so a root in `ca` does not vouch for other trust domains", async () => {
    // the old "any root" rule accepted this: other.example's root is in `ca`
    const err = (await dialHbone({
      address: { host: "127.0.0.1", port: otherPort },
      credentials: credsOf(client, mesh, other),
      expectedIdentities: [otherServer.id],
    }).catch((e: unknown) => e)) as HboneError;
    expect(err).toBeInstanceOf(HboneError);
    expect(err.code).toBe("ERR_HBONE_PEER_IDENTITY");
    expect(err.message).toContain(`no X.509 bundle found for trust domain "${OTHER}"`);
  });

  it("server: a client chaining to another trust domain's root is rejected, though that root is in trustBundles", async () => {
    const before = serverErrors.length;
    const err = await dialHbone({
      address: { host: "127.0.0.1", port },
      credentials: withBundles(rogueClient, both),
      expectedIdentities: [server.id],
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HboneError);
    await waitFor(() => serverErrors.length > before);
    expect(serverErrors.at(-1)?.code).toBe("ERR_HBONE_TLS");
    expect(serverErrors.at(-1)?.message).toContain("client certificate rejected");
  });

  it("a server accepting a trust domain without a bundle is a config error", () => {
    expect(
      () => new HboneServer({ credentials: credsOf(server, mesh), trustDomain: OTHER }),
    ).toThrow(expect.objectContaining({ code: "ERR_HBONE_CONFIG" }));
  });
});

describe("SPIFFE IDs are parsed by @ambientkit/identity, never lower-cased", () => {
  it("an upper-case trust domain in the server's SAN is rejected, even by a trust-domain wildcard", async () => {
    const p = await rawTlsServer(upperServer);
    const err = (await dialHbone({
      address: { host: "127.0.0.1", port: p },
      credentials: credsOf(client, mesh),
      expectedIdentities: [`spiffe://${TD}/`],
    }).catch((e: unknown) => e)) as HboneError;
    expect(err).toBeInstanceOf(HboneError);
    expect(err.code).toBe("ERR_HBONE_PEER_IDENTITY");
    const byId = (await dialHbone({
      address: { host: "127.0.0.1", port: p },
      credentials: credsOf(client, mesh),
      expectedIdentities: [`spiffe://${TD}/ns/default/sa/server`],
    }).catch((e: unknown) => e)) as HboneError;
    expect(byId.code).toBe("ERR_HBONE_PEER_IDENTITY");
    expect(byId.message).toContain("lowercase");
  });

  it("an upper-case expected ID or our own upper-case SAN is a config error", async () => {
    expect(() => clientTlsOptions(credsOf(client, mesh), [upperServer.id])).toThrow(
      expect.objectContaining({ code: "ERR_HBONE_CONFIG" }),
    );
    expect(() => identityOfCredentials({ cert: upperClient.certPem })).toThrow(
      expect.objectContaining({ code: "ERR_HBONE_CONFIG" }),
    );
  });

  it("server: a client whose SAN has an upper-case trust domain is rejected, not lower-cased", async () => {
    const before = serverErrors.length;
    await new Promise<void>((resolve) => {
      const s = tls.connect({
        host: "127.0.0.1",
        port,
        cert: upperClient.certPem,
        key: upperClient.keyPem,
        ca: mesh.certPem,
        minVersion: "TLSv1.3",
        ALPNProtocols: ["h2"],
        checkServerIdentity: () => undefined,
      });
      s.on("error", () => resolve());
      s.on("close", () => resolve());
    });
    await waitFor(() => serverErrors.length > before);
    const e = serverErrors.at(-1);
    expect(e?.code).toBe("ERR_HBONE_PEER_IDENTITY");
    expect(e?.message).toContain("lowercase");
  });

  it("trustDomainOf / spiffeIdsOf / matchesExpected reject what identity rejects", () => {
    expect(trustDomainOf("spiffe://cluster.local/ns/a/sa/b")).toBe(TD);
    expect(trustDomainOf("spiffe://Cluster.Local/ns/a/sa/b")).toBeUndefined();
    expect(trustDomainOf("spiffe://cluster.local/ns//b")).toBeUndefined();
    expect(spiffeIdsOf(new X509Certificate(server.certPem))).toEqual([server.id]);
    expect(spiffeIdsOf({ subjectaltname: `URI:${upperServer.id}, DNS:x` })).toEqual([]);
    expect(spiffeIdsOf({ subjectaltname: `DNS:x, URI:${server.id}` })).toEqual([server.id]);
    expect(matchesExpected(server.id, [`spiffe://${TD}/`])).toBe(true);
    expect(matchesExpected(server.id, [`spiffe://${TD}/ns/default/`])).toBe(true);
    expect(matchesExpected(server.id, [`spiffe://${TD}/ns/def/`])).toBe(false);
    expect(matchesExpected(server.id, [`spiffe://${OTHER}/`])).toBe(false);
    expect(
      matchesExpected(upperServer.id, ["spiffe://cluster.local/", "spiffe://Cluster.Local/"]),
    ).toBe(false);
  });
});

describe("trust-domain wildcard and TLS settings", () => {
  it("`spiffe://td/` accepts any server of that trust domain, and no other", async () => {
    const conn = await dialHbone({
      address: { host: "127.0.0.1", port },
      credentials: credsOf(client, mesh),
      expectedIdentities: [`spiffe://${TD}/`],
    });
    expect(conn.peerIdentity).toBe(server.id);
    await conn.close();
    const err = (await dialHbone({
      address: { host: "127.0.0.1", port },
      credentials: credsOf(client, mesh),
      expectedIdentities: [`spiffe://${OTHER}/`],
    }).catch((e: unknown) => e)) as HboneError;
    expect(err.code).toBe("ERR_HBONE_PEER_IDENTITY");
    expect(err.message).toContain("expected SAN");
  });

  it("offers only ztunnel's AES-GCM suites: a ChaCha20-only server fails the handshake", async () => {
    const p = await rawTlsServer(server, { ciphers: "TLS_CHACHA20_POLY1305_SHA256" });
    const err = (await dialHbone({
      address: { host: "127.0.0.1", port: p },
      credentials: credsOf(client, mesh),
      expectedIdentities: [server.id],
    }).catch((e: unknown) => e)) as HboneError;
    expect(err).toBeInstanceOf(HboneError);
    expect(err.code).toBe("ERR_HBONE_TLS");
    expect(HBONE_DEFAULTS.tlsCiphersuites).toBe("TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256");
  });
});
