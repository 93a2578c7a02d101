// Real TLS 1.3 handshakes between two Node peers on 127.0.0.1 with CA-issued SVIDs.
import { createSecureServer, connect as http2Connect } from "node:http2";
import { createServer, type Server } from "node:net";
import { connect, type TLSSocket } from "node:tls";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { TrustBundle, TrustBundleSet } from "./bundle.js";
import { CertificateAuthority } from "./ca.js";
import {
  checkPeerTrustDomain,
  createHboneTlsServer,
  HBONE_TLS_CIPHERSUITES,
  type HboneTlsServerOptions,
  hboneClientTlsOptions,
  hboneServerTlsOptions,
  type MtlsIdentity,
  matchesExpectedIdentity,
  peerCertificateIdentity,
  peerIdentity,
  verifyHboneClient,
} from "./node-tls.js";

const SERVER_ID = "spiffe://cluster.local/ns/echo/sa/server";
const CLIENT_ID = "spiffe://cluster.local/ns/default/sa/client";

let mesh: CertificateAuthority;
let meshInter: CertificateAuthority;
let foreign: CertificateAuthority; // trust domain other.org, its own root
let rogue: CertificateAuthority; // also claims cluster.local, not trusted
let bundles: TrustBundleSet;
let serverIdentity: MtlsIdentity;
let clientIdentity: MtlsIdentity;

const toIdentity = (i: { certChainPem: string; privateKeyPem: string }): MtlsIdentity => ({
  certChainPem: i.certChainPem,
  privateKeyPem: i.privateKeyPem,
});

beforeAll(async () => {
  mesh = await CertificateAuthority.createRoot({
    trustDomain: "cluster.local",
    keyAlgorithm: "ec-p256",
  });
  meshInter = await mesh.createIntermediate({ commonName: "istiod" });
  foreign = await CertificateAuthority.createRoot({
    trustDomain: "other.org",
    keyAlgorithm: "ec-p256",
  });
  rogue = await CertificateAuthority.createRoot({
    trustDomain: "cluster.local",
    keyAlgorithm: "ec-p256",
  });
  bundles = new TrustBundleSet([
    TrustBundle.fromPem("cluster.local", mesh.rootCertPem),
    TrustBundle.fromPem("other.org", foreign.rootCertPem),
  ]);
  serverIdentity = toIdentity(await meshInter.issue(SERVER_ID));
  clientIdentity = toIdentity(await meshInter.issue(CLIENT_ID));
});

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

interface Outcome {
  /** Line the server wrote to a verified client, or undefined when the connection was refused. */
  greeting: string | undefined;
  clientError: Error | undefined;
  serverRejects: Error[];
  socket: TLSSocket | undefined;
  servername: string | false | undefined;
}

async function listen(
  options: Partial<HboneTlsServerOptions>,
  rejects: Error[],
  seen: { servername?: string | false },
): Promise<{ server: Server; port: number }> {
  const server = createHboneTlsServer(
    {
      identity: serverIdentity,
      trustBundles: bundles,
      onReject: (e) => rejects.push(e),
      ...options,
    },
    (socket, peer) => {
      seen.servername = (socket as TLSSocket & { servername?: string | false }).servername;
      socket.end(
        `hello ${peer.identity} via ${socket.getProtocol()} ${socket.getCipher().standardName} ${socket.alpnProtocol}\n`,
      );
    },
  );
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const addr = server.address();
  if (addr === null || typeof addr === "string") throw new Error("no port");
  return { server, port: addr.port };
}

async function dial(
  port: number,
  client: { identity: MtlsIdentity; expected: string[]; host?: string },
): Promise<{
  greeting: string | undefined;
  clientError: Error | undefined;
  serverIdentity: string | undefined;
}> {
  return new Promise((resolve) => {
    let data = "";
    let serverId: string | undefined;
    let error: Error | undefined;
    const socket = connect({
      host: client.host ?? "127.0.0.1",
      port,
      ...hboneClientTlsOptions({
        identity: client.identity,
        trustBundles: bundles,
        expectedIdentities: client.expected,
      }),
    });
    socket.setTimeout(5000, () => socket.destroy(new Error("test timeout")));
    socket.on("secureConnect", () => {
      serverId = peerIdentity(socket);
    });
    socket.on("data", (d) => {
      data += d.toString();
    });
    socket.on("error", (e) => {
      error = e;
    });
    socket.on("close", () => {
      resolve({
        greeting: data === "" ? undefined : data.trim(),
        clientError: error,
        serverIdentity: serverId,
      });
    });
  });
}

