import {
  formatTraceparent,
  generateTraceparent,
  isSampled,
  newTraceparentHeader,
  parseTraceparent,
  TelemetryError,
  tryParseTraceparent,
} from "@ambientkit/telemetry";
import { describe, expect, test } from "vitest";

// W3C Trace Context §3.2 example.
const EXAMPLE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

describe("traceparent", () => {
  test("parses the W3C example and formats it back", () => {
    const tp = parseTraceparent(EXAMPLE);
    expect(tp).toEqual({
      version: 0,
      traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
      parentId: "00f067aa0ba902b7",
      flags: 1,
    });
    expect(isSampled(tp)).toBe(true);
    expect(formatTraceparent(tp)).toBe(EXAMPLE);
  });

  test("generates ztunnel-style ids: 55 chars, version 00, flags 00, random and parseable", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const h = newTraceparentHeader();
      expect(h).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
      expect(h).toHaveLength(55);
      expect(formatTraceparent(parseTraceparent(h))).toBe(h);
      seen.add(h.slice(3, 35));
    }
    expect(seen.size).toBe(200);
  });

  test("a child keeps the trace id and gets a new parent id", () => {
    const parent = parseTraceparent(EXAMPLE);
    const child = generateTraceparent({ traceId: parent.traceId, flags: parent.flags });
    expect(child.traceId).toBe(parent.traceId);
    expect(child.parentId).not.toBe(parent.parentId);
    expect(child.flags).toBe(1);
  });

  test("an injected random source is used, and all-zero draws are redrawn", () => {
    let call = 0;
    const tp = generateTraceparent({
      random: (out) => {
        out.fill(call++ === 0 ? 0 : 0xab);
      },
    });
    expect(call).toBe(2);
    expect(tp.traceId).toBe("ab".repeat(16));
    expect(tp.parentId).toBe("ab".repeat(8));
  });

  test("a future version may carry more fields; version 00 may not", () => {
    expect(parseTraceparent(`01${EXAMPLE.slice(2)}-extra`).version).toBe(1);
    expect(tryParseTraceparent(`${EXAMPLE}-extra`).ok).toBe(false);
  });

  test.each([
    ["short", EXAMPLE.slice(0, 54), "ERR_TELEMETRY_TRACEPARENT_MALFORMED", /length was 54/],
    ["uppercase hex", EXAMPLE.toUpperCase(), "ERR_TELEMETRY_TRACEPARENT_MALFORMED", /hex/],
    [
      "wrong separator",
      EXAMPLE.replace(/-/g, "_"),
      "ERR_TELEMETRY_TRACEPARENT_MALFORMED",
      /separated/,
    ],
    ["version ff", `ff${EXAMPLE.slice(2)}`, "ERR_TELEMETRY_TRACEPARENT_VERSION", /ff/],
    [
      "zero trace id",
      `00-${"0".repeat(32)}-00f067aa0ba902b7-01`,
      "ERR_TELEMETRY_TRACEPARENT_ZERO_ID",
      /trace-id/,
    ],
    [
      "zero parent id",
      `00-4bf92f3577b34da6a3ce929d0e0e4736-${"0".repeat(16)}-01`,
      "ERR_TELEMETRY_TRACEPARENT_ZERO_ID",
      /parent-id/,
    ],
    ["non-hex flags", `${EXAMPLE.slice(0, 53)}zz`, "ERR_TELEMETRY_TRACEPARENT_MALFORMED", /hex/],
  ])("rejects %s", (_what, header, code, message) => {
    const r = tryParseTraceparent(header);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error).toBeInstanceOf(TelemetryError);
      expect(r.error.code).toBe(code);
      expect(r.error.message).toMatch(message);
    }
    expect(() => parseTraceparent(header)).toThrow(TelemetryError);
  });

  test("rejects a malformed trace id passed for a child", () => {
    expect(() => generateTraceparent({ traceId: "XYZ" })).toThrow(TelemetryError);
  });
});
