// HBONE engine spike (issue #12): a minimal HTTP/2 frame pump (bench/src/spike/frame-pump.ts)
// against a bare node:http2 CONNECT stream and a raw TLS 1.3 socket, in one process, in
// interleaved rounds. The rule: build our own HTTP/2 engine only if the pump is ≥ 1.3×
// node:http2. Same certificates, TLS options, windows and frame size as suites/hbone.ts.
import type { BenchGroup, BenchSuite, MeasureRow } from "../harness.js";
import {
  bareHttp2,
  type Fixture,
  fixture,
  framePump,
  rawTls,
  type Transfer,
} from "../spike/setup.js";

const MiB = 1024 * 1024;
const BULK = 256 * MiB;
const ECHO = 64 * MiB;
const WARMUP = 1;
const ROUNDS = 7;

type Case = { key: string; run: (fx: Fixture) => Promise<Transfer> };

const bulkCases: Case[] = [
  { key: "tls", run: (fx) => rawTls(fx, BULK, "bulk") },
  { key: "h2", run: (fx) => bareHttp2(fx, BULK, "bulk") },
  { key: "pump", run: (fx) => framePump(fx, BULK, "bulk") },
  // the pump with one big writev per turn (2 MiB socket budget, 1 MiB writes): what batching
  // everything into one write costs
  {
    key: "pumpBig",
    run: (fx) =>
      framePump(fx, BULK, "bulk", { socketBudget: 2 * MiB, writeChunk: MiB, sendBuffer: MiB }),
  },
];

const echoCases: Case[] = [
  { key: "tls", run: (fx) => rawTls(fx, ECHO, "echo") },
  { key: "h2", run: (fx) => bareHttp2(fx, ECHO, "echo") },
  { key: "pump", run: (fx) => framePump(fx, ECHO, "echo") },
];

const median = (xs: number[]): number =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

/**
 * Runs every case once per round, the order rotated each round so no case always runs first or
 * right after another; the first WARMUP rounds are dropped. Returns per-case transfers by round.
 */
async function rounds(fx: Fixture, cases: Case[]): Promise<Map<string, Transfer[]>> {
  const out = new Map<string, Transfer[]>(cases.map((c) => [c.key, []]));
  for (let round = 0; round < WARMUP + ROUNDS; round++) {
    const order = cases.map((_c, i) => cases[(i + round) % cases.length] as Case);
    if (round % 2 === 1) order.reverse();
    for (const c of order) {
      const t = await c.run(fx);
      if (round >= WARMUP) out.get(c.key)?.push(t);
    }
  }
  return out;
}

function report(label: string, res: Map<string, Transfer[]>, size: string): MeasureRow[] {
  const get = (k: string): Transfer[] => res.get(k) ?? [];
  const mb = (k: string): number => median(get(k).map((t) => t.mbps));
  const cpu = (k: string): number => median(get(k).map((t) => t.cpuSecPerGiB));
  // ratio per round (both sides of a pair ran within seconds of each other), then the median
  const ratio = (a: string, b: string): number =>
    median(get(a).map((t, i) => t.mbps / (get(b)[i]?.mbps ?? Number.NaN)));
  const all = (k: string): string =>
    get(k)
      .map((t) => Math.round(t.mbps))
      .join("/");
  const rows: MeasureRow[] = [
    {
      name: `${label}: raw node TLS 1.3 socket, ${size} (peer) [rounds ${all("tls")}]`,
      value: Math.round(mb("tls")),
      unit: "MB/s",
      peer: true,
    },
    {
      name: `${label}: bare node:http2 CONNECT stream (peer) [rounds ${all("h2")}]`,
      value: Math.round(mb("h2")),
      unit: "MB/s",
      peer: true,
    },
    {
      name: `${label}: frame pump, one CONNECT stream [rounds ${all("pump")}]`,
      value: Math.round(mb("pump")),
      unit: "MB/s",
    },
  ];
  if (res.has("pumpBig")) {
    rows.push({
      name: `${label}: frame pump, 1 MiB writes, 2 MiB socket budget [rounds ${all("pumpBig")}]`,
      value: Math.round(mb("pumpBig")),
      unit: "MB/s",
    });
  }
  rows.push(
    {
      name: `${label}: ratio frame pump / node:http2 (median of per-round ratios; issue #12 gate ≥ 1.3)`,
      value: Number(ratio("pump", "h2").toFixed(2)),
      unit: "×",
    },
    {
      name: `${label}: ratio frame pump / raw TLS`,
      value: Number(ratio("pump", "tls").toFixed(2)),
      unit: "×",
    },
    {
      name: `${label}: ratio node:http2 / raw TLS`,
      value: Number(ratio("h2", "tls").toFixed(2)),
      unit: "×",
    },
    {
      name: `${label}: CPU (both ends, user+sys) per GiB sent, raw TLS (peer)`,
      value: Number(cpu("tls").toFixed(2)),
      unit: "s/GiB",
      peer: true,
    },
    {
      name: `${label}: CPU per GiB sent, node:http2 (peer)`,
      value: Number(cpu("h2").toFixed(2)),
      unit: "s/GiB",
      peer: true,
    },
    {
      name: `${label}: CPU per GiB sent, frame pump`,
      value: Number(cpu("pump").toFixed(2)),
      unit: "s/GiB",
    },
  );
  return rows;
}

async function measure(fx: Fixture): Promise<MeasureRow[]> {
  const bulk = await rounds(fx, bulkCases);
  const echo = await rounds(fx, echoCases);
  return [...report("bulk", bulk, "256 MiB one way"), ...report("echo", echo, "64 MiB echoed")];
}

const suite: BenchSuite = {
  package: "hbone",
  async groups(): Promise<BenchGroup[]> {
    const fx = await fixture();
    return [
      {
        name: "hbone/spike-frame-pump",
        target:
          "issue #12 spike: minimal HTTP/2 frame pump ≥ 1.3× a bare node:http2 CONNECT stream, else keep node:http2",
        cases: [],
        measure: () => measure(fx),
      },
    ];
  },
};

export default suite;
