import { execFileSync } from "node:child_process";
import { X509Certificate as NodeX509 } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { IdentityError } from "./errors.js";
import { decodePemCertificates, encodePemCertificates } from "./pem.js";
import {
  certificateFacts,
  checkX509SvidLeaf,
  checkX509SvidSigningCert,
  parseCertificate,
  parseX509Svid,
  SVID_RULES,
  type SvidRule,
  spiffeIdFromCertificate,
} from "./svid.js";
import {
  BOTH_EKU,
  CA_KU,
  type CertSpec,
  der,
  ExtendedKeyUsage,
  Extension,
  KeyUsageFlags,
  LEAF_KU,
  makeCert,
  makePki,
  type Pki,
} from "./testdata/svid-fixtures.js";
import { BasicConstraintsExtension, type X509Certificate } from "./x509-lib.js";

let pki: Pki;
beforeAll(async () => {
  pki = await makePki("cluster.local");
});

function ruleOf(f: () => unknown): { rule: string | undefined; code: string; message: string } {
  try {
    f();
  } catch (error) {
    expect(error).toBeInstanceOf(IdentityError);
    const e = error as IdentityError;
    return { rule: e.rule, code: e.code, message: e.message };
  }
  throw new Error("expected the check to fail");
}

// NULL, DER-encoded: a harmless extension value.
const NULL_DER = new Uint8Array([0x05, 0x00]);

/** Leaf mutations: each flips one X509-SVID leaf rule of an otherwise valid Istio-profile leaf. */
const LEAF_VECTORS: { name: string; spec: Partial<CertSpec>; rule: SvidRule; strict?: boolean }[] =
  [
    { name: "no SAN at all", spec: { uris: [] }, rule: "leaf-uri-san-missing" },
    { name: "DNS SAN only", spec: { uris: [], dns: ["a.example"] }, rule: "leaf-uri-san-missing" },
    {
      name: "two URI SANs",
      spec: { uris: ["spiffe://cluster.local/ns/a/sa/b", "spiffe://cluster.local/ns/a/sa/c"] },
      rule: "leaf-uri-san-multiple",
    },
    {
      name: "a SPIFFE and an https URI SAN",
      spec: { uris: ["spiffe://cluster.local/ns/a/sa/b", "https://example.org"] },
      rule: "leaf-uri-san-multiple",
    },
    {
      name: "URI SAN is not spiffe",
      spec: { uris: ["https://cluster.local/ns/a/sa/b"] },
      rule: "leaf-spiffe-id-invalid",
    },
    {
      name: "uppercase trust domain",
      spec: { uris: ["spiffe://Cluster.local/ns/a/sa/b"] },
      rule: "leaf-spiffe-id-invalid",
    },
    {
      name: "port in trust domain",
      spec: { uris: ["spiffe://cluster.local:80/ns/a"] },
      rule: "leaf-spiffe-id-invalid",
    },
    {
      name: "dot segment",
      spec: { uris: ["spiffe://cluster.local/ns/../sa/b"] },
      rule: "leaf-spiffe-id-invalid",
    },
    {
      name: "query",
      spec: { uris: ["spiffe://cluster.local/ns/a?x=1"] },
      rule: "leaf-spiffe-id-invalid",
    },
    {
      name: "root SPIFFE ID",
      spec: { uris: ["spiffe://cluster.local"] },
      rule: "leaf-spiffe-id-root-path",
    },
    { name: "CA:true", spec: { ca: true }, rule: "leaf-ca" },
    { name: "no key usage", spec: { keyUsage: null }, rule: "leaf-digital-signature-missing" },
    {
      name: "keyEncipherment only",
      spec: { keyUsage: KeyUsageFlags.keyEncipherment },
      rule: "leaf-digital-signature-missing",
    },
    {
      name: "keyCertSign",
      spec: { keyUsage: LEAF_KU | KeyUsageFlags.keyCertSign },
      rule: "leaf-key-cert-sign",
    },
    { name: "cRLSign", spec: { keyUsage: LEAF_KU | KeyUsageFlags.cRLSign }, rule: "leaf-crl-sign" },
    {
      name: "EKU serverAuth only",
      spec: { eku: [ExtendedKeyUsage.serverAuth] },
      rule: "leaf-eku-incomplete",
    },
    {
      name: "EKU clientAuth only",
      spec: { eku: [ExtendedKeyUsage.clientAuth] },
      rule: "leaf-eku-incomplete",
    },
    {
      name: "EKU codeSigning",
      spec: { eku: [ExtendedKeyUsage.codeSigning] },
      rule: "leaf-eku-incomplete",
    },
    {
      name: "EKU anyExtendedKeyUsage only",
      spec: { eku: ["2.5.29.37.0"] },
      rule: "leaf-eku-incomplete",
    },
    {
      name: "unknown critical extension",
      spec: { extra: [new Extension("1.3.6.1.4.1.55555.1", true, NULL_DER)] },
      rule: "unhandled-critical-extension",
    },
    {
      name: "critical name constraints (not processed)",
      spec: { extra: [new Extension("2.5.29.30", true, new Uint8Array([0x30, 0x00]))] },
      rule: "unhandled-critical-extension",
    },
    {
      name: "basic constraints twice",
      spec: { extra: [new BasicConstraintsExtension(false, undefined, true)] },
      rule: "duplicate-extension",
    },
    {
      name: "strict: key usage not critical",
      spec: { keyUsageCritical: false },
      rule: "strict-key-usage-not-critical",
      strict: true,
    },
    {
      name: "strict: empty subject, SAN not critical",
      spec: { sanCritical: false },
      rule: "strict-san-not-critical",
      strict: true,
    },
  ];

