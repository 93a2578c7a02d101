// Mutation tests: start from valid SPIFFE IDs and a valid X509-SVID chain, flip one rule at a
// time in many variants, and assert that not a single malformed input is accepted — and that
// each is rejected for the rule that was flipped.
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, test } from "vitest";
import { TrustBundle, TrustBundleSet } from "./bundle.js";
import { IdentityError } from "./errors.js";
import { checkSpiffeId, parseSpiffeId } from "./spiffe-id.js";
import type { SvidRule } from "./svid.js";
import {
  CA_KU,
  type CertSpec,
  der,
  ExtendedKeyUsage,
  Extension,
  HOUR,
  KeyUsageFlags,
  LEAF_KU,
  makeCert,
  makePki,
  NOW,
  type Pki,
} from "./testdata/svid-fixtures.js";
import { verifyX509Svid } from "./verify.js";
import { BasicConstraintsExtension, type X509Certificate } from "./x509-lib.js";

const vectors = JSON.parse(
  readFileSync(new URL("./testdata/spiffe-ids.json", import.meta.url), "utf8"),
) as {
  valid: { id: string }[];
  invalid: { id: string }[];
};

const TD_BAD_CHARS = [":", "@", "%", "?", "#", " ", "~", "[", "A", "Z", "é", "+", "!", "\\", "*"];

describe("SPIFFE ID mutations", () => {
  const bases = vectors.valid.map((v) => v.id).filter((id) => id.length > "spiffe://".length + 1);
  const mutants = new Map<string, string>(); // id → mutation name

  const valid = new Set(vectors.valid.map((v) => v.id));
  function add(id: string, how: string): void {
    // A mutation that changes nothing (uppercasing ':' or '/') is not a mutant.
    if (!valid.has(id) && !mutants.has(id)) mutants.set(id, how);
  }

  for (const base of bases) {
    const tdStart = "spiffe://".length;
    const slash = base.indexOf("/", tdStart);
    const tdEnd = slash < 0 ? base.length : slash;
    // 1. every character of the scheme replaced, uppercased or dropped
    for (let i = 0; i < tdStart; i++) {
      add(base.slice(0, i) + base.slice(i + 1), "scheme char dropped");
      add(base.slice(0, i) + base[i]?.toUpperCase() + base.slice(i + 1), "scheme uppercased");
      add(`${base.slice(0, i)}x${base.slice(i + 1)}`, "scheme char replaced");
    }
    // 2. forbidden characters inserted at every position of the trust domain
    for (let i = tdStart; i <= tdEnd; i++) {
      for (const c of TD_BAD_CHARS) {
        if (i === tdEnd && (c === "?" || c === "#")) continue; // still a trust domain char position
        add(base.slice(0, i) + c + base.slice(i), `trust domain char ${JSON.stringify(c)}`);
      }
      add(`${base.slice(0, i)}:8080${base.slice(i)}`, "port");
    }
    // 3. forbidden characters at every position of the path, and segment rules
    if (slash >= 0) {
      for (let i = slash + 1; i <= base.length; i++) {
        for (const c of ["%", "?", "#", " ", ":", "@", "~", "é", "+", "=", "\n"]) {
          add(base.slice(0, i) + c + base.slice(i), `path char ${JSON.stringify(c)}`);
        }
      }
      const segs = base.slice(slash + 1).split("/");
      for (let s = 0; s <= segs.length; s++) {
        for (const bad of ["", ".", ".."]) {
          const copy = [...segs];
          copy.splice(s, 0, bad);
          add(`${base.slice(0, slash)}/${copy.join("/")}`, `segment ${JSON.stringify(bad)}`);
        }
      }
      add(`${base}/`, "trailing slash");
    }
    // 4. too long
    add(`${base}/${"x".repeat(2048)}`, "too long");
    add(`spiffe://${"a".repeat(256)}${base.slice(tdEnd)}`, "trust domain too long");
    add(`spiffe://${base.slice(tdEnd)}`, "missing trust domain");
  }
  for (const v of vectors.invalid) add(v.id, "vector");

  test("builds at least 1,000 distinct malformed IDs", () => {
    expect(mutants.size).toBeGreaterThanOrEqual(1000);
  });

  test("accepts none of them, and every rejection carries a SPIFFE code and rule", () => {
    const accepted: string[] = [];
    for (const [id, how] of mutants) {
      const err = checkSpiffeId(id);
      if (err === undefined) {
        accepted.push(`${how}: ${JSON.stringify(id)}`);
        continue;
      }
      expect(err.code).toMatch(/^ERR_IDENTITY_SPIFFE_/);
      expect(err.rule).toBeTruthy();
    }
    expect(accepted).toEqual([]);
  });

  test("the unmutated bases are accepted (the test can fail)", () => {
    for (const base of bases) expect(parseSpiffeId(base).toString()).toBe(base);
  });
});

