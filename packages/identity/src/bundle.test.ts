import { beforeAll, describe, expect, test } from "vitest";
import { TrustBundle, TrustBundleSet } from "./bundle.js";
import { IdentityError } from "./errors.js";
import { base64Encode, encodePemCertificates } from "./pem.js";
import { parseTrustDomain } from "./spiffe-id.js";
import { der, makePki, NOW, type Pki } from "./testdata/svid-fixtures.js";
import { verifyX509Svid } from "./verify.js";

let pki: Pki;
let other: Pki;
let rootB64: string;
beforeAll(async () => {
  pki = await makePki("cluster.local");
  other = await makePki("other.example");
  rootB64 = base64Encode(der(pki.root));
});

function bundleError(f: () => unknown): string {
  try {
    f();
  } catch (error) {
    expect(error).toBeInstanceOf(IdentityError);
    expect((error as IdentityError).code).toBe("ERR_IDENTITY_BUNDLE");
    return (error as IdentityError).message;
  }
  throw new Error("expected ERR_IDENTITY_BUNDLE");
}

describe("SPIFFE bundle (JWKS)", () => {
  test("parses the spec's shape: sequence, refresh hint, one x509-svid key", () => {
    const json = `{"spiffe_sequence":1,"spiffe_refresh_hint":2419200,"keys":[{"kty":"EC","use":"x509-svid","crv":"P-256","x":"x","y":"y","x5c":["${rootB64}"]}]}`;
    const b = TrustBundle.parseJson("cluster.local", json);
    expect(b.trustDomain.name).toBe("cluster.local");
    expect(b.sequence).toBe(1n);
    expect(b.refreshHintSeconds).toBe(2419200);
    expect(b.x509Authorities.map(der)).toEqual([der(pki.root)]);
    expect(b.hasX509Authority(pki.root)).toBe(true);
    expect(b.hasX509Authority(other.root)).toBe(false);
  });

  test("keeps 64-bit sequence numbers exactly (parse and marshal)", async () => {
    const seq = "18446744073709551615";
    const b = TrustBundle.parseJson("td", `{"spiffe_sequence":${seq},"keys":[]}`);
    expect(b.sequence).toBe(18446744073709551615n);
    expect(await b.toJson()).toBe(`{"spiffe_sequence":${seq},"keys":[]}`);
  });

  test("marshal → parse round trip, with key parameters from the certificate", async () => {
    const b = new TrustBundle("cluster.local", {
      x509Authorities: [pki.root, other.root],
      jwtAuthorities: [{ keyId: "k1", jwk: { kty: "EC", crv: "P-256", x: "a", y: "b" } }],
      sequence: 7n,
      refreshHintSeconds: 300,
    });
    const json = await b.toJson();
    const plain = JSON.parse(json) as { keys: Record<string, unknown>[] };
    expect(plain.keys[0]).toMatchObject({
      use: "x509-svid",
      kty: "EC",
      crv: "P-256",
      x5c: [rootB64],
    });
    expect(plain.keys[0]).not.toHaveProperty("kid");
    expect(typeof plain.keys[0]?.x).toBe("string");
    expect(plain.keys[2]).toMatchObject({ use: "jwt-svid", kid: "k1" });
    const back = TrustBundle.parseJson("cluster.local", json);
    expect(back.x509Authorities.map(der)).toEqual([der(pki.root), der(other.root)]);
    expect(back.jwtAuthorities).toEqual([
      { keyId: "k1", jwk: { kty: "EC", crv: "P-256", x: "a", y: "b", kid: "k1", use: "jwt-svid" } },
    ]);
    expect(back.sequence).toBe(7n);
    expect(back.refreshHintSeconds).toBe(300);
  });

  test("ignores entries with unknown use, missing use or unknown kty", () => {
    const json = JSON.stringify({
      keys: [
        { kty: "EC", use: "x509-svid", x5c: [rootB64] },
        { kty: "EC", use: "wit-svid", x5c: ["!!"] },
        { kty: "EC", x5c: ["!!"] },
        { kty: "oct", use: "x509-svid", x5c: [] },
        { kty: "EC", use: "X509-SVID", x5c: ["!!"] },
      ],
      unknown_top_level: { ok: true },
    });
    expect(TrustBundle.parseJson("td", json).x509Authorities).toHaveLength(1);
  });

  test.each([
    ["not JSON", "unable to parse JWKS"],
    ["[]", "must be a JSON object"],
    ["{}", "no authorities found"],
    ['{"keys":null}', "no authorities found"],
    ['{"keys":{}}', '"keys" must be an array'],
    ['{"keys":[{"use":"x509-svid","x5c":["AAAA"]}]}', 'no "kty"'],
    [
      '{"keys":[{"kty":"EC","use":"x509-svid"}]}',
      "expected a single certificate in x509-svid entry 0; got 0",
    ],
    [
      '{"keys":[{"kty":"EC","use":"x509-svid","x5c":[]}]}',
      "expected a single certificate in x509-svid entry 0; got 0",
    ],
    [
      '{"keys":[{"kty":"EC","use":"x509-svid","x5c":["ROOT","ROOT"]}]}',
      "expected a single certificate in x509-svid entry 0; got 2",
    ],
    [
      '{"keys":[{"kty":"EC","use":"x509-svid","x5c":["AAAA"]}]}',
      "error adding authority 0 of JWKS",
    ],
    [
      '{"keys":[{"kty":"EC","use":"x509-svid","x5c":["not base64!"]}]}',
      "error adding authority 0 of JWKS",
    ],
    ['{"keys":[{"kty":"EC","use":"jwt-svid","crv":"P-256"}]}', "keyID cannot be empty"],
    ['{"keys":[],"keys":[]}', 'duplicate JSON key "keys"'],
    ['{"keys":[{"kty":"EC","kty":"RSA","use":"jwt-svid","kid":"a"}]}', 'duplicate JSON key "kty"'],
    ['{"spiffe_sequence":"1","keys":[]}', "spiffe_sequence must be an integer"],
    ['{"spiffe_sequence":1.5,"keys":[]}', "spiffe_sequence must be an integer"],
    ['{"spiffe_refresh_hint":true,"keys":[]}', "spiffe_refresh_hint must be an integer"],
    ['{"keys":[]} x', "unexpected trailing data"],
    ['{"keys":[],}', "expected a member name"],
  ])("rejects %s", (json, message) => {
    expect(
      bundleError(() => TrustBundle.parseJson("td", json.replaceAll("ROOT", rootB64))),
    ).toContain(message);
  });

  test("PEM roots are a bundle too", async () => {
    const b = TrustBundle.fromPem("cluster.local", encodePemCertificates([der(pki.root)]));
    expect(b.toPem()).toBe(encodePemCertificates([der(pki.root)]));
    await verifyX509Svid([der(pki.leaf), der(pki.intermediate)], b, { now: NOW });
    expect(() => TrustBundle.fromPem("cluster.local", "junk")).toThrow(IdentityError);
  });
});