describe("X509-SVID leaf rules", () => {
  test("the Istio-profile leaf passes, strict too", () => {
    expect(checkX509SvidLeaf(pki.leaf).toString()).toBe(
      "spiffe://cluster.local/ns/default/sa/client",
    );
    expect(checkX509SvidLeaf(pki.leaf, { strict: true }).toString()).toBe(
      "spiffe://cluster.local/ns/default/sa/client",
    );
    const facts = certificateFacts(pki.leaf);
    expect(facts.keyUsage).toBe(KeyUsageFlags.digitalSignature | KeyUsageFlags.keyEncipherment);
    expect(facts.subjectEmpty).toBe(true);
    expect(facts.extendedKeyUsage).toEqual(BOTH_EKU);
  });

  test.each(LEAF_VECTORS)("$name → $rule", async ({ spec, rule, strict }) => {
    const cert = await makeCert({ ...pki.leafSpec, ...spec });
    const failure = ruleOf(() => checkX509SvidLeaf(cert, { strict: strict === true }));
    expect(failure.rule).toBe(rule);
    expect(failure.message).toContain(`rule ${rule}`);
    expect(failure.code).toMatch(/^ERR_IDENTITY_SVID_(RULE|PARSE)$/);
    if (strict) expect(checkX509SvidLeaf(cert).isRoot).toBe(false); // only strict mode rejects it
  });

  test("allowed variations: no EKU, extra DNS SAN, keyAgreement, non-critical unknown extension, subject set", async () => {
    for (const spec of [
      { eku: null },
      { dns: ["client.default.svc"] },
      { keyUsage: KeyUsageFlags.digitalSignature | KeyUsageFlags.keyAgreement },
      { extra: [new Extension("1.3.6.1.4.1.55555.1", false, NULL_DER)] },
      { subject: "O=cluster.local", sanCritical: false },
      { ca: null },
      { eku: [...BOTH_EKU, ExtendedKeyUsage.codeSigning] },
    ] satisfies Partial<CertSpec>[]) {
      const cert = await makeCert({ ...pki.leafSpec, ...spec });
      expect(checkX509SvidLeaf(cert, { strict: true }).path).toBe("/ns/default/sa/client");
    }
  });

  test("otherName SANs (UPN, GUID) next to the URI SAN do not break parsing or count as URIs", async () => {
    const cert = await makeCert({
      ...pki.leafSpec,
      otherSans: [
        { type: "upn", value: "someone@example.org" },
        { type: "email", value: "a@example.org" },
        { type: "ip", value: "10.0.0.1" },
      ],
    });
    expect(certificateFacts(cert).uriSans).toEqual(["spiffe://cluster.local/ns/default/sa/client"]);
    expect(spiffeIdFromCertificate(cert).toString()).toBe(
      "spiffe://cluster.local/ns/default/sa/client",
    );
    expect(checkX509SvidLeaf(cert).toString()).toBe("spiffe://cluster.local/ns/default/sa/client");
  });

  test("every rule has a description", () => {
    for (const v of LEAF_VECTORS) expect(SVID_RULES[v.rule]).toMatch(/\S/);
  });
});