describe("X509-SVID mutations", () => {
  let pki: Pki;
  let other: Pki;
  let bundles: TrustBundleSet;
  beforeAll(async () => {
    pki = await makePki("cluster.local");
    other = await makePki("other.example");
    bundles = new TrustBundleSet([
      new TrustBundle("cluster.local", { x509Authorities: [pki.root] }),
      new TrustBundle("other.example", { x509Authorities: [other.root] }),
    ]);
  });

  const invalidIds = vectors.invalid.map((v) => v.id).filter((id) => id !== "");

  /** One mutation kind: builds the i-th variant of a chain that breaks exactly `rule`. */
  type Mutation = { rule: SvidRule; build: (i: number) => Promise<X509Certificate[]> };
  const leaf = (i: number, spec: Partial<CertSpec>) =>
    makeCert({ ...pki.leafSpec, uris: [`spiffe://cluster.local/ns/n${i}/sa/s${i}`], ...spec });
  const withInt = async (i: number, spec: Partial<CertSpec>) => [
    await leaf(i, spec),
    pki.intermediate,
  ];
  const badInt = async (i: number, spec: Partial<CertSpec>) => {
    const int = await makeCert({
      ...pki.intSpec,
      subject: `O=cluster.local, CN=int-${i}`,
      ...spec,
    });
    return [await leaf(i, { issuer: { cert: int, keys: pki.intKeys } }), int];
  };
  const nonLeafBits = [
    KeyUsageFlags.keyEncipherment,
    KeyUsageFlags.keyAgreement,
    KeyUsageFlags.nonRepudiation,
    KeyUsageFlags.dataEncipherment,
    KeyUsageFlags.keyEncipherment | KeyUsageFlags.keyAgreement,
  ];

  const MUTATIONS: Record<string, Mutation> = {
    "no URI SAN": {
      rule: "leaf-uri-san-missing",
      build: (i) => withInt(i, { uris: [], dns: [`n${i}.example`] }),
    },
    "two URI SANs": {
      rule: "leaf-uri-san-multiple",
      build: (i) =>
        withInt(i, {
          uris: [`spiffe://cluster.local/ns/a/sa/${i}`, `spiffe://cluster.local/ns/b/sa/${i}`],
        }),
    },
    "invalid SPIFFE ID": {
      rule: "leaf-spiffe-id-invalid",
      build: (i) => withInt(i, { uris: [invalidIds[i % invalidIds.length] as string] }),
    },
    "root SPIFFE ID": {
      rule: "leaf-spiffe-id-root-path",
      build: (i) => withInt(i, { uris: ["spiffe://cluster.local"], serial: `7${i}` }),
    },
    "leaf CA:true": { rule: "leaf-ca", build: (i) => withInt(i, { ca: true }) },
    "no key usage": {
      rule: "leaf-digital-signature-missing",
      build: (i) => withInt(i, { keyUsage: null }),
    },
    "no digitalSignature": {
      rule: "leaf-digital-signature-missing",
      build: (i) => withInt(i, { keyUsage: nonLeafBits[i % nonLeafBits.length] as number }),
    },
    keyCertSign: {
      rule: "leaf-key-cert-sign",
      build: (i) => withInt(i, { keyUsage: LEAF_KU | KeyUsageFlags.keyCertSign }),
    },
    cRLSign: {
      rule: "leaf-crl-sign",
      build: (i) => withInt(i, { keyUsage: LEAF_KU | KeyUsageFlags.cRLSign }),
    },
    "EKU incomplete": {
      rule: "leaf-eku-incomplete",
      build: (i) =>
        withInt(i, {
          eku: [
            [ExtendedKeyUsage.serverAuth],
            [ExtendedKeyUsage.clientAuth],
            [ExtendedKeyUsage.codeSigning],
          ][i % 3] as string[],
        }),
    },
    "unknown critical extension": {
      rule: "unhandled-critical-extension",
      build: (i) =>
        withInt(i, {
          extra: [new Extension(`1.3.6.1.4.1.55555.${i}`, true, new Uint8Array([5, 0]))],
        }),
    },
    "duplicate extension": {
      rule: "duplicate-extension",
      build: (i) => withInt(i, { extra: [new BasicConstraintsExtension(false, undefined, true)] }),
    },
    "expired leaf": {
      rule: "chain-expired",
      build: (i) => withInt(i, { notAfter: new Date(NOW.getTime() - 1000 * (i + 1)) }),
    },
    "leaf not yet valid": {
      rule: "chain-not-yet-valid",
      build: (i) => withInt(i, { notBefore: new Date(NOW.getTime() + 1000 * (i + 1)) }),
    },
    "leaf signed by another key": {
      rule: "chain-bad-signature",
      build: (i) => withInt(i, { signWith: other.intKeys.privateKey }),
    },
    "leaf of a trust domain without bundle": {
      rule: "chain-no-bundle",
      build: (i) => withInt(i, { uris: [`spiffe://td${i}.example/ns/a/sa/b`] }),
    },
    "leaf of another trust domain, our CA": {
      rule: "chain-untrusted",
      build: (i) => withInt(i, { uris: [`spiffe://other.example/ns/a/sa/${i}`] }),
    },
    "intermediate missing": { rule: "chain-untrusted", build: async (i) => [await leaf(i, {})] },
    "intermediate CA:false": { rule: "signing-not-ca", build: (i) => badInt(i, { ca: false }) },
    "intermediate without basic constraints": {
      rule: "signing-not-ca",
      build: (i) => badInt(i, { ca: null }),
    },
    "intermediate without keyCertSign": {
      rule: "signing-key-cert-sign-missing",
      build: (i) =>
        badInt(i, {
          keyUsage: KeyUsageFlags.cRLSign | (i % 2 ? KeyUsageFlags.digitalSignature : 0),
        }),
    },
    "intermediate expired": {
      rule: "chain-expired",
      build: (i) => badInt(i, { notAfter: new Date(NOW.getTime() - HOUR - i) }),
    },
    "intermediate signed by another key": {
      rule: "chain-bad-signature",
      build: (i) => badInt(i, { signWith: other.rootKeys.privateKey }),
    },
    "intermediate with a critical unknown extension": {
      rule: "unhandled-critical-extension",
      build: (i) =>
        badInt(i, {
          extra: [new Extension(`1.3.6.1.4.1.55556.${i}`, true, new Uint8Array([5, 0]))],
        }),
    },
  };

  const VARIANTS = 44; // 24 kinds × 44 variants = 1,056 malformed chains

  test(`rejects every one of ${Object.keys(MUTATIONS).length * VARIANTS} malformed chains, each for the flipped rule`, async () => {
    // Sanity: the unmutated chain is accepted, so a rejection below means something.
    await verifyX509Svid([der(pki.leaf), der(pki.intermediate)], bundles, { now: NOW });
    const accepted: string[] = [];
    const wrongRule: string[] = [];
    let total = 0;
    for (const [name, m] of Object.entries(MUTATIONS)) {
      for (let i = 0; i < VARIANTS; i++) {
        const chain = await m.build(i);
        total++;
        try {
          await verifyX509Svid(chain.map(der), bundles, { now: NOW });
          accepted.push(`${name} #${i}`);
        } catch (error) {
          if (!(error instanceof IdentityError)) throw error;
          if (error.rule !== m.rule)
            wrongRule.push(`${name} #${i}: ${error.rule} (${error.message})`);
        }
      }
    }
    expect(total).toBeGreaterThanOrEqual(1000);
    expect(accepted).toEqual([]);
    expect(wrongRule).toEqual([]);
    expect(CA_KU).toBeGreaterThan(0);
  }, 60_000);
});
