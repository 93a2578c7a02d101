import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { IdentityError } from "./errors.js";
import {
  checkSpiffeId,
  checkSpiffePathSegment,
  isSpiffeId,
  istioIdentity,
  MAX_SPIFFE_ID_BYTES,
  MAX_TRUST_DOMAIN_BYTES,
  normalizeSpiffeId,
  parseIstioIdentity,
  parseSpiffeId,
  parseTrustDomain,
  SpiffeId,
  spiffeIdFromPath,
  spiffeIdFromSegments,
  TrustDomain,
  TrustDomainAliases,
  tryParseSpiffeId,
} from "./spiffe-id.js";

interface Vectors {
  valid: { id: string; trustDomain: string; path: string }[];
  invalid: { id: string; code: string; rule: string }[];
  istio: { valid: { id: string; namespace: string; serviceAccount: string }[]; notIstio: string[] };
}
const vectors = JSON.parse(
  readFileSync(new URL("./testdata/spiffe-ids.json", import.meta.url), "utf8"),
) as Vectors;

function thrown(f: () => unknown): IdentityError {
  try {
    f();
  } catch (error) {
    expect(error).toBeInstanceOf(IdentityError);
    return error as IdentityError;
  }
  throw new Error("expected an IdentityError, nothing was thrown");
}

describe("SPIFFE ID vectors", () => {
  test.each(vectors.valid)("valid: $id", ({ id, trustDomain, path }) => {
    const parsed = parseSpiffeId(id);
    expect(parsed.toString()).toBe(id);
    expect(parsed.trustDomain.name).toBe(trustDomain);
    expect(parsed.path).toBe(path);
    expect(isSpiffeId(id)).toBe(true);
    expect(checkSpiffeId(id)).toBeUndefined();
    expect(spiffeIdFromPath(trustDomain, path).toString()).toBe(id);
    expect(spiffeIdFromSegments(trustDomain, ...parsed.segments).toString()).toBe(id);
  });

  test.each(vectors.invalid)("invalid: $id → $code ($rule)", ({ id, code, rule }) => {
    const err = thrown(() => parseSpiffeId(id));
    expect(err.code).toBe(code);
    expect(err.rule).toBe(rule);
    expect(err.message).toContain("invalid SPIFFE ID");
    expect(isSpiffeId(id)).toBe(false);
    const r = tryParseSpiffeId(id);
    expect(r.ok).toBe(false);
    expect(checkSpiffeId(id)?.code).toBe(code);
  });

  test("vectors cover every SPIFFE ID code except the length and Istio ones", () => {
    const codes = new Set(vectors.invalid.map((v) => v.code));
    expect([...codes].sort()).toEqual(
      [
        "ERR_IDENTITY_SPIFFE_BAD_PATH_SEGMENT_CHAR",
        "ERR_IDENTITY_SPIFFE_BAD_TRUST_DOMAIN_CHAR",
        "ERR_IDENTITY_SPIFFE_DOT_SEGMENT",
        "ERR_IDENTITY_SPIFFE_EMPTY",
        "ERR_IDENTITY_SPIFFE_EMPTY_SEGMENT",
        "ERR_IDENTITY_SPIFFE_MISSING_TRUST_DOMAIN",
        "ERR_IDENTITY_SPIFFE_TRAILING_SLASH",
        "ERR_IDENTITY_SPIFFE_WRONG_SCHEME",
      ].sort(),
    );
  });
});

describe("length limits", () => {
  const td = "example.org";
  const prefix = `spiffe://${td}/`;
  test("a 2048-byte ID is accepted, 2049 bytes is rejected", () => {
    const exact = prefix + "a".repeat(MAX_SPIFFE_ID_BYTES - prefix.length);
    expect(exact.length).toBe(2048);
    expect(parseSpiffeId(exact).toString()).toBe(exact);
    const over = `${exact}b`;
    const err = thrown(() => parseSpiffeId(over));
    expect(err.code).toBe("ERR_IDENTITY_SPIFFE_TOO_LONG");
    expect(err.message.length).toBeLessThan(400); // the input is abbreviated in the message
  });
  test("many short segments count too", () => {
    const segs = Array.from({ length: 1100 }, () => "x");
    const err = thrown(() => spiffeIdFromSegments(td, ...segs));
    expect(err.code).toBe("ERR_IDENTITY_SPIFFE_TOO_LONG");
    expect(thrown(() => parseSpiffeId(`${prefix}${segs.join("/")}`)).code).toBe(
      "ERR_IDENTITY_SPIFFE_TOO_LONG",
    );
  });
  test("a 255-byte trust domain is accepted, 256 bytes is rejected", () => {
    const ok = "a".repeat(MAX_TRUST_DOMAIN_BYTES);
    expect(parseTrustDomain(ok).name).toBe(ok);
    expect(parseSpiffeId(`spiffe://${ok}/w`).trustDomain.name).toBe(ok);
    const long = `${ok}b`;
    expect(thrown(() => parseTrustDomain(long)).code).toBe(
      "ERR_IDENTITY_SPIFFE_TRUST_DOMAIN_TOO_LONG",
    );
    expect(thrown(() => parseSpiffeId(`spiffe://${long}/w`)).code).toBe(
      "ERR_IDENTITY_SPIFFE_TRUST_DOMAIN_TOO_LONG",
    );
  });
});

