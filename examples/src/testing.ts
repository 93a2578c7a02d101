// Helpers shared by the examples' tests: probe that nothing listens, scrape and parse Prometheus text.
import net from "node:net";
import { httpRequest } from "./apps/echo.js";

/** Resolves true when something accepts a TCP connection on host:port. */
export function isListening(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/** One Prometheus sample. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses Prometheus text exposition (samples only; comments skipped). */
export function parsePrometheus(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    const body = m[3] ?? "";
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
    for (let l = re.exec(body); l !== null; l = re.exec(body))
      labels[l[1] ?? ""] = (l[2] ?? "").replace(/\\(.)/g, "$1");
    out.push({ name: m[1] ?? "", labels, value: Number(m[4]) });
  }
  return out;
}

/** GETs `http://<address><path>` and parses the Prometheus text. */
export async function scrape(address: string, path = "/metrics"): Promise<Sample[]> {
  const i = address.lastIndexOf(":");
  const r = await httpRequest({
    host: address.slice(0, i),
    port: Number(address.slice(i + 1)),
    path,
  });
  if (r.status !== 200) throw new Error(`scrape ${address}${path}: HTTP ${r.status}`);
  return parsePrometheus(r.body);
}
