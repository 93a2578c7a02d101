import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { cpus } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Bench } from "tinybench";
import type { BenchGroup, BenchSuite, MeasureRow } from "./harness.js";

interface CaseResult {
  name: string;
  peer: boolean;
  opsPerSec: number;
  nsPerOp: number;
  rme: number;
  samples: number;
}
interface GroupResult {
  suite: string;
  group: Pick<BenchGroup, "name" | "target" | "ratio">;
  cases: CaseResult[];
  measured: MeasureRow[];
}

const here = dirname(fileURLToPath(import.meta.url));
const filters = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const write = !process.argv.includes("--no-write") && filters.length === 0;
const suiteArg = process.argv.find((a) => a.startsWith("--suite="))?.slice("--suite=".length);
const RESULT_MARK = "\n@@ambientkit-bench-results@@\n";

/** Runs one suite file's selected groups in this process (the child side of {@link runSuite}). */
async function runSuiteHere(file: string): Promise<GroupResult[]> {
  const suiteDir = join(here, "suites");
  const mod = (await import(pathToFileURL(join(suiteDir, file)).href)) as { default: BenchSuite };
  const suite = mod.default;
  const groups = await suite.groups();
  const selected = groups.filter(
    (g) => filters.length === 0 || filters.some((f) => new RegExp(f).test(g.name)),
  );
  // Groups not selected are torn down first: their servers and child processes must not
  // share the machine with the ones being measured.
  for (const group of groups) if (!selected.includes(group)) await group.teardown?.();
  const results: GroupResult[] = [];
  for (const group of selected) results.push(await runGroup(suite.package, group));
  return results;
}

/**
 * Runs one suite file in a fresh Node process: a suite's fixtures (corpora, 10,000 policies,
 * servers) and their garbage collection would otherwise weigh on every suite measured after it.
 */
async function runSuite(file: string): Promise<GroupResult[]> {
  const child = spawn(
    process.execPath,
    [fileURLToPath(import.meta.url), `--suite=${file}`, ...filters],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  let out = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    out += d;
  });
  const code = await new Promise<number | null>((r) => child.once("exit", r));
  const at = out.lastIndexOf(RESULT_MARK);
  if (code !== 0 || at < 0) throw new Error(`bench suite ${file} failed (exit ${code})`);
  return JSON.parse(out.slice(at + RESULT_MARK.length)) as GroupResult[];
}

async function main(): Promise<void> {
  if (suiteArg !== undefined) {
    const results = await runSuiteHere(suiteArg);
    process.stdout.write(RESULT_MARK + JSON.stringify(results));
    process.exit(0);
  }
  const suiteDir = join(here, "suites");
  const files = readdirSync(suiteDir).filter((f) => f.endsWith(".js") && !f.includes(".test."));
  const results: GroupResult[] = [];
  for (const file of files.sort()) results.push(...(await runSuite(file)));
  const md = render(results) + measuredElsewhere();
  process.stdout.write(md);
  if (write) {
    const out = join(here, "..", "..", "docs", "benchmarks.md");
    await writeFile(out, md);
    process.stdout.write(`\nwrote ${out}\n`);
  }
}

/**
 * Reports that other commands write (e.g. `npm run soak`, minutes long, its own processes), kept in
 * bench/results/*.md and appended as they are, each with its own date and machine line.
 */
function measuredElsewhere(): string {
  const dir = join(here, "..", "results");
  let files: string[];
  try {
    files = readdirSync(dir)
      .filter((f) => f.endsWith(".md"))
      .sort();
  } catch {
    return "";
  }
  if (files.length === 0) return "";
  const parts = files.map((f) => readFileSync(join(dir, f), "utf8").trimEnd());
  return `\n## Measured by other commands\n\n${parts.join("\n\n")}\n`;
}

/** Round-robin slices of ~25 ms per case until the group's time budget is spent. */
function runInterleaved(group: BenchGroup): CaseResult[] {
  const sliceMs = 25;
  const budget = group.timeMs ?? 1000;
  const totals = group.cases.map(() => ({ ms: 0, ops: 0, rates: [] as number[] }));
  const runSlice = (i: number): void => {
    const c = group.cases[i];
    const t = totals[i];
    if (c === undefined || t === undefined) return;
    const batch = c.batch ?? 1;
    let ops = 0;
    const t0 = performance.now();
    let now = t0;
    while (now - t0 < sliceMs) {
      c.fn();
      ops += batch;
      now = performance.now();
    }
    t.ms += now - t0;
    t.ops += ops;
    t.rates.push((ops * 1000) / (now - t0));
  };
  // Warm-up slice for every case, not counted.
  for (let i = 0; i < group.cases.length; i++) runSlice(i);
  for (const t of totals) Object.assign(t, { ms: 0, ops: 0, rates: [] });
  const start = performance.now();
  for (let round = 0; performance.now() - start < budget; round++) {
    // Alternate the order so neither case always runs right after the other.
    const order = group.cases.map((_c, i) => i);
    if (round % 2 === 1) order.reverse();
    for (const i of order) runSlice(i);
  }
  return group.cases.map((c, i) => {
    const t = totals[i] as { ms: number; ops: number; rates: number[] };
    const mean = t.rates.reduce((a, b) => a + b, 0) / t.rates.length;
    const sd = Math.sqrt(t.rates.reduce((a, r) => a + (r - mean) ** 2, 0) / t.rates.length);
    return {
      name: c.name,
      peer: c.peer ?? false,
      opsPerSec: (t.ops * 1000) / t.ms,
      nsPerOp: (t.ms * 1e6) / t.ops,
      // 95 % margin of the per-slice rates, in % of their mean
      rme: ((1.96 * sd) / Math.sqrt(t.rates.length) / mean) * 100,
      samples: t.rates.length,
    };
  });
}