describe("bundle map (trust_domains)", () => {
  const entry = (b64: string) => `{"keys":[{"kty":"EC","use":"x509-svid","x5c":["${b64}"]}]}`;

  test("parses several trust domains and verifies each leaf against its own", async () => {
    const text = `{"trust_domains":{"cluster.local":${entry(rootB64)},"other.example":${entry(base64Encode(der(other.root)))}}}`;
    const set = TrustBundleSet.parseJson(text);
    expect(set.trustDomains.map(String)).toEqual(["cluster.local", "other.example"]);
    expect(set.size).toBe(2);
    expect(set.get("other.example")?.x509Authorities).toHaveLength(1);
    await verifyX509Svid([der(other.leaf), der(other.intermediate)], set, { now: NOW });
    await verifyX509Svid([der(pki.leaf), der(pki.intermediate)], set, { now: NOW });
    const round = TrustBundleSet.parseJson(await set.toJson());
    expect([...round].map((b) => b.trustDomain.name)).toEqual(["cluster.local", "other.example"]);
  });

  test("rejects duplicate trust-domain keys that JSON.parse would silently merge", () => {
    const text = `{"trust_domains":{"cluster.local":${entry(rootB64)},"cluster.local":{"keys":[]}}}`;
    expect(Object.keys((JSON.parse(text) as { trust_domains: object }).trust_domains)).toHaveLength(
      1,
    );
    expect(bundleError(() => TrustBundleSet.parseJson(text))).toContain(
      'duplicate JSON key "cluster.local"',
    );
    // The same key written with a JSON escape is still the same key.
    const escaped = `{"trust_domains":{"cluster.local":{"keys":[]},"cluster\\u002elocal":{"keys":[]}}}`;
    expect(bundleError(() => TrustBundleSet.parseJson(escaped))).toContain("duplicate JSON key");
  });

  test("rejects keys that are not trust domains, and a missing trust_domains object", () => {
    expect(
      bundleError(() =>
        TrustBundleSet.parseJson('{"trust_domains":{"Cluster.Local":{"keys":[]}}}'),
      ),
    ).toContain("is not a trust domain");
    expect(
      bundleError(() => TrustBundleSet.parseJson('{"trust_domains":{"spiffe://td":{"keys":[]}}}')),
    ).toContain("is not a trust domain");
    expect(bundleError(() => TrustBundleSet.parseJson('{"domains":{}}'))).toContain(
      '"trust_domains"',
    );
    expect(bundleError(() => TrustBundleSet.parseJson('{"trust_domains":{"td":{}}}'))).toContain(
      'trust domain "td": no authorities found',
    );
  });

  test("a set refuses two bundles for one trust domain; set() replaces", () => {
    const a = new TrustBundle("td");
    const set = new TrustBundleSet([a]);
    expect(() => set.add(new TrustBundle("td"))).toThrow(/duplicate bundle/);
    const b = new TrustBundle(parseTrustDomain("td"), { x509Authorities: [pki.root] });
    set.set(b);
    expect(set.get("td")).toBe(b);
  });

  test("__proto__ as a key is data, not a prototype", () => {
    const set = TrustBundleSet.parseJson('{"trust_domains":{"a":{"keys":[],"__proto__":{"x":1}}}}');
    expect(set.size).toBe(1);
  });
});
