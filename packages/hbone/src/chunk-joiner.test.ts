import { describe, expect, it } from "vitest";
import { ChunkJoiner } from "./chunk-joiner.js";

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

describe("ChunkJoiner", () => {
  it("hands the chunks of one event-loop turn on as one, in order", async () => {
    const out: Buffer[] = [];
    const j = new ChunkJoiner((c) => out.push(c));
    j.add(Buffer.from("ab"));
    j.add(Buffer.from("cd"));
    j.add(Buffer.from("e"));
    expect(out).toEqual([]);
    await turn();
    expect(out.map(String)).toEqual(["abcde"]);
    j.add(Buffer.from("f"));
    await turn();
    expect(out.map(String)).toEqual(["abcde", "f"]);
  });

  it("hands on at once when maxBytes have gathered, and flush() empties it", async () => {
    const out: Buffer[] = [];
    const j = new ChunkJoiner((c) => out.push(c), 4);
    j.add(Buffer.from("ab"));
    j.add(Buffer.from("cd"));
    expect(out.map(String)).toEqual(["abcd"]);
    j.add(Buffer.from("x"));
    j.flush();
    expect(out.map(String)).toEqual(["abcd", "x"]);
    j.flush();
    await turn();
    expect(out.map(String)).toEqual(["abcd", "x"]);
  });

  it("passes a lone chunk on without copying it", async () => {
    const out: Buffer[] = [];
    const j = new ChunkJoiner((c) => out.push(c));
    const one = Buffer.from("solo");
    j.add(one);
    await turn();
    expect(out[0]).toBe(one);
  });
});