describe("signing certificate rules", () => {
  test("root and intermediate pass", () => {
    checkX509SvidSigningCert(pki.root, { strict: true });
    checkX509SvidSigningCert(pki.intermediate, { strict: true });
  });
  test.each([
    { name: "CA:false", spec: { ca: false }, rule: "signing-not-ca" },
    { name: "no basic constraints", spec: { ca: null }, rule: "signing-not-ca" },
    {
      name: "no keyCertSign",
      spec: { keyUsage: KeyUsageFlags.cRLSign },
      rule: "signing-key-cert-sign-missing",
    },
    { name: "no key usage", spec: { keyUsage: null }, rule: "signing-key-cert-sign-missing" },
    {
      name: "strict: SPIFFE ID with a path",
      spec: { uris: ["spiffe://cluster.local/ns/istio-system/sa/istiod"] },
      rule: "strict-signing-spiffe-id-has-path",
      strict: true,
    },
    {
      name: "strict: key usage not critical",
      spec: { keyUsageCritical: false },
      rule: "strict-key-usage-not-critical",
      strict: true,
    },
  ] satisfies { name: string; spec: Partial<CertSpec>; rule: SvidRule; strict?: boolean }[])(
    "$name → $rule",
    async ({ spec, rule, ...rest }) => {
      const strict = "strict" in rest;
      const cert = await makeCert({ ...pki.intSpec, ...spec });
      expect(ruleOf(() => checkX509SvidSigningCert(cert, { strict })).rule).toBe(rule);
    },
  );
  test("Istio tools/certs style intermediate (digitalSignature+keyEncipherment+keyCertSign, DNS SAN) passes", async () => {
    const cert = await makeCert({
      ...pki.intSpec,
      keyUsage:
        KeyUsageFlags.digitalSignature |
        KeyUsageFlags.nonRepudiation |
        KeyUsageFlags.keyEncipherment |
        KeyUsageFlags.keyCertSign,
      pathLength: 0,
      dns: ["istiod.istio-system.svc"],
    });
    checkX509SvidSigningCert(cert, { strict: true });
  });
});

describe("parseX509Svid", () => {
  test("PEM chain, leaf first", () => {
    const svid = parseX509Svid(
      encodePemCertificates([der(pki.leaf), der(pki.intermediate), der(pki.root)]),
    );
    expect(svid.id.toString()).toBe("spiffe://cluster.local/ns/default/sa/client");
    expect(svid.chain).toHaveLength(3);
  });
  test("a non-CA certificate after the leaf is rejected", async () => {
    const other = await makeCert({ ...pki.leafSpec });
    expect(ruleOf(() => parseX509Svid([der(pki.leaf), der(other)])).rule).toBe("signing-not-ca");
  });
  test("empty chain and garbage", () => {
    expect(ruleOf(() => parseX509Svid([])).rule).toBe("chain-empty");
    const garbage = ruleOf(() => parseX509Svid([new Uint8Array([0x30, 0x03, 1, 2, 3])]));
    expect(garbage.rule).toBe("certificate-parse");
    expect(garbage.code).toBe("ERR_IDENTITY_SVID_PARSE");
    expect(ruleOf(() => parseX509Svid("not pem")).code).toBe("ERR_IDENTITY_PEM");
  });
  test("parseCertificate caches by DER", () => {
    const bytes = der(pki.leaf);
    expect(parseCertificate(bytes)).toBe(parseCertificate(new Uint8Array(bytes)));
  });
  test("works on a certificate taken from node:crypto (what a TLS socket hands out)", () => {
    const node = new NodeX509(der(pki.leaf));
    const cert: X509Certificate = parseCertificate(new Uint8Array(node.raw));
    expect(checkX509SvidLeaf(cert).toString()).toBe("spiffe://cluster.local/ns/default/sa/client");
    expect(node.subjectAltName).toBe("URI:spiffe://cluster.local/ns/default/sa/client");
    expect(CA_KU & KeyUsageFlags.keyCertSign).toBeTruthy();
  });
});

