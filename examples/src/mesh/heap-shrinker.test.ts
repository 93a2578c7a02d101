// The heap shrinker against the real glibc (through koffi): it reads mallinfo2, leaves the heap
// alone below its threshold, and once free memory is held, malloc_trim gives it back to the OS.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, expect, it, vi } from "vitest";
import {
  GC_BUFFER_BYTES,
  HeapShrinker,
  MAX_UNFREED_MEMORY_BYTES,
  mallocStats,
  SHRINK_HEAP_INTERVAL_MS,
} from "./heap-shrinker.js";

// a full GC on demand, so that dropped Buffers are really freed to malloc
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const MiB = 1024 * 1024;

describe("HeapShrinker", () => {
  it("uses Envoy's shrink_heap defaults", () => {
    const s = new HeapShrinker();
    expect(s.gcBufferBytes).toBe(GC_BUFFER_BYTES);
    expect(s.intervalMs).toBe(SHRINK_HEAP_INTERVAL_MS);
    expect(SHRINK_HEAP_INTERVAL_MS).toBe(10_000);
    expect(s.maxUnfreedMemoryBytes).toBe(MAX_UNFREED_MEMORY_BYTES);
    expect(MAX_UNFREED_MEMORY_BYTES).toBe(100 * MiB);
    expect(s.available).toBe(true);
  });

  it("gives free heap back to the OS once the threshold is held, not before", async () => {
    const before = mallocStats();
    expect(before?.arenaBytes).toBeGreaterThan(0);
    // 64 MiB in 8 KiB Buffers (below the mmap threshold: they live in the heap), written so their
    // pages are resident; every 64th stays alive and pins the heap as live connections do
    const kept: Buffer[] = [];
    let bufs: Buffer[] | undefined = Array.from({ length: 8192 }, (_, i) => Buffer.alloc(8192, i));
    for (let i = 0; i < bufs.length; i += 64) kept.push(bufs[i] as Buffer);
    bufs = undefined;
    // the backing stores are freed by V8's sweeper, possibly after gc() returns
    let free = 0;
    for (let i = 0; i < 1000 && free < 48 * MiB; i++) {
      gc();
      await new Promise((r) => setImmediate(r));
      free = (mallocStats()?.freeBytes ?? 0) - (before?.freeBytes ?? 0);
    }
    expect(free).toBeGreaterThanOrEqual(48 * MiB);

    const shrunk: number[] = [];
    const never = new HeapShrinker({ maxUnfreedMemoryBytes: Number.MAX_SAFE_INTEGER }, () =>
      shrunk.push(0),
    );
    expect(never.shrinkIfUnfreed()).toBeUndefined();
    expect(never.shrinkCount).toBe(0);

    const s = new HeapShrinker({ maxUnfreedMemoryBytes: 32 * MiB }, (r) =>
      shrunk.push(r.rssBefore - r.rssAfter),
    );
    const r = s.shrinkIfUnfreed();
    expect(r).toBeDefined();
    expect(s.shrinkCount).toBe(1);
    expect(shrunk).toHaveLength(1);
    // most of the 63 MiB freed was resident and is not any more
    expect(r && r.rssBefore - r.rssAfter).toBeGreaterThan(32 * MiB);
    expect(kept).toHaveLength(128);
  });

  it("collects dead Buffers first when the event loop was idle, not while it is busy", async () => {
    // 64 MiB of Buffers that survive a full GC (old space: scavenges never free them), then dropped
    let bufs: Buffer[] | undefined = Array.from({ length: 4096 }, (_, i) => Buffer.alloc(16384, i));
    gc();
    expect(bufs).toHaveLength(4096);
    bufs = undefined;
    const dead = process.memoryUsage().arrayBuffers;
    expect(dead).toBeGreaterThanOrEqual(64 * MiB);
    const never = { maxUnfreedMemoryBytes: Number.MAX_SAFE_INTEGER };

    // a busy interval (the event loop ran JS the whole time): no GC
    const busy = new HeapShrinker(never);
    const until = performance.now() + 200;
    while (performance.now() < until) {
      // spin: stands for a loaded proxy
    }
    await busy.tick();
    expect(busy.gcCount).toBe(0);
    expect(process.memoryUsage().arrayBuffers).toBeGreaterThanOrEqual(dead - MiB);

    // an idle interval: one full GC, and the Buffers are freed
    const idle = new HeapShrinker(never);
    await new Promise((r) => setTimeout(r, 300));
    await idle.tick();
    expect(idle.gcCount).toBe(1);
    // V8's sweeper frees them, in the background
    await vi.waitFor(() =>
      expect(process.memoryUsage().arrayBuffers).toBeLessThan(dead - 48 * MiB),
    );
    // the same quiet spell: no second collection
    await new Promise((r) => setTimeout(r, 300));
    await idle.tick();
    expect(idle.gcCount).toBe(1);
  });

  it("starts an unref'd timer and stops it", () => {
    const set = vi.spyOn(globalThis, "setInterval");
    const clear = vi.spyOn(globalThis, "clearInterval");
    try {
      const s = new HeapShrinker({ intervalMs: 60_000 }).start();
      s.start(); // idempotent
      const ours = set.mock.calls.flatMap((c, i) =>
        c[1] === 60_000 ? [set.mock.results[i]?.value as NodeJS.Timeout] : [],
      );
      expect(ours).toHaveLength(1);
      expect(ours[0]?.hasRef()).toBe(false);
      s.stop();
      s.stop();
      expect(clear.mock.calls.filter((c) => c[0] === ours[0])).toHaveLength(1);
      expect(s.shrinkCount).toBe(0);
    } finally {
      set.mockRestore();
      clear.mockRestore();
    }
  });
});
