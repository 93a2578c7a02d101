// Releases free heap to the OS, as Envoy's overload action `envoy.overload_actions.shrink_heap`
// does (its HeapShrinker: a 10 s timer that calls tcmalloc's ReleaseFreeMemory while the action is
// active; Memory::Utils::tryShrinkHeap releases once 100 MiB are free but held). Here the
// allocator is glibc's malloc, under every Buffer, TLS record and HTTP/2 frame Node allocates:
// after a burst (200 × 10 MiB through the waypoint) nearly all of that is free again, but glibc
// keeps it resident — it only returns the top of the main heap, and one live allocation near the
// top pins everything below. malloc_trim(0) gives back every whole free page in every arena
// (madvise MADV_DONTNEED); the pages are faulted in again if a later burst needs them.
//
// Node adds one step Envoy does not need: a dropped Buffer is only freed to malloc when V8 collects
// it, and an idle process allocates nothing, so V8 may not run a full GC for minutes (46 MiB of
// dead Buffers 60 s after the soak). In the first idle interval after activity, if V8's off-heap
// memory is large, the shrinker asks V8 for a full GC first (vm.measureMemory, eager).
//
// libc is reached through koffi (as @ambientkit/inpod does); without koffi, or off glibc, the
// shrinker reports itself unavailable and does nothing.
import { createRequire } from "node:module";
import { type EventLoopUtilization, performance } from "node:perf_hooks";
import vm from "node:vm";
import { Counter, type Registry } from "prom-client";

/** Envoy HeapShrinker's timer interval (`kTimerInterval`, 10 s). */
export const SHRINK_HEAP_INTERVAL_MS = 10_000;
/** Envoy's `max_unfreed_memory_bytes` default (`kDefaultMaxUnfreedMemoryBytes`, 100 MiB). */
export const MAX_UNFREED_MEMORY_BYTES: number = 100 * 1024 * 1024;

/** Off-heap memory V8 tracks (Buffers, HTTP/2 sessions) worth a full GC once idle (32 MiB). */
export const GC_BUFFER_BYTES: number = 32 * 1024 * 1024;
/** An interval whose event loop was busy less than this share of the time counts as idle. */
export const IDLE_UTILIZATION = 0.05;

/** glibc's view of its heap (mallinfo2), in bytes. */
export interface MallocStats {
  /** Bytes the arenas hold from the OS (brk heap and arena mappings; resident or not). */
  arenaBytes: number;
  /** Bytes in use by the program in the arenas. */
  inUseBytes: number;
  /** Free bytes held by the arenas (after a trim, most of them are no longer resident). */
  freeBytes: number;
  /** Bytes in chunks malloc mmapped on their own (returned to the OS when freed). */
  mmappedBytes: number;
}

interface Glibc {
  mallinfo2(): Record<string, number | bigint>;
  mallocTrim(pad: number): number;
}

let glibc: Glibc | null | undefined;

function load(): Glibc | null {
  if (glibc !== undefined) return glibc;
  glibc = null;
  if (process.platform !== "linux") return glibc;
  try {
    const koffi = createRequire(import.meta.url)("koffi") as {
      load(path: string): { func(decl: string): unknown };
      struct(name: string, fields: Record<string, string>): unknown;
    };
    const lib = koffi.load("libc.so.6");
    koffi.struct("ambientkit_mallinfo2", {
      arena: "size_t",
      ordblks: "size_t",
      smblks: "size_t",
      hblks: "size_t",
      hblkhd: "size_t",
      usmblks: "size_t",
      fsmblks: "size_t",
      uordblks: "size_t",
      fordblks: "size_t",
      keepcost: "size_t",
    });
    glibc = {
      mallinfo2: lib.func("ambientkit_mallinfo2 mallinfo2()") as Glibc["mallinfo2"],
      mallocTrim: lib.func("int malloc_trim(size_t pad)") as Glibc["mallocTrim"],
    };
  } catch {
    // no koffi, musl, or a glibc older than 2.33 (no mallinfo2): nothing to shrink with
    glibc = null;
  }
  return glibc;
}

/** glibc's heap figures, or undefined where they cannot be read (not glibc, no koffi). */
export function mallocStats(): MallocStats | undefined {
  const g = load();
  if (!g) return undefined;
  const m = g.mallinfo2();
  return {
    arenaBytes: Number(m.arena),
    inUseBytes: Number(m.uordblks),
    freeBytes: Number(m.fordblks),
    mmappedBytes: Number(m.hblkhd),
  };
}

/** malloc_trim(0): true if glibc gave memory back. Undefined where unavailable. */
export function releaseFreeMemory(): boolean | undefined {
  const g = load();
  return g ? g.mallocTrim(0) === 1 : undefined;
}

export interface ShrinkHeapOptions {
  /** How often to look (default 10 s, Envoy's HeapShrinker timer). */
  intervalMs?: number;
  /** Release once this many free bytes are held (default 100 MiB, Envoy's default). */
  maxUnfreedMemoryBytes?: number;
  /**
   * In the first idle interval after activity, collect garbage first if V8's off-heap memory
   * (Buffers, HTTP/2 sessions: `process.memoryUsage().external`) is at least this (default 32 MiB;
   * 0 = never).
   */
  gcBufferBytes?: number;
}

