// Issue #19's numbers: what @ambientkit/authz-http costs a hello-world route with 100 policies
// attached, on Express 5 and Fastify 5, against the bare route and against casbin's Express
// middleware (casbin-express-authz) with an equivalent 100-row policy.
//
// A 5 % difference in requests/s is within the noise of a shared 2-core machine, so three figures
// are reported, each bare route against the same route with the middleware:
// - requests/s by autocannon, in many short rounds: the servers run in their own process (pinned
//   to one CPU with taskset when there are two or more, this process and autocannon to another),
//   and every round loads each target once, in an order that reverses every round, so a
//   neighbour's burst falls on the targets of one round alike. A loss is the median of the
//   per-round ratios against the bare route of the same round (25th and 75th percentiles too).
// - the server process's CPU time per request (user + system, from process.cpuUsage() around each
//   run): what limits requests/s once the server is saturated, and unlike req/s not capped by the
//   load generator, which shares the machine. Same rounds, same medians.
// - instructions per request, counted by valgrind (callgrind) on the server process alone: one
//   process per framework serving its bare, empty-middleware and authz-http routes, each warmed
//   up, then batches of requests sent one at a time over a keep-alive connection, the routes taking
//   turns batch by batch, the counters zeroed before and dumped after each batch; the median batch
//   of each route is kept. No clock is involved, so a busy machine does not move it: the noise-free cross-check.
//   It counts user-space instructions only (every thread, GC included); the kernel's share of a
//   request (the socket reads and writes) is not in it, so as a share of the bare route it
//   overstates what the middleware costs in requests/s.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { Agent, request } from "node:http";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import {
  POLICIES,
  PORTS_LINE,
  REQUEST_HEADERS,
  REQUEST_PATH,
  TARGETS,
  type Target,
} from "../authz-http-servers.js";
import type { BenchGroup, BenchSuite, MeasureRow } from "../harness.js";

/** A positive number from the environment, `fallback` when unset; anything else is an error. */
const env = (name: string, fallback: number): number => {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const v = Number(raw);
  if (!Number.isFinite(v) || v <= 0)
    throw new TypeError(`${name} must be a positive number, got ${JSON.stringify(raw)}`);
  return v;
};
/** Rounds of autocannon runs, and seconds per target per round. */
const ROUNDS = env("AUTHZ_HTTP_BENCH_ROUNDS", 30);
const ROUND_S = env("AUTHZ_HTTP_BENCH_ROUND_S", 1);
const CONNECTIONS = 10;
/**
 * Requests before counting (under valgrind the JIT needs thousands to settle: fewer and the batches
 * still shrink), then batches counted one by one. casbin costs 4× the bare Express route per request
 * and its added cost is 30× ours, so fewer requests measure it well enough.
 */
const WARMUP_REQUESTS = env("AUTHZ_HTTP_BENCH_WARMUP", 6000);
const BATCH_REQUESTS = env("AUTHZ_HTTP_BENCH_BATCH", 1000);
const BATCHES = env("AUTHZ_HTTP_BENCH_BATCHES", 8);
const counting = (t: Target) =>
  t === "express+casbin"
    ? { warmup: 2000, batch: 200, batches: 3 }
    : { warmup: WARMUP_REQUESTS, batch: BATCH_REQUESTS, batches: BATCHES };
/** AUTHZ_HTTP_BENCH_VALGRIND=0 leaves the instruction counts out (they take minutes). */
const VALGRIND = process.env.AUTHZ_HTTP_BENCH_VALGRIND !== "0";

const SERVERS = fileURLToPath(new URL("../authz-http-servers.js", import.meta.url));