describe("trust domains", () => {
  test("parse a name or take it from an ID (go-spiffe TrustDomainFromString)", () => {
    expect(parseTrustDomain("example.org").name).toBe("example.org");
    expect(parseTrustDomain("spiffe://example.org/ns/a").name).toBe("example.org");
    expect(parseTrustDomain("example.org").id().toString()).toBe("spiffe://example.org");
    expect(parseTrustDomain("example.org").idString()).toBe("spiffe://example.org");
  });
  test.each([
    ["", "ERR_IDENTITY_SPIFFE_MISSING_TRUST_DOMAIN"],
    ["Example.org", "ERR_IDENTITY_SPIFFE_BAD_TRUST_DOMAIN_CHAR"],
    ["example.org:80", "ERR_IDENTITY_SPIFFE_BAD_TRUST_DOMAIN_CHAR"],
    ["spiffe://", "ERR_IDENTITY_SPIFFE_MISSING_TRUST_DOMAIN"],
    ["spiffe://Example.org", "ERR_IDENTITY_SPIFFE_BAD_TRUST_DOMAIN_CHAR"],
  ])("invalid trust domain %j → %s", (input, code) => {
    expect(thrown(() => parseTrustDomain(input)).code).toBe(code);
  });
  test("objects cannot be built around validation", () => {
    expect(() => new TrustDomain(Symbol("x"), "NOT VALID")).toThrow(TypeError);
    expect(() => new SpiffeId(Symbol("x"), parseTrustDomain("a"), "//")).toThrow(TypeError);
  });
  test("memberOf, equals and JSON", () => {
    const id = parseSpiffeId("spiffe://a.example/w");
    expect(id.memberOf("a.example")).toBe(true);
    expect(id.memberOf(parseTrustDomain("b.example"))).toBe(false);
    expect(id.equals("spiffe://a.example/w")).toBe(true);
    expect(id.equals(parseSpiffeId("spiffe://a.example/W"))).toBe(false);
    expect(JSON.stringify({ id, td: id.trustDomain })).toBe(
      '{"id":"spiffe://a.example/w","td":"a.example"}',
    );
    expect(id.isRoot).toBe(false);
    expect(parseSpiffeId("spiffe://a.example").isRoot).toBe(true);
    expect(parseSpiffeId("spiffe://a.example").segments).toEqual([]);
  });
});

describe("builders", () => {
  test("spiffeIdFromPath validates the path", () => {
    expect(thrown(() => spiffeIdFromPath("td", "no-slash")).code).toBe(
      "ERR_IDENTITY_SPIFFE_NO_LEADING_SLASH",
    );
    expect(thrown(() => spiffeIdFromPath("td", "/a/")).code).toBe(
      "ERR_IDENTITY_SPIFFE_TRAILING_SLASH",
    );
    expect(thrown(() => spiffeIdFromPath("TD", "/a")).code).toBe(
      "ERR_IDENTITY_SPIFFE_BAD_TRUST_DOMAIN_CHAR",
    );
  });
  test("spiffeIdFromSegments validates each segment (no slashes smuggled in)", () => {
    expect(spiffeIdFromSegments("td", "a", "b").toString()).toBe("spiffe://td/a/b");
    expect(spiffeIdFromSegments("td").toString()).toBe("spiffe://td");
    expect(thrown(() => spiffeIdFromSegments("td", "a/b")).code).toBe(
      "ERR_IDENTITY_SPIFFE_BAD_PATH_SEGMENT_CHAR",
    );
    expect(thrown(() => spiffeIdFromSegments("td", "")).code).toBe(
      "ERR_IDENTITY_SPIFFE_EMPTY_SEGMENT",
    );
    expect(thrown(() => spiffeIdFromSegments("td", "..")).code).toBe(
      "ERR_IDENTITY_SPIFFE_DOT_SEGMENT",
    );
    expect(checkSpiffePathSegment("ok")).toBeUndefined();
  });
  test("normalizeSpiffeId lowercases scheme and trust domain only, explicitly", () => {
    expect(normalizeSpiffeId("SPIFFE://Example.ORG/Path").toString()).toBe(
      "spiffe://example.org/Path",
    );
    expect(thrown(() => parseSpiffeId("SPIFFE://Example.ORG/Path")).code).toBe(
      "ERR_IDENTITY_SPIFFE_WRONG_SCHEME",
    );
    expect(thrown(() => normalizeSpiffeId("HTTP://example.org/p")).code).toBe(
      "ERR_IDENTITY_SPIFFE_WRONG_SCHEME",
    );
    expect(thrown(() => normalizeSpiffeId("SPIFFE://Ex:80/p")).code).toBe(
      "ERR_IDENTITY_SPIFFE_BAD_TRUST_DOMAIN_CHAR",
    );
  });
});

