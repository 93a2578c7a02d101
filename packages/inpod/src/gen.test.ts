// The generated protobuf-es code in ./gen must be what buf + protoc-gen-es produce from ./proto today.
// Regenerate with `npx buf generate` in this directory (see ./buf.gen.yaml) after editing a .proto.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, expect, it } from "vitest";

const here = fileURLToPath(new URL(".", import.meta.url));
const bin = resolve(here, "../../../node_modules/.bin");
const out = mkdtempSync(join(tmpdir(), "inpod-gen-"));
afterAll(() => rmSync(out, { recursive: true, force: true }));

it("src/gen is up to date with src/proto", () => {
  execFileSync(join(bin, "buf"), ["generate", "-o", out], {
    cwd: here,
    env: { ...process.env, PATH: `${bin}${delimiter}${process.env.PATH ?? ""}` },
    stdio: "pipe",
    timeout: 60_000,
  });
  const files = readdirSync(join(here, "gen")).sort();
  expect(files).toEqual(["zds_pb.ts"]);
  expect(readdirSync(join(out, "gen")).sort()).toEqual(files);
  for (const f of files) {
    expect(
      readFileSync(join(out, "gen", f), "utf8"),
      `${f} is stale: run \`npx buf generate\` in packages/inpod/src`,
    ).toBe(readFileSync(join(here, "gen", f), "utf8"));
  }
});
