/**
 * Benchmark suites live in `bench/src/suites/*.ts`; each default-exports a `BenchSuite`. The runner
 * (`bench.ts`) runs every suite in a fresh Node process (no suite's fixtures or GC weigh on
 * another), runs the groups whose names match the CLI filters, prints a table and rewrites
 * docs/benchmarks.md from the same run, so ambientkit and its peers are always measured side by
 * side on one machine in one process.
 */
export interface BenchCase {
  /** e.g. "ambientkit P-256 CSR sign" or "node-forge RSA-2048 sign (peer)". */
  name: string;
  fn: () => unknown;
  /**
   * Operations one call of `fn` performs (default 1). Sub-microsecond operations run in batches:
   * timing each call alone would mostly measure the timer and compress every ratio towards 1.
   */
  batch?: number;
  /** Marks a peer implementation we compare against. */
  peer?: boolean;
}

export interface BenchGroup {
  /** `topic/what`, e.g. "identity/ca-sign". */
  name: string;
  /** The issue's target, said in words, e.g. "P-256 signing ≥ 10× node-forge RSA-2048". */
  target?: string;
  /** Name of the ambientkit case and the peer case whose ops/s ratio is reported. */
  ratio?: { ours: string; peer: string };
  /** Optional per-group time budget in ms (default 1000). */
  timeMs?: number;
  /**
   * Run the cases round-robin in short slices instead of one after another, so drift in the
   * machine's speed (a VM's neighbours, GC of earlier groups) falls on every case alike. Use for
   * groups whose ratio is a target.
   */
  interleave?: boolean;
  cases: BenchCase[];
  /** Free-form measurements (e.g. throughput in MB/s) a group reports instead of or besides ops/s. */
  measure?: () => Promise<MeasureRow[]>;
  teardown?: () => Promise<void> | void;
}

/** A row of a custom measurement, rendered as `name | value unit`. */
export interface MeasureRow {
  name: string;
  value: number;
  unit: string;
  peer?: boolean;
}

export interface BenchSuite {
  /** Package this suite measures, e.g. "identity". */
  package: string;
  groups(): Promise<BenchGroup[]>;
}