async function runGroup(suite: string, group: BenchGroup): Promise<GroupResult> {
  process.stderr.write(`running ${group.name}\n`);
  const cases =
    group.cases.length === 0
      ? []
      : group.interleave
        ? runInterleaved(group)
        : await runTinybench(group);
  const measured = group.measure ? await group.measure() : [];
  await group.teardown?.();
  return { suite, group: describeGroup(group), cases, measured };
}

async function runTinybench(group: BenchGroup): Promise<CaseResult[]> {
  const bench = new Bench({ time: group.timeMs ?? 1000, warmupTime: 200 });
  for (const c of group.cases) bench.add(c.name, c.fn);
  await bench.run();
  const cases: CaseResult[] = [];
  for (const task of bench.tasks) {
    const r = task.result;
    if (r?.state !== "completed") throw new Error(`${group.name}: ${task.name} did not complete`);
    const def = group.cases.find((c) => c.name === task.name);
    const batch = def?.batch ?? 1;
    cases.push({
      name: task.name,
      peer: def?.peer ?? false,
      // ops/s from the mean latency (total work / total time); tinybench's throughput.mean
      // averages per-sample rates, which over-weights the fastest samples.
      opsPerSec: (1000 * batch) / r.latency.mean,
      nsPerOp: (r.latency.mean * 1e6) / batch,
      rme: r.latency.rme,
      samples: r.latency.samplesCount,
    });
  }
  return cases;
}

/** What the report needs of a group (it crosses the process boundary as JSON). */
function describeGroup(group: BenchGroup): GroupResult["group"] {
  return {
    name: group.name,
    ...(group.target !== undefined ? { target: group.target } : {}),
    ...(group.ratio !== undefined ? { ratio: group.ratio } : {}),
  };
}

function fmt(n: number): string {
  if (n >= 100) return Math.round(n).toLocaleString("en-US");
  return n.toPrecision(3);
}

function render(results: GroupResult[]): string {
  const lines: string[] = [
    "# Benchmarks",
    "",
    "Generated by `npm run bench` (bench/src/bench.ts); every group below was measured in one run,",
    "each suite in a fresh Node process, ambientkit and its peer side by side in that process.",
    "Do not edit by hand: rerun the bench.",
    "",
    `Machine: ${cpus().length} × ${cpus()[0]?.model ?? "unknown CPU"}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}.`,
    "",
  ];
  let currentSuite = "";
  for (const { suite, group, cases, measured } of results) {
    if (suite !== currentSuite) {
      lines.push(`## ${suite}`, "");
      currentSuite = suite;
    }
    lines.push(`### ${group.name}`, "");
    if (group.target) lines.push(`Target: ${group.target}`, "");
    if (cases.length > 0) {
      lines.push("| case | ops/s | ns/op | ±rme % | samples |", "|---|---:|---:|---:|---:|");
      for (const c of cases) {
        const name = c.peer && !c.name.includes("(peer)") ? `${c.name} *(peer)*` : c.name;
        lines.push(
          `| ${name} | ${fmt(c.opsPerSec)} | ${fmt(c.nsPerOp)} | ${c.rme.toFixed(2)} | ${c.samples} |`,
        );
      }
      lines.push("");
    }
    if (measured.length > 0) {
      lines.push("| measurement | value |", "|---|---:|");
      for (const m of measured) {
        lines.push(
          `| ${m.name}${m.peer && !m.name.includes("(peer)") ? " *(peer)*" : ""} | ${fmt(m.value)} ${m.unit} |`,
        );
      }
      lines.push("");
    }
    if (group.ratio) {
      const ours = cases.find((c) => c.name === group.ratio?.ours);
      const peer = cases.find((c) => c.name === group.ratio?.peer);
      if (ours && peer) {
        lines.push(
          `Ratio ${group.ratio.ours} / ${group.ratio.peer}: **${(ours.opsPerSec / peer.opsPerSec).toFixed(2)}×**`,
          "",
        );
      }
    }
  }
  return `${lines.join("\n")}\n`;
}

await main();