/** What one shrink did (for logs and the counter). */
export interface ShrinkResult {
  freeBytes: number;
  rssBefore: number;
  rssAfter: number;
  ms: number;
}

/**
 * Every `intervalMs`: in the first interval with an idle event loop after a busy one, if V8's
 * off-heap memory is at least `gcBufferBytes`, a full GC; then, if glibc holds at least
 * `maxUnfreedMemoryBytes` free, malloc_trim(0). Bounded: one GC per quiet spell, only when idle
 * (tens of ms), a trim at most once per interval, a few ms (the arenas' free lists are walked
 * once). The timer is unref'd, so it never keeps a process alive.
 */
export class HeapShrinker {
  readonly intervalMs: number;
  readonly maxUnfreedMemoryBytes: number;
  readonly gcBufferBytes: number;
  /** Trims that released memory (Envoy's `overload.envoy.overload_actions.shrink_heap.shrink_count`). */
  shrinkCount = 0;
  /** Full GCs asked for while idle. */
  gcCount = 0;
  readonly #onShrink: ((r: ShrinkResult) => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #elu: EventLoopUtilization = performance.eventLoopUtilization();
  /** An interval was busy since the last idle GC (the first quiet one after activity collects). */
  #busySinceGc = true;
  #ticking = false;

  constructor(options: ShrinkHeapOptions = {}, onShrink?: (r: ShrinkResult) => void) {
    this.intervalMs = options.intervalMs ?? SHRINK_HEAP_INTERVAL_MS;
    this.maxUnfreedMemoryBytes = options.maxUnfreedMemoryBytes ?? MAX_UNFREED_MEMORY_BYTES;
    this.gcBufferBytes = options.gcBufferBytes ?? GC_BUFFER_BYTES;
    this.#onShrink = onShrink;
  }

  /** False where glibc's allocator cannot be reached (then `start` does nothing). */
  get available(): boolean {
    return load() !== null;
  }

  start(): this {
    if (this.#timer || !this.available) return this;
    this.#elu = performance.eventLoopUtilization();
    this.#timer = setInterval(() => {
      void this.tick();
    }, this.intervalMs);
    this.#timer.unref();
    return this;
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One interval's work: the idle GC if due, then the trim if due; the trim's result. */
  async tick(): Promise<ShrinkResult | undefined> {
    if (this.#ticking) return undefined;
    this.#ticking = true;
    try {
      const { utilization } = performance.eventLoopUtilization(this.#elu);
      this.#elu = performance.eventLoopUtilization();
      if (utilization >= IDLE_UTILIZATION) {
        this.#busySinceGc = true;
      } else if (
        this.#busySinceGc &&
        this.gcBufferBytes > 0 &&
        process.memoryUsage().external >= this.gcBufferBytes
      ) {
        // once per quiet spell after activity: the documented way to ask V8 for a full GC now,
        // without --expose-gc (V8 frees the dead Buffers' memory right after, in the background;
        // the next interval's trim returns it)
        this.#busySinceGc = false;
        await vm.measureMemory({ execution: "eager" });
        this.gcCount++;
      }
      return this.shrinkIfUnfreed();
    } finally {
      this.#ticking = false;
    }
  }

  /** One look: trims when the free bytes held reach the threshold; the result when it released. */
  shrinkIfUnfreed(): ShrinkResult | undefined {
    const stats = mallocStats();
    if (!stats || stats.freeBytes < this.maxUnfreedMemoryBytes) return undefined;
    const rssBefore = process.memoryUsage.rss();
    const t0 = performance.now();
    const released = releaseFreeMemory();
    const ms = performance.now() - t0;
    if (!released) return undefined;
    this.shrinkCount++;
    const r: ShrinkResult = {
      freeBytes: stats.freeBytes,
      rssBefore,
      rssAfter: process.memoryUsage.rss(),
      ms,
    };
    this.#onShrink?.(r);
    return r;
  }
}

/**
 * A shrinker whose releases are counted in `registry` under Envoy's counter name and logged (the
 * waypoint's and the standalone ztunnel's).
 */
export function meteredHeapShrinker(
  options: ShrinkHeapOptions | undefined,
  registry: Registry,
  log: (fields: Record<string, number>, message: string) => void,
): HeapShrinker {
  const shrinks = new Counter({
    name: "envoy_overload_envoy_overload_actions_shrink_heap_shrink_count",
    help: "Times free heap was released to the OS (Envoy's shrink_heap overload action)",
    registers: [registry],
  });
  return new HeapShrinker(options, (r) => {
    shrinks.inc();
    log(
      {
        "free.bytes": r.freeBytes,
        "rss.before": r.rssBefore,
        "rss.after": r.rssAfter,
        "duration.ms": Math.round(r.ms * 10) / 10,
      },
      "heap shrunk",
    );
  });
}
