import { describe, expect, it } from "vitest";
import { runCli } from "./testing.js";

describe("ambientkit", () => {
  it("prints help and exits 0", async () => {
    const r = await runCli(["--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Usage: ambientkit");
  });
  it("prints its version", async () => {
    const r = await runCli(["--version"]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });
  it("exits 2 on an unknown command", async () => {
    const r = await runCli(["no-such-command"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: /);
  });
});
