import { generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { describe, expect, it } from "vitest";
import { extractToken, type JwtRule, verifyJwt } from "./jwt.js";

const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const ec = generateKeyPairSync("ec", { namedCurve: "P-384" });
const jwks = JSON.stringify({
  keys: [
    { ...rsa.publicKey.export({ format: "jwk" }), kid: "rsa" },
    { ...ec.publicKey.export({ format: "jwk" }), kid: "ec" },
  ],
});
const rules: JwtRule[] = [{ issuer: "iss-a", jwks }];

function token(alg: string, kid: string, key: KeyObject, claims: object): string {
  const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const data = Buffer.from(`${enc({ alg, kid })}.${enc(claims)}`);
  const hash = `sha${alg.slice(2)}`;
  const sig = alg.startsWith("ES")
    ? sign(hash, data, { key, dsaEncoding: "ieee-p1363" })
    : alg.startsWith("PS")
      ? sign(hash, data, { key, padding: 6, saltLength: -1 })
      : sign(hash, data, key);
  return `${data.toString()}.${sig.toString("base64url")}`;
}

describe("verifyJwt", () => {
  const now = 1_800_000_000;
  const claims = { iss: "iss-a", sub: "bob", exp: now + 60, nbf: now - 60 };
  it.each([
    ["RS256", "rsa", rsa.privateKey],
    ["PS256", "rsa", rsa.privateKey],
    ["RS512", "rsa", rsa.privateKey],
    ["ES384", "ec", ec.privateKey],
  ] as const)("accepts %s signed by the JWKS key", (alg, kid, key) => {
    expect(verifyJwt(token(alg, kid, key, claims), rules, now)).toEqual({
      kind: "valid",
      claims,
      issuer: "iss-a",
    });
  });

  it("rejects tampering, a key of another kid, time bounds and garbage", () => {
    const t = token("RS256", "rsa", rsa.privateKey, claims);
    const [h, , s] = t.split(".");
    const tampered = `${h}.${Buffer.from(JSON.stringify({ ...claims, sub: "eve" })).toString("base64url")}.${s}`;
    expect(verifyJwt(tampered, rules, now)).toEqual({
      kind: "invalid",
      reason: "Jwt verification fails",
    });
    expect(verifyJwt(token("RS256", "ec", rsa.privateKey, claims), rules, now).kind).toBe(
      "invalid",
    );
    expect(verifyJwt(t, rules, now + 61)).toEqual({ kind: "invalid", reason: "Jwt is expired" });
    expect(verifyJwt(t, rules, now - 61)).toEqual({ kind: "invalid", reason: "Jwt not yet valid" });
    expect(verifyJwt("a.b", rules, now).kind).toBe("invalid");
    expect(verifyJwt("e30.e30.AAAA", rules, now)).toEqual({
      kind: "invalid",
      reason: "Jwt issuer is not configured",
    });
    expect(
      verifyJwt(
        token("HS256" as "RS256", "rsa", rsa.privateKey, claims).replace(
          /^[^.]+/,
          Buffer.from('{"alg":"HS256"}').toString("base64url"),
        ),
        rules,
        now,
      ).kind,
    ).toBe("invalid");
  });
});

describe("extractToken", () => {
  it("reads Authorization: Bearer and access_token by default", () => {
    expect(extractToken({ authorization: "Bearer abc" }, "/", rules)).toBe("abc");
    expect(extractToken({}, "/x?access_token=def", rules)).toBe("def");
    expect(extractToken({ authorization: "Basic xyz" }, "/", rules)).toBeUndefined();
  });
  it("reads only the configured headers and params when a rule names them", () => {
    const custom: JwtRule[] = [
      { issuer: "i", fromHeaders: [{ name: "x-jwt", prefix: "T " }], fromParams: ["tok"] },
    ];
    expect(extractToken({ "x-jwt": "T ghi" }, "/", custom)).toBe("ghi");
    expect(extractToken({ authorization: "Bearer abc" }, "/?tok=jkl", custom)).toBe("jkl");
    expect(
      extractToken({ authorization: "Bearer abc" }, "/?access_token=x", custom),
    ).toBeUndefined();
  });
});
