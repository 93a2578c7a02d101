// The test CA of @ambientkit/identity/testing: its SVIDs verify against its bundles and carry a
// real mutual TLS 1.3 handshake with the HBONE settings.
import { connect } from "node:tls";
import { describe, expect, it } from "vitest";
import { createHboneTlsServer, hboneClientTlsOptions } from "./node-tls.js";
import { decodePemCertificates } from "./pem.js";
import { createTestCa } from "./testing.js";
import { verifyX509Svid } from "./verify.js";

describe("createTestCa", () => {
  it("issues SVIDs of its trust domain that verify against its bundles", async () => {
    const mesh = await createTestCa({ trustDomain: "example.org" });
    expect(mesh.trustDomain).toBe("example.org");
    expect(mesh.ca.keyAlgorithm).toBe("ec-p256");
    const svid = await mesh.issue("shop/cart");
    expect(svid.identity).toBe("spiffe://example.org/ns/shop/sa/cart");
    expect(svid.mtls).toEqual({
      certChainPem: svid.certChainPem,
      privateKeyPem: svid.privateKeyPem,
    });
    expect(svid.credentials).toEqual({
      cert: svid.certChainPem,
      key: svid.privateKeyPem,
      ca: mesh.rootCertPem,
    });
    const verified = await verifyX509Svid(
      decodePemCertificates(svid.certChainPem),
      mesh.trustBundles,
    );
    expect(verified.id.toString()).toBe(svid.identity);
    const full = await mesh.issue("spiffe://example.org/custom/path");
    expect(full.identity).toBe("spiffe://example.org/custom/path");
    await expect(mesh.issue("just-a-name")).rejects.toThrow(TypeError);
  });

  it("its SVIDs and bundles carry an HBONE mutual TLS handshake", async () => {
    const mesh = await createTestCa();
    const [server, client] = await Promise.all([
      mesh.issue("echo/server"),
      mesh.issue("default/client"),
    ]);
    const peers: string[] = [];
    const listener = createHboneTlsServer(
      { identity: server.mtls, trustBundles: mesh.trustBundles },
      (socket, peer) => {
        peers.push(peer.identity);
        socket.end("ok");
      },
    );
    await new Promise<void>((r) => listener.listen(0, "127.0.0.1", r));
    const port = (listener.address() as { port: number }).port;
    const got = await new Promise<string>((resolve, reject) => {
      const s = connect({
        host: "127.0.0.1",
        port,
        ...hboneClientTlsOptions({
          identity: client.mtls,
          trustBundles: mesh.trustBundles,
          expectedIdentities: [server.identity],
        }),
      });
      let text = "";
      s.on("data", (d: Buffer) => {
        text += d.toString();
      });
      s.on("end", () => resolve(text));
      s.on("error", reject);
    });
    await new Promise((r) => listener.close(r));
    expect(got).toBe("ok");
    expect(peers).toEqual([client.identity]);
  });
});