const has = (cmd: string): boolean => {
  try {
    execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
};

interface Servers {
  readonly ports: Record<Target, number>;
  readonly pid: number;
  /** CPU time the server process has used so far, µs. */
  cpuUs(): Promise<number>;
  stop(): Promise<void>;
}

/** Starts the targets in one child process: `prefix` is e.g. taskset or valgrind's command line. */
async function startServers(
  targets: readonly Target[],
  prefix: readonly string[] = [],
): Promise<Servers> {
  const argv = [...prefix, process.execPath, SERVERS, ...targets];
  const child: ChildProcess = spawn(argv[0] as string, argv.slice(1), {
    stdio: ["ignore", "pipe", "pipe", "ipc"],
  });
  let err = "";
  child.stderr?.setEncoding("utf8").on("data", (d: string) => {
    err = (err + d).slice(-4000);
  });
  const ports = await new Promise<Record<Target, number>>((resolve, reject) => {
    let out = "";
    child.stdout?.setEncoding("utf8").on("data", (d: string) => {
      out += d;
      const line = out.split("\n").find((l) => l.startsWith(PORTS_LINE));
      if (line) resolve(JSON.parse(line.slice(PORTS_LINE.length)));
    });
    child.once("exit", (code) => reject(new Error(`bench servers exited (${code}):\n${err}`)));
  });
  return {
    ports,
    pid: child.pid as number,
    cpuUs: () =>
      new Promise<number>((resolve) => {
        child.once("message", (m) => resolve((m as { cpuUs: number }).cpuUs));
        child.send("cpu");
      }),
    stop: () =>
      new Promise<void>((r) => {
        if (child.exitCode !== null || child.signalCode !== null) return r();
        child.once("exit", () => r());
        child.kill();
      }),
  };
}

async function load(port: number, seconds: number): Promise<{ rps: number; requests: number }> {
  const r = await autocannon({
    url: `http://127.0.0.1:${port}${REQUEST_PATH}`,
    connections: CONNECTIONS,
    duration: seconds,
    headers: { ...REQUEST_HEADERS },
  });
  // Every request of every target is allowed: a refusal would mean unequal work.
  if (r.non2xx > 0 || r.errors > 0 || r.timeouts > 0)
    throw new Error(`port ${port}: ${r.non2xx} non-2xx answers, ${r.errors} errors`);
  return { rps: r.requests.total / seconds, requests: r.requests.total };
}

const quantile = (xs: readonly number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  const at = (s.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return (s[lo] as number) + ((s[hi] as number) - (s[lo] as number)) * (at - lo);
};
const median = (xs: readonly number[]): number => quantile(xs, 0.5);

interface Rounds {
  /** requests/s of each round. */
  readonly rps: number[];
  /** Server CPU µs per request of each round. */
  readonly cpu: number[];
}

/** requests/s and server CPU per request of every target in every round. */
async function throughputRounds(): Promise<Map<Target, Rounds>> {
  // Two CPUs or more: the servers on the last one, this process (autocannon) on the one before.
  const pin = has("taskset") && cpus().length >= 2;
  const serverCpu = cpus().length - 1;
  if (pin)
    execFileSync("taskset", ["-pc", String(serverCpu - 1), String(process.pid)], {
      stdio: "ignore",
    });
  const servers = await startServers(TARGETS, pin ? ["taskset", "-c", String(serverCpu)] : []);
  try {
    for (const t of TARGETS) await load(servers.ports[t], 1); // warm-up: JIT, decision memo
    const out = new Map<Target, Rounds>(TARGETS.map((t) => [t, { rps: [], cpu: [] }]));
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? [...TARGETS] : [...TARGETS].reverse();
      for (const t of order) {
        const before = await servers.cpuUs();
        const r = await load(servers.ports[t], ROUND_S);
        const used = (await servers.cpuUs()) - before;
        out.get(t)?.rps.push(r.rps);
        out.get(t)?.cpu.push(used / r.requests);
      }
    }
    return out;
  } finally {
    await servers.stop();
    if (pin)
      execFileSync("taskset", ["-pc", `0-${serverCpu}`, String(process.pid)], { stdio: "ignore" });
  }
}

/** One request over the keep-alive connection; resolves when the answer is read. */
function get(agent: Agent, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port, path: REQUEST_PATH, headers: REQUEST_HEADERS, agent },
      (res) => {
        if (res.statusCode !== 200) reject(new Error(`port ${port}: status ${res.statusCode}`));
        res.resume().once("end", resolve);
      },
    );
    req.once("error", reject).end();
  });
}

function callgrindControl(flag: string, pid: number): void {
  execFileSync("callgrind_control", [flag, String(pid)], { stdio: "ignore", timeout: 120_000 });
}

/**
 * Median instructions per request of each target of a group served by one process under
 * callgrind. The targets take turns batch by batch (the order reversing every batch), so they share
 * one heap and one JIT state: counts of separate processes differ by several percent (where the JIT
 * and the GC happened to land), which is as much as the overhead being measured.
 */
