/**
 * Prometheus text exposition (format 0.0.4) without prom-client, for runtimes other than Node
 * (or a bare `/stats/prometheus` handler). Universal.
 */
import type { IstioMetrics, MetricFamily } from "./recorder.js";

/** The content type of {@link formatPrometheusText}'s output. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

function escapeHelp(s: string): string {
  return s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}
function escapeLabel(s: string): string {
  return s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}
function num(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Number.POSITIVE_INFINITY) return "+Inf";
  if (v === Number.NEGATIVE_INFINITY) return "-Inf";
  return String(v);
}
function labelText(labels: Readonly<Record<string, string>>, le?: string): string {
  const parts: string[] = [];
  for (const k in labels) parts.push(`${k}="${escapeLabel(labels[k] as string)}"`);
  if (le !== undefined) parts.push(`le="${le}"`);
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

/** Renders families (from {@link IstioMetrics.collect}) as Prometheus text. */
export function formatPrometheusText(source: IstioMetrics | readonly MetricFamily[]): string {
  const families = Array.isArray(source)
    ? (source as readonly MetricFamily[])
    : (source as IstioMetrics).collect();
  const out: string[] = [];
  for (const f of families) {
    out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`);
    out.push(`# TYPE ${f.name} ${f.type}`);
    if (f.type === "histogram") {
      for (const s of f.samples) {
        for (let i = 0; i < f.buckets.length; i++) {
          out.push(
            `${f.name}_bucket${labelText(s.labels, num(f.buckets[i] as number))} ${num(s.cumulative[i] as number)}`,
          );
        }
        out.push(`${f.name}_bucket${labelText(s.labels, "+Inf")} ${num(s.count)}`);
        out.push(`${f.name}_sum${labelText(s.labels)} ${num(s.sum)}`);
        out.push(`${f.name}_count${labelText(s.labels)} ${num(s.count)}`);
      }
    } else {
      for (const s of f.samples) out.push(`${f.name}${labelText(s.labels)} ${num(s.value)}`);
    }
  }
  return `${out.join("\n")}\n`;
}