describe("X509-SVID vectors made by the openssl CLI (independent encoder)", () => {
  const dir = mkdtempSync(join(tmpdir(), "ambientkit-svid-openssl-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const ossl = (...args: string[]) =>
    execFileSync("openssl", args, { cwd: dir, stdio: ["pipe", "pipe", "pipe"] });
  const SAN = "subjectAltName=critical,URI:spiffe://cluster.local/ns/default/sa/sleep";
  const GOOD = [
    "basicConstraints=critical,CA:false",
    "keyUsage=critical,digitalSignature,keyEncipherment",
    "extendedKeyUsage=serverAuth,clientAuth",
    SAN,
  ];

  beforeAll(() => {
    ossl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key");
    ossl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "leaf.key");
    ossl(
      "req",
      "-new",
      "-x509",
      "-key",
      "ca.key",
      "-subj",
      "/O=cluster.local",
      "-days",
      "2",
      "-addext",
      "basicConstraints=critical,CA:true",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
      "-out",
      "ca.pem",
    );
    ossl("req", "-new", "-key", "leaf.key", "-subj", "/O=cluster.local", "-out", "leaf.csr");
  });

  function leafWith(name: string, ext: string[]): X509Certificate {
    writeFileSync(join(dir, `${name}.cnf`), `[v3]\n${ext.join("\n")}\n`);
    ossl(
      "x509",
      "-req",
      "-in",
      "leaf.csr",
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-days",
      "1",
      "-extfile",
      `${name}.cnf`,
      "-extensions",
      "v3",
      "-out",
      `${name}.pem`,
    );
    return parseCertificate(
      decodePemCertificates(readFileSync(join(dir, `${name}.pem`), "utf8"))[0] as Uint8Array,
    );
  }

  test("the Istio-profile leaf and the CA pass", () => {
    expect(checkX509SvidLeaf(leafWith("good", GOOD), { strict: true }).toString()).toBe(
      "spiffe://cluster.local/ns/default/sa/sleep",
    );
    checkX509SvidSigningCert(
      parseCertificate(
        decodePemCertificates(readFileSync(join(dir, "ca.pem"), "utf8"))[0] as Uint8Array,
      ),
      {
        strict: true,
      },
    );
  });

  test.each([
    ["cRLSign", ["keyUsage=critical,digitalSignature,cRLSign"], "leaf-crl-sign"],
    ["keyCertSign", ["keyUsage=critical,digitalSignature,keyCertSign"], "leaf-key-cert-sign"],
    [
      "keyEncipherment only",
      ["keyUsage=critical,keyEncipherment"],
      "leaf-digital-signature-missing",
    ],
    [
      "decipherOnly (bit 8)",
      ["keyUsage=critical,keyAgreement,decipherOnly"],
      "leaf-digital-signature-missing",
    ],
    ["serverAuth only", ["extendedKeyUsage=serverAuth"], "leaf-eku-incomplete"],
    ["CA:true", ["basicConstraints=critical,CA:true"], "leaf-ca"],
    [
      "two URIs",
      [
        "subjectAltName=critical,URI:spiffe://cluster.local/ns/a/sa/b,URI:spiffe://cluster.local/ns/c/sa/d",
      ],
      "leaf-uri-san-multiple",
    ],
    ["DNS only", ["subjectAltName=critical,DNS:sleep.default.svc"], "leaf-uri-san-missing"],
    [
      "percent-encoded path",
      ["subjectAltName=critical,URI:spiffe://cluster.local/ns/a%2Fb/sa/c"],
      "leaf-spiffe-id-invalid",
    ],
    [
      "unknown critical extension",
      ["1.3.6.1.4.1.55555.7=critical,ASN1:NULL"],
      "unhandled-critical-extension",
    ],
  ] as const)("%s → %s", (name, override, rule) => {
    const key = (line: string) => line.split("=")[0];
    const ext = [...GOOD.filter((g) => !override.some((o) => key(o) === key(g))), ...override];
    const cert = leafWith(name.replace(/\W+/g, "-"), ext);
    expect(ruleOf(() => checkX509SvidLeaf(cert)).rule).toBe(rule);
  });
});