async function instructionsPerRequest(
  group: readonly Target[],
  dir: string,
): Promise<Map<Target, number>> {
  const out = join(dir, (group[0] as string).replace(/\W/g, "_"));
  const servers = await startServers(group, [
    "valgrind",
    "--tool=callgrind",
    `--callgrind-out-file=${out}.%p`,
  ]);
  const agents = new Map(group.map((t) => [t, new Agent({ keepAlive: true, maxSockets: 1 })]));
  try {
    const send = async (t: Target, n: number) => {
      const agent = agents.get(t) as Agent;
      for (let i = 0; i < n; i++) await get(agent, servers.ports[t]);
    };
    const { warmup, batch, batches } = counting(group[0] as Target);
    for (const t of group) await send(t, warmup);
    const perRequest = new Map<Target, number[]>(group.map((t) => [t, []]));
    let dumps = 0;
    for (let b = 0; b < batches; b++) {
      for (const t of b % 2 === 0 ? group : [...group].reverse()) {
        callgrindControl("-z", servers.pid);
        await send(t, batch);
        callgrindControl("-d", servers.pid);
        const file = `${out}.${servers.pid}.${++dumps}`;
        const summary = /^summary:\s*(\d+)/m.exec(readFileSync(file, "utf8"));
        if (!summary) throw new Error(`${file}: no summary line`);
        perRequest.get(t)?.push(Number(summary[1]) / batch);
      }
    }
    return new Map(group.map((t) => [t, median(perRequest.get(t) ?? [])]));
  } finally {
    for (const a of agents.values()) a.destroy();
    await servers.stop();
  }
}

