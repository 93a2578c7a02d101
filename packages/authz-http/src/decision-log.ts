// Decision log and counters. Entries are plain values for any sink (pino, a file, OTLP); counters
// are @ambientkit/telemetry MetricFamily snapshots, scraped beside the Istio metrics.
import type { DryRunResult, IgnoredAttribute } from "@ambientkit/authz";
import type { MetricFamily } from "@ambientkit/telemetry";
import type { AppDecision } from "./authorizer.js";

/** One logged decision. */
export interface DecisionLogEntry {
  readonly time: string;
  readonly decision: "allow" | "deny";
  /** false in dry-run mode: the request went through whatever the decision. */
  readonly enforced: boolean;
  readonly decidedBy: string;
  readonly rule?: number;
  readonly dryRun: readonly DryRunResult[];
  readonly ignored: readonly IgnoredAttribute[];
  readonly principal: string | null;
  readonly identitySource: string;
  readonly method: string;
  readonly authority: string;
  readonly path: string;
  readonly sourceIp: string;
  readonly policyRevision: string | null;
  readonly notes: readonly string[];
  readonly error?: { readonly code: string; readonly message: string };
}

export type DecisionSink = (entry: DecisionLogEntry) => void;

export interface DecisionLogOptions {
  readonly sink: DecisionSink;
  /** Fraction of allows logged (default 1). */
  readonly sampleAllow?: number;
  /** Fraction of denies logged (default 1). Errors and notes are always logged. */
  readonly sampleDeny?: number;
  /** Random source in [0,1); injectable for reproducible sampling. */
  readonly random?: () => number;
}

/** Counters of an app's decisions and policy reloads. */
export class AuthzHttpMetrics {
  readonly #decisions = new Map<string, { labels: Record<string, string>; value: number }>();
  readonly #reloads = new Map<string, number>();

  record(d: AppDecision): void {
    const by =
      d.decidedBy.startsWith("implicit:") ||
      d.decidedBy.startsWith("error:") ||
      d.decidedBy.startsWith("custom:")
        ? d.decidedBy
        : "policy";
    const key = `${d.decision}|${d.enforced}|${by}|${d.identity.source}`;
    const cur = this.#decisions.get(key);
    if (cur) cur.value++;
    else
      this.#decisions.set(key, {
        labels: {
          decision: d.decision,
          enforced: String(d.enforced),
          decided_by: by,
          identity_source: d.identity.source,
        },
        value: 1,
      });
  }

  reload(result: "swapped" | "rejected"): void {
    this.#reloads.set(result, (this.#reloads.get(result) ?? 0) + 1);
  }

  decisions(filter: { decision?: "allow" | "deny" } = {}): number {
    let n = 0;
    for (const s of this.#decisions.values())
      if (!filter.decision || s.labels.decision === filter.decision) n += s.value;
    return n;
  }

  collect(): MetricFamily[] {
    return [
      {
        name: "ambientkit_authz_http_decisions_total",
        help: "Authorization decisions taken in the app, by outcome, deciding kind and identity source",
        type: "counter",
        samples: [...this.#decisions.values()].map((s) => ({
          labels: { ...s.labels },
          value: s.value,
        })),
      },
      {
        name: "ambientkit_authz_http_policy_reloads_total",
        help: "Policy set updates, swapped in or rejected (the last good set kept serving)",
        type: "counter",
        samples: [...this.#reloads].map(([result, value]) => ({ labels: { result }, value })),
      },
    ];
  }
}

/** Turns a decision into a log entry and sends it when sampled. */
export function logDecision(options: DecisionLogOptions, d: AppDecision): void {
  const always = d.error !== undefined || d.identity.notes.length > 0;
  const rate = d.decision === "allow" ? (options.sampleAllow ?? 1) : (options.sampleDeny ?? 1);
  if (!always && rate < 1 && (options.random ?? Math.random)() >= rate) return;
  options.sink({
    time: new Date().toISOString(),
    decision: d.decision,
    enforced: d.enforced,
    decidedBy: d.decidedBy,
    ...(d.rule !== undefined ? { rule: d.rule } : {}),
    dryRun: d.dryRun,
    ignored: d.ignored,
    principal: d.identity.principal,
    identitySource: d.identity.source,
    method: d.request.method,
    authority: d.request.authority,
    path: d.request.path,
    sourceIp: d.request.sourceIp,
    policyRevision: d.policyRevision,
    notes: d.identity.notes,
    ...(d.error ? { error: d.error } : {}),
  });
}
