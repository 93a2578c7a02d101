import { describe, expect, it } from "vitest";
import { compilePathTemplate, normalizeRequestPath, removeDotSegments } from "./path.js";

describe("Envoy path normalisation", () => {
  it("RFC 3986 remove_dot_segments", () => {
    expect(removeDotSegments("/a/b/c/./../../g")).toBe("/a/g");
    expect(removeDotSegments("/../a")).toBe("/a");
    expect(removeDotSegments("/a/..")).toBe("/");
    expect(removeDotSegments("/a/.")).toBe("/a/");
  });
  it("BASE: strips query and fragment, decodes unreserved only, uppercases other escapes", () => {
    expect(normalizeRequestPath("/a?b=/../c#x")).toBe("/a");
    expect(normalizeRequestPath("/%7Euser/%2e%2e/admin")).toBe("/admin");
    expect(normalizeRequestPath("/a%2fb")).toBe("/a%2Fb");
    expect(normalizeRequestPath("/a%20b")).toBe("/a%20b");
    expect(normalizeRequestPath("/a\\b")).toBe("/a/b");
    expect(normalizeRequestPath("/a//b")).toBe("/a//b");
    expect(normalizeRequestPath("/x%00")).toBeNull();
  });
  it("MERGE_SLASHES, DECODE_AND_MERGE_SLASHES, NONE", () => {
    expect(normalizeRequestPath("/a//b", "MERGE_SLASHES")).toBe("/a/b");
    expect(normalizeRequestPath("/a%2F%2fb", "DECODE_AND_MERGE_SLASHES")).toBe("/a/b");
    expect(normalizeRequestPath("/a%5Cb", "DECODE_AND_MERGE_SLASHES")).toBe("/a/b");
    expect(normalizeRequestPath("/a/../b?q", "NONE")).toBe("/a/../b");
  });
  it("templates: {*} is one non-empty segment, {**} any rest", () => {
    const one = compilePathTemplate("/api/{*}/x");
    expect(one.test("/api/v1/x")).toBe(true);
    expect(one.test("/api//x")).toBe(false);
    expect(one.test("/api/v1/v2/x")).toBe(false);
    const rest = compilePathTemplate("/static/{**}");
    expect(rest.test("/static/a/b/c.png")).toBe(true);
    expect(rest.test("/static/")).toBe(true);
    expect(rest.test("/other/a")).toBe(false);
    expect(compilePathTemplate("/a.b/{*}").test("/aXb/c")).toBe(false);
  });
});
