import { describe, expect, it } from "vitest";
import { runWalkthrough } from "./identity-walkthrough.js";

describe("identity walkthrough (npm start)", () => {
  it("creates a CA, issues and verifies an SVID, and completes an HBONE-style mTLS handshake", async () => {
    const lines: string[] = [];
    const r = await runWalkthrough((l) => lines.push(l));
    expect(r.chainLength).toBe(2);
    expect(r.verifiedIdentity).toBe("spiffe://cluster.local/ns/default/sa/sleep");
    // same subject O=cluster.local, different key: the signature check is what fails
    expect(r.foreignBundleRejected).toMatch(/^ERR_IDENTITY_CHAIN_(BAD_SIGNATURE|UNTRUSTED)$/);
    expect(r.tls).toMatchObject({
      protocol: "TLSv1.3",
      alpn: "h2",
      serverSawClient: r.clientIdentity,
      clientSawServer: r.serverIdentity,
    });
    expect(["TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256"]).toContain(r.tls.cipher);
    expect(lines.map((l) => l.slice(0, 3))).toEqual(["1. ", "2. ", "3. ", "   ", "4. "]);
    expect(lines[1]).toContain("chain of 2 (leaf … root)");
  });
});
