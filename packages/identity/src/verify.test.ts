import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { TrustBundle, TrustBundleSet } from "./bundle.js";
import { CertificateAuthority } from "./ca.js";
import { IdentityError } from "./errors.js";
import { decodePemCertificates, encodePemCertificates } from "./pem.js";
import { parseTrustDomain } from "./spiffe-id.js";
import type { SvidRule } from "./svid.js";
import {
  CA_KU,
  type CertSpec,
  der,
  HOUR,
  KeyUsageFlags,
  makeCert,
  makePki,
  NOW,
  type Pki,
  p256,
  type TestKeys,
} from "./testdata/svid-fixtures.js";
import { verifyX509Svid } from "./verify.js";
import type { X509Certificate } from "./x509-lib.js";

let pki: Pki;
let other: Pki; // a second, unrelated PKI for trust domain "other.example"
let bundle: TrustBundle;
const dir = mkdtempSync(join(tmpdir(), "ambientkit-verify-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

beforeAll(async () => {
  pki = await makePki("cluster.local");
  other = await makePki("other.example");
  bundle = new TrustBundle("cluster.local", { x509Authorities: [pki.root] });
});

async function failure(p: Promise<unknown>): Promise<IdentityError> {
  try {
    await p;
  } catch (error) {
    expect(error).toBeInstanceOf(IdentityError);
    return error as IdentityError;
  }
  throw new Error("expected verification to fail");
}

let fileNo = 0;
/** `openssl verify` as an independent checker: true when openssl accepts the chain at `now`. */
function opensslAccepts(
  chain: X509Certificate[],
  roots: X509Certificate[],
  now: Date = NOW,
): boolean {
  const n = fileNo++;
  const leaf = join(dir, `leaf-${n}.pem`);
  const untrusted = join(dir, `untrusted-${n}.pem`);
  const ca = join(dir, `ca-${n}.pem`);
  writeFileSync(leaf, encodePemCertificates([der(chain[0] as X509Certificate)]));
  writeFileSync(untrusted, encodePemCertificates(chain.slice(1).map(der)));
  writeFileSync(ca, encodePemCertificates(roots.map(der)));
  const args = ["verify", "-attime", String(Math.floor(now.getTime() / 1000)), "-CAfile", ca];
  if (chain.length > 1) args.push("-untrusted", untrusted);
  const r = spawnSync("openssl", [...args, leaf], { encoding: "utf8" });
  return r.status === 0;
}

describe("verifyX509Svid: accepted chains", () => {
  test("leaf + intermediate against the trust domain's root; openssl agrees", async () => {
    const v = await verifyX509Svid([der(pki.leaf), der(pki.intermediate)], bundle, { now: NOW });
    expect(v.id.toString()).toBe("spiffe://cluster.local/ns/default/sa/client");
    expect(v.leaf).toBe(v.chain[0]);
    expect(v.chain.map((c) => c.subject)).toEqual(["", pki.intermediate.subject, pki.root.subject]);
    expect(opensslAccepts([pki.leaf, pki.intermediate], [pki.root])).toBe(true);
  });
  test("Istio's response order (leaf, intermediate, root) and shuffled intermediates", async () => {
    await verifyX509Svid([der(pki.leaf), der(pki.intermediate), der(pki.root)], bundle, {
      now: NOW,
    });
    const v = await verifyX509Svid([pki.leaf, pki.root, pki.intermediate], bundle, { now: NOW });
    expect(v.chain).toHaveLength(3);
  });
  test("leaf signed directly by the root; a bundle with several roots", async () => {
    const leaf = await makeCert({
      ...pki.leafSpec,
      issuer: { cert: pki.root, keys: pki.rootKeys },
    });
    const b = new TrustBundle("cluster.local", { x509Authorities: [other.root, pki.root] });
    expect((await verifyX509Svid([der(leaf)], b, { now: NOW })).chain).toHaveLength(2);
  });
  test("the bundle set picks the leaf's trust domain", async () => {
    const set = new TrustBundleSet([
      new TrustBundle("other.example", { x509Authorities: [other.root] }),
      new TrustBundle("cluster.local", { x509Authorities: [pki.root] }),
    ]);
    expect(
      (
        await verifyX509Svid([der(other.leaf), der(other.intermediate)], set, { now: NOW })
      ).id.toString(),
    ).toBe("spiffe://other.example/ns/default/sa/client");
    expect(
      (await verifyX509Svid([der(pki.leaf), der(pki.intermediate)], set, { now: NOW })).id
        .trustDomain.name,
    ).toBe("cluster.local");
  });
  test("RSA-2048 root and Ed25519 intermediate", async () => {
    const rsa = (await globalThis.crypto.subtle.generateKey(
      {
        name: "RSASSA-PKCS1-v1_5",
        modulusLength: 2048,
        publicExponent: new Uint8Array([1, 0, 1]),
        hash: "SHA-256",
      },
      true,
      ["sign", "verify"],
    )) as TestKeys;
    const ed = (await globalThis.crypto.subtle.generateKey({ name: "Ed25519" }, true, [
      "sign",
      "verify",
    ])) as TestKeys;
    const root = await makeCert({
      subject: "O=cluster.local",
      keys: rsa,
      ca: true,
      keyUsage: CA_KU,
      signingAlgorithm: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" } as never,
    });
    const int = await makeCert({
      ...pki.intSpec,
      issuer: { cert: root, keys: rsa },
      keys: ed,
      signingAlgorithm: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" } as never,
    });
    const leaf = await makeCert({
      ...pki.leafSpec,
      issuer: { cert: int, keys: ed },
      signingAlgorithm: { name: "Ed25519" } as never,
    });
    const b = new TrustBundle("cluster.local", { x509Authorities: [root] });
    expect((await verifyX509Svid([der(leaf), der(int)], b, { now: NOW })).chain).toHaveLength(3);
    expect(opensslAccepts([leaf, int], [root])).toBe(true);
  });
  test("DER given as views into larger buffers (as sockets hand them out)", async () => {
    const leafDer = der(pki.leaf);
    const big = new Uint8Array(leafDer.length + 20).fill(7);
    big.set(leafDer, 13);
    const view = big.subarray(13, 13 + leafDer.length);
    const v = await verifyX509Svid([view, der(pki.intermediate)], bundle, { now: NOW });
    expect(new Uint8Array(v.leaf.rawData)).toEqual(leafDer);
  });
  test.each([
    {
      name: "ECDSA P-256 / SHA-256",
      gen: { name: "ECDSA", namedCurve: "P-256" },
      sign: { name: "ECDSA", hash: "SHA-256" },
    },
    {
      name: "ECDSA P-384 / SHA-384",
      gen: { name: "ECDSA", namedCurve: "P-384" },
      sign: { name: "ECDSA", hash: "SHA-384" },
    },
    {
      name: "ECDSA P-521 / SHA-512",
      gen: { name: "ECDSA", namedCurve: "P-521" },
      sign: { name: "ECDSA", hash: "SHA-512" },
    },
    {
      name: "RSA PKCS#1 v1.5 / SHA-256",
      gen: {
        name: "RSASSA-PKCS1-v1_5",
        modulusLength: 2048,
        publicExponent: new Uint8Array([1, 0, 1]),
        hash: "SHA-256",
      },
      sign: { name: "RSASSA-PKCS1-v1_5" },
    },
    {
      name: "RSA-PSS / SHA-256",
      gen: {
        name: "RSA-PSS",
        modulusLength: 2048,
        publicExponent: new Uint8Array([1, 0, 1]),
        hash: "SHA-256",
      },
      sign: { name: "RSA-PSS", hash: "SHA-256", saltLength: 32 },
    },
    { name: "Ed25519", gen: { name: "Ed25519" }, sign: { name: "Ed25519" } },
  ])(
    "root signing with $name: accepted, and a flipped signature bit is rejected; openssl agrees",
    async ({ gen, sign }) => {
      const keys = (await globalThis.crypto.subtle.generateKey(gen as never, true, [
        "sign",
        "verify",
      ])) as TestKeys;
      const root = await makeCert({
        subject: "O=cluster.local",
        keys,
        ca: true,
        keyUsage: CA_KU,
        signingAlgorithm: sign as never,
      });
      const leaf = await makeCert({
        ...pki.leafSpec,
        issuer: { cert: root, keys },
        signingAlgorithm: sign as never,
      });
      const b = new TrustBundle("cluster.local", { x509Authorities: [root] });
      expect((await verifyX509Svid([der(leaf)], b, { now: NOW })).chain).toHaveLength(2);
      expect(opensslAccepts([leaf], [root])).toBe(true);
      const tampered = der(leaf).slice();
      tampered[tampered.length - 2] = (tampered[tampered.length - 2] as number) ^ 0x01; // inside the signature value
      const e = await failure(verifyX509Svid([tampered], b, { now: NOW }));
      expect(e.rule).toBe("chain-bad-signature");
    },
  );
  test("root rotation that keeps the key: an expired old root listed first does not hide the new one", async () => {
    const oldRoot = await makeCert({
      subject: pki.root.subject,
      keys: pki.rootKeys,
      ca: true,
      keyUsage: CA_KU,
      notBefore: new Date(NOW.getTime() - 100 * HOUR),
      notAfter: new Date(NOW.getTime() - HOUR),
    });
    const b = new TrustBundle("cluster.local", { x509Authorities: [oldRoot, pki.root] });
    const v = await verifyX509Svid([der(pki.leaf), der(pki.intermediate)], b, { now: NOW });
    expect(v.chain.at(-1)).toBe(pki.root);
    // Alone, the old root is reported as expired.
    const onlyOld = new TrustBundle("cluster.local", { x509Authorities: [oldRoot] });
    const e = await failure(
      verifyX509Svid([der(pki.leaf), der(pki.intermediate)], onlyOld, { now: NOW }),
    );
    expect(e.rule).toBe("chain-expired");
  });
  test("a renewed intermediate with the same key: the expired copy presented first is skipped", async () => {
    const expiredInt = await makeCert({ ...pki.intSpec, notAfter: new Date(NOW.getTime() - HOUR) });
    const v = await verifyX509Svid([pki.leaf, expiredInt, pki.intermediate].map(der), bundle, {
      now: NOW,
    });
    expect(v.chain[1]?.notAfter.getTime()).toBe(pki.intermediate.notAfter.getTime());
  });
  test("the clock is injectable: valid inside the window, not outside", async () => {
    const chain = [der(pki.leaf), der(pki.intermediate)];
    await verifyX509Svid(chain, bundle, { now: new Date(NOW.getTime() + 23 * HOUR) });
    expect(
      (await failure(verifyX509Svid(chain, bundle, { now: new Date(NOW.getTime() + 25 * HOUR) })))
        .rule,
    ).toBe("chain-expired");
    expect(
      (await failure(verifyX509Svid(chain, bundle, { now: new Date(NOW.getTime() - 2 * HOUR) })))
        .rule,
    ).toBe("chain-not-yet-valid");
    // Default clock is the real one: the fixtures (2026-06-01) are not valid at an arbitrary far date.
    const farFuture = new Date("2099-01-01T00:00:00Z");
    expect((await failure(verifyX509Svid(chain, bundle, { now: farFuture }))).code).toBe(
      "ERR_IDENTITY_CHAIN_EXPIRED",
    );
  });
});

describe("verifyX509Svid: trust is chosen by the leaf's trust domain, never any root", () => {
  test("no bundle for the leaf's trust domain, even though another bundle has the right root", async () => {
    const wrongTd = new TrustBundle("other.example", { x509Authorities: [pki.root] });
    const e = await failure(
      verifyX509Svid([der(pki.leaf), der(pki.intermediate)], wrongTd, { now: NOW }),
    );
    expect(e.rule).toBe("chain-no-bundle");
    expect(e.code).toBe("ERR_IDENTITY_NO_BUNDLE_FOR_TRUST_DOMAIN");
    expect(e.message).toContain('trust domain "cluster.local"');
    // openssl, which does not know trust domains, accepts it: the trust-domain check is ours.
    expect(opensslAccepts([pki.leaf, pki.intermediate], [pki.root])).toBe(true);
  });
  test("a foreign trust domain's leaf issued by our CA does not pass under its own td's bundle", async () => {
    const foreign = await makeCert({
      ...pki.leafSpec,
      uris: ["spiffe://other.example/ns/default/sa/evil"],
    });
    const set = new TrustBundleSet([
      new TrustBundle("cluster.local", { x509Authorities: [pki.root] }),
      new TrustBundle("other.example", { x509Authorities: [other.root] }),
    ]);
    const e = await failure(
      verifyX509Svid([der(foreign), der(pki.intermediate)], set, { now: NOW }),
    );
    expect(e.rule).toBe("chain-untrusted");
  });
  test("an empty bundle (all authorities revoked) trusts nothing", async () => {
    const empty = new TrustBundle("cluster.local");
    expect(
      (await failure(verifyX509Svid([der(pki.leaf), der(pki.intermediate)], empty, { now: NOW })))
        .rule,
    ).toBe("chain-untrusted");
  });
});

type ChainCase = {
  name: string;
  build: () => Promise<{ chain: X509Certificate[]; roots?: X509Certificate[] }>;
  rule: SvidRule;
  /** openssl's verdict is compared where it checks the same thing. */
  openssl?: boolean;
};

const CHAIN_CASES: ChainCase[] = [
  {
    name: "missing intermediate",
    build: async () => ({ chain: [pki.leaf] }),
    rule: "chain-untrusted",
    openssl: false,
  },
  {
    name: "untrusted root with a different name",
    build: async () => ({ chain: [pki.leaf, pki.intermediate], roots: [other.root] }),
    rule: "chain-untrusted",
    openssl: false,
  },
  {
    name: "impostor root: same name, other key",
    build: async () => {
      const impostor = await makeCert({
        subject: pki.root.subject,
        keys: other.rootKeys,
        ca: true,
        keyUsage: CA_KU,
      });
      return { chain: [pki.leaf, pki.intermediate], roots: [impostor] };
    },
    rule: "chain-bad-signature",
    openssl: false,
  },
  {
    name: "leaf signed by the wrong key",
    build: async () => ({
      chain: [
        await makeCert({ ...pki.leafSpec, signWith: other.intKeys.privateKey }),
        pki.intermediate,
      ],
    }),
    rule: "chain-bad-signature",
    openssl: false,
  },
  {
    name: "intermediate signed by the wrong key",
    build: async () => ({
      chain: [pki.leaf, await makeCert({ ...pki.intSpec, signWith: other.rootKeys.privateKey })],
    }),
    rule: "chain-bad-signature",
    openssl: false,
  },
  {
    name: "expired leaf",
    build: async () => ({
      chain: [
        await makeCert({ ...pki.leafSpec, notAfter: new Date(NOW.getTime() - 1000) }),
        pki.intermediate,
      ],
    }),
    rule: "chain-expired",
    openssl: false,
  },
  {
    name: "leaf not yet valid",
    build: async () => ({
      chain: [
        await makeCert({ ...pki.leafSpec, notBefore: new Date(NOW.getTime() + 1000) }),
        pki.intermediate,
      ],
    }),
    rule: "chain-not-yet-valid",
    openssl: false,
  },
  {
    name: "expired intermediate",
    build: async () => ({
      chain: [
        pki.leaf,
        await makeCert({ ...pki.intSpec, notAfter: new Date(NOW.getTime() - 1000) }),
      ],
    }),
    rule: "chain-expired",
    openssl: false,
  },
  {
    name: "expired root",
    build: async () => {
      const root = await makeCert({
        subject: pki.root.subject,
        keys: pki.rootKeys,
        ca: true,
        keyUsage: CA_KU,
        notBefore: new Date(NOW.getTime() - 10 * HOUR),
        notAfter: new Date(NOW.getTime() - HOUR),
      });
      return { chain: [pki.leaf, pki.intermediate], roots: [root] };
    },
    rule: "chain-expired",
    openssl: false,
  },
  {
    name: "intermediate CA:false",
    build: async () => ({ chain: [pki.leaf, await makeCert({ ...pki.intSpec, ca: false })] }),
    rule: "signing-not-ca",
    openssl: false,
  },
  {
    name: "intermediate without keyCertSign",
    build: async () => ({
      chain: [pki.leaf, await makeCert({ ...pki.intSpec, keyUsage: KeyUsageFlags.cRLSign })],
    }),
    rule: "signing-key-cert-sign-missing",
    openssl: false,
  },
  {
    name: "root without basic constraints",
    build: async () => {
      const root = await makeCert({
        subject: pki.root.subject,
        keys: pki.rootKeys,
        ca: null,
        keyUsage: CA_KU,
      });
      return { chain: [pki.leaf, pki.intermediate], roots: [root] };
    },
    rule: "signing-not-ca",
  },
  {
    name: "root pathLen 0 above an intermediate",
    build: async () => {
      const root = await makeCert({
        subject: pki.root.subject,
        keys: pki.rootKeys,
        ca: true,
        pathLength: 0,
        keyUsage: CA_KU,
      });
      return { chain: [pki.leaf, pki.intermediate], roots: [root] };
    },
    rule: "chain-path-length",
    openssl: false,
  },
  {
    name: "intermediate pathLen 0 above another intermediate",
    build: async () => {
      const int1 = await makeCert({ ...pki.intSpec, pathLength: 0 });
      const keys2 = await p256();
      const int2 = await makeCert({
        ...pki.intSpec,
        subject: "O=cluster.local, CN=second",
        issuer: { cert: int1, keys: pki.intKeys },
        keys: keys2,
      });
      const leaf = await makeCert({ ...pki.leafSpec, issuer: { cert: int2, keys: keys2 } });
      return { chain: [leaf, int2, int1] };
    },
    rule: "chain-path-length",
    openssl: false,
  },
  {
    name: "leaf with CA:true (would otherwise chain fine)",
    build: async () => ({
      chain: [await makeCert({ ...pki.leafSpec, ca: true, keyUsage: CA_KU | 1 }), pki.intermediate],
    }),
    rule: "leaf-ca",
  },
];

describe("verifyX509Svid: rejected chains (typed error per rule; openssl as a second opinion)", () => {
  test.each(CHAIN_CASES)("$name → $rule", async ({ build, rule, openssl }) => {
    const { chain, roots = [pki.root] } = await build();
    const b = new TrustBundle("cluster.local", { x509Authorities: roots });
    const e = await failure(verifyX509Svid(chain.map(der), b, { now: NOW }));
    expect(e.rule).toBe(rule);
    if (openssl !== undefined) expect(opensslAccepts(chain, roots)).toBe(openssl);
  });

  test("empty chain, garbage DER, too many intermediates", async () => {
    expect((await failure(verifyX509Svid([], bundle))).rule).toBe("chain-empty");
    expect((await failure(verifyX509Svid([new Uint8Array([1, 2, 3])], bundle))).rule).toBe(
      "certificate-parse",
    );
    // a chain of 3 intermediates with maxIntermediates 2
    let issuer = { cert: pki.root, keys: pki.rootKeys };
    const ints: X509Certificate[] = [];
    for (let i = 0; i < 3; i++) {
      const keys = await p256();
      const cert = await makeCert({
        ...pki.intSpec,
        subject: `O=cluster.local, CN=i${i}`,
        issuer,
        keys,
      });
      ints.unshift(cert);
      issuer = { cert, keys };
    }
    const leaf = await makeCert({ ...pki.leafSpec, issuer } satisfies CertSpec);
    const chain = [leaf, ...ints].map(der);
    expect((await verifyX509Svid(chain, bundle, { now: NOW })).chain).toHaveLength(5);
    expect(
      (await failure(verifyX509Svid(chain, bundle, { now: NOW, maxIntermediates: 2 }))).rule,
    ).toBe("chain-too-long");
  });

  test("a flood of same-named intermediates is cut off after 100 signature checks", async () => {
    const decoys: X509Certificate[] = [];
    for (let i = 0; i < 110; i++)
      decoys.push(await makeCert({ ...pki.intSpec, keys: other.intKeys }));
    const chain = [pki.leaf, ...decoys, pki.intermediate].map(der);
    const e = await failure(verifyX509Svid(chain, bundle, { now: NOW }));
    expect(e.rule).toBe("chain-too-long");
    expect(e.message).toContain("100 signature checks");
    // With a few decoys the real intermediate is still found.
    await verifyX509Svid([pki.leaf, ...decoys.slice(0, 5), pki.intermediate].map(der), bundle, {
      now: NOW,
    });
  });

  test("strict mode applies to the path", async () => {
    const leaf = await makeCert({ ...pki.leafSpec, keyUsageCritical: false });
    await verifyX509Svid([der(leaf), der(pki.intermediate)], bundle, { now: NOW });
    const e = await failure(
      verifyX509Svid([der(leaf), der(pki.intermediate)], bundle, { now: NOW, strict: true }),
    );
    expect(e.rule).toBe("strict-key-usage-not-critical");
  });

  test("trust domain objects from parseTrustDomain work as bundle keys", () => {
    expect(bundle.getX509Authorities(parseTrustDomain("cluster.local"))).toHaveLength(1);
    expect(bundle.getX509Authorities(parseTrustDomain("other.example"))).toBeUndefined();
  });
});

describe("chains issued by this package's CA verify (strict)", () => {
  test("Istio shape: RSA-2048 root (istiod default), P-256 intermediate and leaf", async () => {
    const root = await CertificateAuthority.createRoot({ trustDomain: "cluster.local" });
    const ca = await root.createIntermediate({ keyAlgorithm: "ec-p256" });
    const issued = await ca.issue("spiffe://cluster.local/ns/default/sa/sleep");
    const b = TrustBundle.fromPem("cluster.local", issued.rootCertPem);
    const v = await verifyX509Svid(decodePemCertificates(issued.certChainPem), b, { strict: true });
    expect(v.id.toString()).toBe("spiffe://cluster.local/ns/default/sa/sleep");
    expect(v.chain).toHaveLength(3);
    // The whole CreateCertificate response (leaf, intermediate, root) verifies too.
    const response = issued.chain.flatMap((pem) => decodePemCertificates(pem));
    expect((await verifyX509Svid(response, b, { strict: true })).chain).toHaveLength(3);
  });

  test("a root of the same name but another key (key identifiers differ) is not trusted", async () => {
    const root = await CertificateAuthority.createRoot({
      trustDomain: "cluster.local",
      keyAlgorithm: "ec-p256",
    });
    const impostor = await CertificateAuthority.createRoot({
      trustDomain: "cluster.local",
      keyAlgorithm: "ec-p256",
    });
    const issued = await root.issue("spiffe://cluster.local/ns/default/sa/sleep");
    const good = TrustBundle.fromPem("cluster.local", issued.rootCertPem);
    const bad = TrustBundle.fromPem("cluster.local", impostor.rootCertPem);
    const chain = decodePemCertificates(issued.certChainPem);
    await verifyX509Svid(chain, good);
    expect((await failure(verifyX509Svid(chain, bad))).rule).toBe("chain-untrusted");
    // Both roots in one bundle: the right one is found whatever the order.
    const both = new TrustBundle("cluster.local", {
      x509Authorities: [...bad.x509Authorities, ...good.x509Authorities],
    });
    expect((await verifyX509Svid(chain, both)).chain.at(-1)).toBe(good.x509Authorities[0]);
  });
});