describe("Istio identities", () => {
  test.each(vectors.istio.valid)("parse $id", ({ id, namespace, serviceAccount }) => {
    const parsed = parseIstioIdentity(id);
    expect(parsed.namespace).toBe(namespace);
    expect(parsed.serviceAccount).toBe(serviceAccount);
    expect(istioIdentity(parsed.trustDomain, namespace, serviceAccount).toString()).toBe(id);
  });
  test.each(vectors.istio.notIstio)("not an Istio identity: %s", (id) => {
    expect(isSpiffeId(id)).toBe(true);
    const err = thrown(() => parseIstioIdentity(id));
    expect(err.code).toBe("ERR_IDENTITY_SPIFFE_NOT_ISTIO");
    expect(err.message).toContain("identity is not a spiffe format");
  });
  test("invalid SPIFFE IDs keep their SPIFFE code", () => {
    expect(thrown(() => parseIstioIdentity("spiffe://cluster.local/ns/a b/sa/x")).code).toBe(
      "ERR_IDENTITY_SPIFFE_BAD_PATH_SEGMENT_CHAR",
    );
  });
  test("build rejects empty and invalid parts", () => {
    expect(istioIdentity("cluster.local", "default", "sleep").toString()).toBe(
      "spiffe://cluster.local/ns/default/sa/sleep",
    );
    expect(thrown(() => istioIdentity("cluster.local", "", "sleep")).code).toBe(
      "ERR_IDENTITY_SPIFFE_NOT_ISTIO",
    );
    expect(thrown(() => istioIdentity("cluster.local", "default", "")).code).toBe(
      "ERR_IDENTITY_SPIFFE_NOT_ISTIO",
    );
    expect(thrown(() => istioIdentity("cluster.local", "a/b", "c")).code).toBe(
      "ERR_IDENTITY_SPIFFE_BAD_PATH_SEGMENT_CHAR",
    );
    expect(thrown(() => istioIdentity("td@corp", "a", "c")).code).toBe(
      "ERR_IDENTITY_SPIFFE_BAD_TRUST_DOMAIN_CHAR",
    );
  });
  test("trust-domain aliases: an identity matches under the trust domain or any alias", () => {
    const aliases = new TrustDomainAliases("cluster.local", [
      "old.example",
      "cluster.local",
      "td2",
    ]);
    expect(aliases.trustDomains.map(String)).toEqual(["cluster.local", "old.example", "td2"]);
    const want = "spiffe://cluster.local/ns/foo/sa/a";
    expect(aliases.matches("spiffe://old.example/ns/foo/sa/a", want)).toBe(true);
    expect(aliases.matches("spiffe://td2/ns/foo/sa/a", "spiffe://old.example/ns/foo/sa/a")).toBe(
      true,
    );
    expect(aliases.matches(want, want)).toBe(true);
    expect(aliases.matches("spiffe://other.example/ns/foo/sa/a", want)).toBe(false);
    expect(aliases.matches("spiffe://old.example/ns/foo/sa/b", want)).toBe(false);
    expect(aliases.matches("not a spiffe id", want)).toBe(false);
    // Two trust domains outside the alias set never match each other, even with equal paths.
    expect(aliases.matches("spiffe://x/ns/foo/sa/a", "spiffe://y/ns/foo/sa/a")).toBe(false);
    expect(aliases.includes("td2")).toBe(true);
    expect(aliases.includes("td3")).toBe(false);
  });
  test("expand (Istio ExpandWithTrustDomains)", () => {
    const aliases = new TrustDomainAliases("cluster.local", ["td2"]);
    expect(
      aliases.expand(["spiffe://cluster.local/ns/foo/sa/a", "*", "spiffe://td2/ns/bar/sa/b"]),
    ).toEqual([
      "spiffe://cluster.local/ns/foo/sa/a",
      "*",
      "spiffe://td2/ns/bar/sa/b",
      "spiffe://td2/ns/foo/sa/a",
      "spiffe://cluster.local/ns/bar/sa/b",
    ]);
  });
});