async function run(
  serverOptions: Partial<HboneTlsServerOptions>,
  client: { identity: MtlsIdentity; expected: string[] },
): Promise<Outcome & { serverIdentity: string | undefined }> {
  const rejects: Error[] = [];
  const seen: { servername?: string | false } = {};
  const { port } = await listen(serverOptions, rejects, seen);
  const r = await dial(port, client);
  // the server side may still be tearing down; give its reject callback a tick
  await new Promise((res) => setTimeout(res, 20));
  return { ...r, serverRejects: rejects, socket: undefined, servername: seen.servername };
}

describe("HBONE mTLS between two Node peers", () => {
  it("accepts the right identities over TLS 1.3, AES-GCM, ALPN h2, without SNI", async () => {
    const r = await run({}, { identity: clientIdentity, expected: [SERVER_ID] });
    expect(r.clientError).toBeUndefined();
    expect(r.serverRejects).toEqual([]);
    expect(r.greeting).toMatch(
      new RegExp(
        `^hello ${CLIENT_ID} via TLSv1.3 (TLS_AES_256_GCM_SHA384|TLS_AES_128_GCM_SHA256) h2$`,
      ),
    );
    expect(HBONE_TLS_CIPHERSUITES.split(":")).toContain(r.greeting?.split(" ")[4]);
    expect(r.serverIdentity).toBe(SERVER_ID);
    expect(r.servername).toBe(false);
  });

  it("rejects a client whose certificate chains to an untrusted root", async () => {
    const impostor = toIdentity(await rogue.issue(CLIENT_ID));
    const r = await run({}, { identity: impostor, expected: [SERVER_ID] });
    expect(r.greeting).toBeUndefined();
    expect(r.serverRejects.map((e) => e.message).join("\n")).toMatch(
      /unable to get local issuer|unknown ca|certificate/i,
    );
  });

  it("rejects a server whose certificate chains to an untrusted root", async () => {
    const r = await run(
      { identity: toIdentity(await rogue.issue(SERVER_ID)) },
      { identity: clientIdentity, expected: [SERVER_ID] },
    );
    expect(r.greeting).toBeUndefined();
    expect(r.clientError?.message).toMatch(
      /unable to get local issuer certificate|self.signed|unable to verify/i,
    );
  });

  it("rejects a client from a foreign trust domain, even one with a trusted bundle", async () => {
    // other.org has a bundle in the set, but the server accepts only its own trust domain: its
    // roots are not even offered to OpenSSL.
    const outsider = toIdentity(await foreign.issue("spiffe://other.org/ns/x/sa/y"));
    const r = await run({}, { identity: outsider, expected: [SERVER_ID] });
    expect(r.greeting).toBeUndefined();
    expect(r.serverRejects).toHaveLength(1);
    expect(r.serverRejects[0]?.message).toMatch(/^client certificate rejected: /);
    // an other.org identity whose chain does verify against the mesh roots is refused by the
    // trust-domain check, with ztunnel's message
    const crossSigned = toIdentity(await meshInter.issue("spiffe://other.org/ns/x/sa/y"));
    const t = await run({}, { identity: crossSigned, expected: [SERVER_ID] });
    expect(t.greeting).toBeUndefined();
    expect(t.serverRejects[0]?.message).toBe(
      "identity verification error: peer did not present the expected trustdomain (cluster.local), got spiffe://other.org/ns/x/sa/y",
    );
    expect(t.serverRejects[0]).toMatchObject({ code: "ERR_IDENTITY_TLS_PEER" });
  });

  it("never trusts 'any root': an other.org ID signed by the cluster.local root is refused", async () => {
    const crossSigned = toIdentity(await meshInter.issue("spiffe://other.org/ns/x/sa/y"));
    const r = await run(
      { acceptedTrustDomains: ["cluster.local", "other.org"] },
      { identity: crossSigned, expected: [SERVER_ID] },
    );
    expect(r.greeting).toBeUndefined();
    expect(r.serverRejects[0]?.message).toContain(
      'does not lead to a root of trust domain "other.org"',
    );
    // while a genuine other.org client is accepted when that trust domain is accepted
    const genuine = toIdentity(await foreign.issue("spiffe://other.org/ns/x/sa/y"));
    const ok = await run(
      { acceptedTrustDomains: ["cluster.local", "other.org"] },
      { identity: genuine, expected: [SERVER_ID] },
    );
    expect(ok.greeting).toMatch(/^hello spiffe:\/\/other.org\/ns\/x\/sa\/y /);
  });

  it("rejects a server that is not the expected SAN", async () => {
    const r = await run(
      {},
      { identity: clientIdentity, expected: ["spiffe://cluster.local/ns/echo/sa/other"] },
    );
    expect(r.greeting).toBeUndefined();
    expect(r.clientError?.message).toBe(
      `identity verification error: peer did not present the expected SAN (spiffe://cluster.local/ns/echo/sa/other), got ${SERVER_ID}`,
    );
  });

  it("an expected entry ending in / accepts any server under it, and no other", async () => {
    const td = await run({}, { identity: clientIdentity, expected: ["spiffe://cluster.local/"] });
    expect(td.greeting).toMatch(/^hello /);
    const ns = await run(
      {},
      { identity: clientIdentity, expected: ["spiffe://cluster.local/ns/echo/"] },
    );
    expect(ns.greeting).toMatch(/^hello /);
    const other = await run(
      {},
      { identity: clientIdentity, expected: ["spiffe://cluster.local/ns/e/"] },
    );
    expect(other.greeting).toBeUndefined();
    expect(other.clientError?.message).toBe(
      `identity verification error: peer did not present the expected SAN (spiffe://cluster.local/ns/e/), got ${SERVER_ID}`,
    );
    expect(() =>
      hboneClientTlsOptions({
        identity: clientIdentity,
        trustBundles: bundles,
        expectedIdentities: ["spiffe://Cluster.Local/"],
      }),
    ).toThrow(/is not a SPIFFE ID prefix/);
  });

  it("rejects expired certificates on either side", async () => {
    const past = new Date(Date.now() - 3 * 24 * 3600_000);
    const oldCa = await CertificateAuthority.createRoot({
      trustDomain: "cluster.local",
      keyAlgorithm: "ec-p256",
      now: () => past,
    });
    // same trust domain, root trusted below; leaves issued "three days ago" for 1 hour
    const expiredServer = toIdentity(await oldCa.issue(SERVER_ID, { ttlMs: 3600_000 }));
    const expiredClient = toIdentity(await oldCa.issue(CLIENT_ID, { ttlMs: 3600_000 }));
    const saved = bundles;
    bundles = new TrustBundleSet([
      TrustBundle.fromPem("cluster.local", mesh.rootCertPem + oldCa.rootCertPem),
    ]);
    try {
      const s = await run(
        { identity: expiredServer },
        { identity: clientIdentity, expected: [SERVER_ID] },
      );
      expect(s.greeting).toBeUndefined();
      expect(s.clientError?.message).toMatch(/certificate has expired/);
      const c = await run({}, { identity: expiredClient, expected: [SERVER_ID] });
      expect(c.greeting).toBeUndefined();
      expect(c.serverRejects.map((e) => e.message).join("\n")).toMatch(
        /certificate has expired|CERT_HAS_EXPIRED/i,
      );
    } finally {
      bundles = saved;
    }
  });

  it("refuses TLS 1.2, non-AES-GCM suites and clients that do not offer ALPN h2", async () => {
    const rejects: Error[] = [];
    const { port } = await listen({}, rejects, {});
    const attempt = (extra: Record<string, unknown>): Promise<string | undefined> =>
      new Promise((resolve) => {
        let data = "";
        const socket = connect({
          host: "127.0.0.1",
          port,
          ...hboneClientTlsOptions({
            identity: clientIdentity,
            trustBundles: bundles,
            expectedIdentities: [SERVER_ID],
          }),
          ...extra,
        });
        socket.on("data", (d) => {
          data += d.toString();
        });
        socket.on("error", () => {});
        socket.on("close", () => resolve(data === "" ? undefined : data));
      });
    expect(
      await attempt({
        minVersion: "TLSv1.2",
        maxVersion: "TLSv1.2",
        ciphers: "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256",
      }),
    ).toBeUndefined();
    expect(await attempt({ ALPNProtocols: ["http/1.1"] })).toBeUndefined();
    // ztunnel offers only the AES-GCM suites: a ChaCha20-only client finds no common suite.
    expect(await attempt({ ciphers: "TLS_CHACHA20_POLY1305_SHA256" })).toBeUndefined();
    await new Promise((r) => setTimeout(r, 20));
    const messages = rejects.map((e) => e.message).join("\n");
    expect(messages).toMatch(/protocol version|unsupported protocol|wrong version/i);
    expect(messages).toMatch(/no application protocol|ALPN h2/i);
    expect(messages).toMatch(/no shared cipher|no suitable|handshake failure/i);
  });

  it("serves a different workload identity per local address on one listener (no SNI)", async () => {
    const a = toIdentity(await meshInter.issue("spiffe://cluster.local/ns/echo/sa/a"));
    const b = toIdentity(await meshInter.issue("spiffe://cluster.local/ns/echo/sa/b"));
    const rejects: Error[] = [];
    const seen = {};
    const byAddress = new Map([
      ["127.0.0.1", a],
      ["127.0.0.2", b],
    ]);
    const { server } = await listen(
      { identity: (local) => byAddress.get(local.address) },
      rejects,
      seen,
    );
    // A second plain listener on 127.0.0.2 hands its sockets to the same HBONE server, standing in
    // for a TPROXY listener that receives connections for several pod IPs.
    const front = createServer((s) => server.emit("connection", s));
    servers.push(front);
    await new Promise<void>((r) => front.listen(0, "127.0.0.2", r));
    const frontPort = (front.address() as { port: number }).port;
    const mainPort = (server.address() as { port: number }).port;
    const viaA = await dial(mainPort, {
      identity: clientIdentity,
      expected: ["spiffe://cluster.local/ns/echo/sa/a"],
    });
    const viaB = await dial(frontPort, {
      identity: clientIdentity,
      expected: ["spiffe://cluster.local/ns/echo/sa/b"],
      host: "127.0.0.2",
    });
    expect(viaA.serverIdentity).toBe("spiffe://cluster.local/ns/echo/sa/a");
    expect(viaA.greeting).toMatch(/^hello spiffe:\/\/cluster.local\/ns\/default\/sa\/client /);
    expect(viaB.serverIdentity).toBe("spiffe://cluster.local/ns/echo/sa/b");
    expect(viaB.greeting).toMatch(/^hello /);
    expect(rejects).toEqual([]);
  });

  it("plugs into http2.createSecureServer / http2.connect (HBONE's transport)", async () => {
    const config = { identity: serverIdentity, trustBundles: bundles };
    const server = createSecureServer(hboneServerTlsOptions(config));
    servers.push(server as unknown as Server);
    const peers: string[] = [];
    server.on("secureConnection", (socket: TLSSocket) => {
      peers.push(verifyHboneClient(socket, config).identity);
    });
    server.on("stream", (stream, headers) => {
      stream.respond({ ":status": 200 });
      stream.end(`${headers[":method"]} ${headers[":authority"]}`);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    const session = http2Connect(`https://127.0.0.1:${port}`, {
      ...hboneClientTlsOptions({
        identity: clientIdentity,
        trustBundles: bundles,
        expectedIdentities: [SERVER_ID],
      }),
    });
    const body = await new Promise<string>((resolve, reject) => {
      session.on("error", reject);
      const req = session.request({ ":method": "CONNECT", ":authority": "10.0.0.1:8080" });
      let text = "";
      req.on("data", (d) => {
        text += d.toString();
      });
      req.on("end", () => resolve(text));
      req.on("error", reject);
      req.end();
    });
    session.close();
    expect(body).toBe("CONNECT 10.0.0.1:8080");
    expect(peers).toEqual([CLIENT_ID]);
  });
});

describe("the SPIFFE rules the adapters (hbone) apply", () => {
  it("matchesExpectedIdentity: exact IDs and `/`-ended prefixes, never lower-cased", () => {
    expect(matchesExpectedIdentity(SERVER_ID, [SERVER_ID])).toBe(true);
    expect(matchesExpectedIdentity(SERVER_ID, ["spiffe://cluster.local/"])).toBe(true);
    expect(matchesExpectedIdentity(SERVER_ID, ["spiffe://cluster.local/ns/echo/"])).toBe(true);
    expect(matchesExpectedIdentity(SERVER_ID, ["spiffe://cluster.local/ns/ec/"])).toBe(false);
    expect(matchesExpectedIdentity(SERVER_ID, ["spiffe://Cluster.Local/"])).toBe(false);
    expect(
      matchesExpectedIdentity("spiffe://Cluster.Local/ns/a/sa/b", ["spiffe://cluster.local/"]),
    ).toBe(false);
  });
  it("checkPeerTrustDomain: the peer's trust domain must be accepted", () => {
    expect(checkPeerTrustDomain(CLIENT_ID, ["cluster.local"])).toBe(CLIENT_ID);
    expect(() => checkPeerTrustDomain(CLIENT_ID, ["other.org"])).toThrow(
      `identity verification error: peer did not present the expected trustdomain (other.org), got ${CLIENT_ID}`,
    );
    expect(() => checkPeerTrustDomain(undefined, ["cluster.local"])).toThrow(
      expect.objectContaining({
        code: "ERR_IDENTITY_TLS_PEER",
        message: expect.stringMatching(/got no valid X509-SVID$/),
      }),
    );
  });
  it("peerCertificateIdentity reads a valid X509-SVID leaf only", () => {
    expect(peerCertificateIdentity(undefined)).toBeUndefined();
    expect(peerCertificateIdentity({ raw: Buffer.from([1, 2, 3]) } as never)).toBeUndefined();
  });
});