async function instructionCounts(): Promise<Map<Target, number> | undefined> {
  if (!VALGRIND || !has("valgrind") || !has("callgrind_control")) return undefined;
  const dir = mkdtempSync(join(tmpdir(), "authz-http-callgrind-"));
  try {
    const counted = new Map<Target, number>();
    // A process per framework (bare, empty middleware, ours, compared within it); casbin alone,
    // with fewer requests. Two at a time: counts do not depend on what else runs.
    const queue: Target[][] = [
      ["express", "express+no-op", "express+authz-http"],
      ["fastify", "fastify+no-op", "fastify+authz-http"],
      ["express+casbin"],
    ];
    const worker = async () => {
      for (let g = queue.shift(); g !== undefined; g = queue.shift())
        for (const [t, n] of await instructionsPerRequest(g, dir)) counted.set(t, n);
    };
    await Promise.all([worker(), worker()]);
    return counted;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const FRAMEWORKS = [
  { fw: "express", label: "Express", floor: "an empty middleware" },
  { fw: "fastify", label: "Fastify", floor: "an empty onRequest hook" },
] as const;

const describe = (t: Target): string =>
  t.endsWith("+no-op")
    ? `${t} (${t.startsWith("express") ? "one empty middleware" : "one empty onRequest hook"})`
    : t === "express" || t === "fastify"
      ? `${t} bare route`
      : `${t} (${POLICIES} policies)`;

async function measure(): Promise<MeasureRow[]> {
  const rounds = await throughputRounds();
  const series = (t: Target, what: keyof Rounds): number[] => rounds.get(t)?.[what] ?? [];
  /** Per-round loss of `t` against the bare route of the same round, in %: its q-quantile. */
  const rpsLoss = (t: Target, bare: Target, q = 0.5): number => {
    const b = series(bare, "rps");
    return +(
      quantile(
        series(t, "rps").map((x, i) => 1 - x / (b[i] as number)),
        q,
      ) * 100
    ).toFixed(1);
  };
  /** Loss of capacity from server CPU per request: 1 − cpu(bare) / cpu(t), per round, median. */
  const cpuLoss = (t: Target, bare: Target): number => {
    const b = series(bare, "cpu");
    return +(median(series(t, "cpu").map((x, i) => 1 - (b[i] as number) / x)) * 100).toFixed(1);
  };
  /** µs added per request, per round, median: from 1/rps (the definition) or server CPU. */
  const addedUs = (t: Target, bare: Target, by: keyof Rounds): number => {
    const b = series(bare, by);
    const per = (x: number) => (by === "rps" ? 1e6 / x : x);
    return median(series(t, by).map((x, i) => per(x) - per(b[i] as number)));
  };
  const rows: MeasureRow[] = [];
  for (const t of TARGETS)
    rows.push({
      name: `${describe(t)}, median of ${ROUNDS} rounds of ${ROUND_S} s`,
      value: Math.round(median(series(t, "rps"))),
      unit: "req/s",
      ...(t === "express+casbin" ? { peer: true } : {}),
    });
  for (const t of TARGETS)
    rows.push({
      name: `${describe(t)}: server CPU time per request (user + system), median`,
      value: +median(series(t, "cpu")).toFixed(2),
      unit: "µs",
      ...(t === "express+casbin" ? { peer: true } : {}),
    });
  for (const { fw, label, floor } of FRAMEWORKS) {
    const mw = `${fw}+authz-http` as Target;
    const noop = `${fw}+no-op` as Target;
    rows.push(
      {
        name: `${label}: req/s lost to authz-http, median of per-round ratios (target ≤ 5 %)`,
        value: rpsLoss(mw, fw),
        unit: "%",
      },
      {
        name: `${label}: req/s lost to authz-http, 25th percentile of rounds`,
        value: rpsLoss(mw, fw, 0.25),
        unit: "%",
      },
      {
        name: `${label}: req/s lost to authz-http, 75th percentile of rounds`,
        value: rpsLoss(mw, fw, 0.75),
        unit: "%",
      },
      {
        name: `${label}: capacity lost to authz-http by server CPU per request, median of rounds`,
        value: cpuLoss(mw, fw),
        unit: "%",
      },
      {
        name: `${label}: req/s lost to ${floor} (the framework's floor)`,
        value: rpsLoss(noop, fw),
        unit: "%",
      },
      {
        name: `${label}: capacity lost to ${floor} by server CPU per request`,
        value: cpuLoss(noop, fw),
        unit: "%",
      },
    );
  }
  for (const by of ["rps", "cpu"] as const) {
    const what = by === "rps" ? "1/req/s" : "server CPU";
    const ours = addedUs("express+authz-http", "express", by);
    const casbin = addedUs("express+casbin", "express", by);
    rows.push(
      {
        name: `Express: added cost per request (${what}), authz-http`,
        value: +ours.toFixed(2),
        unit: "µs",
      },
      {
        name: `Express: added cost per request (${what}), casbin-express-authz`,
        value: +casbin.toFixed(2),
        unit: "µs",
        peer: true,
      },
      {
        name: `added cost authz-http / casbin-express-authz (${what}; target ≤ 0.2)`,
        value: +(ours / casbin).toFixed(3),
        unit: "×",
      },
    );
  }

  const instr = await instructionCounts();
  if (instr === undefined) {
    process.stderr.write("authz-http: instruction counts left out (no valgrind, or turned off)\n");
    return rows;
  }
  const n = (t: Target): number => instr.get(t) ?? Number.NaN;
  for (const t of TARGETS) {
    const c = counting(t);
    rows.push({
      name: `${describe(t)}: instructions per request (callgrind, server process, median of ${c.batches} × ${c.batch} after ${c.warmup})`,
      value: Math.round(n(t)),
      unit: "instr",
      ...(t === "express+casbin" ? { peer: true } : {}),
    });
  }
  for (const { fw, label, floor } of FRAMEWORKS) {
    const mw = `${fw}+authz-http` as Target;
    const noop = `${fw}+no-op` as Target;
    rows.push(
      {
        name: `${label}: instructions added by authz-http, per request`,
        value: Math.round(n(mw) - n(fw)),
        unit: "instr",
      },
      {
        name: `${label}: instructions added by authz-http, % of the bare route's (user space only)`,
        value: +(((n(mw) - n(fw)) / n(fw)) * 100).toFixed(1),
        unit: "%",
      },
      {
        name: `${label}: instructions added by ${floor}, % of the bare route's`,
        value: +(((n(noop) - n(fw)) / n(fw)) * 100).toFixed(1),
        unit: "%",
      },
    );
  }
  rows.push({
    name: "instructions added authz-http / casbin-express-authz (Express; target ≤ 0.2)",
    value: +(
      (n("express+authz-http") - n("express")) /
      (n("express+casbin") - n("express"))
    ).toFixed(3),
    unit: "×",
  });
  return rows;
}

const suite: BenchSuite = {
  package: "authz-http",
  async groups(): Promise<BenchGroup[]> {
    return [
      {
        name: "authz-http/middleware-overhead",
        target: `≤ 5 % req/s lost on a hello-world Express / Fastify route with ${POLICIES} policies; added cost per request ≤ 1/5 of casbin-express-authz's`,
        cases: [],
        measure,
      },
    ];
  },
};
export default suite;
