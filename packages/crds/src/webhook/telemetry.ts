// Telemetry: istio/istio pkg/config/validation ValidateTelemetry and validateTelemetry* (validation.go,
// validateTelemetryFilter in validation_istiod.go).
import { parse } from "@bufbuild/cel";
import {
  checkSelectorAndTargets,
  entries,
  isSet,
  list,
  memo,
  type Obj,
  obj,
  str,
  wrapped,
} from "./common.js";
import type { PathSeg, Report } from "./report.js";

type At = readonly PathSeg[];

/** validateTelemetryFilter parses the expression (cel-go's Parse); memoised, as filters repeat. */
const celProblem = memo((expression: string) => {
  try {
    parse(expression);
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
});

function checkProviders(r: Report, at: At, providers: unknown): void {
  const ps = list(providers);
  for (let i = 0; i < ps.length; i++) {
    if (str(obj(ps[i])?.name) === "") {
      r.error([...at, "providers", i], "providers.name may not be empty");
      return;
    }
  }
}

export function checkTelemetry(r: Report, spec: Obj): void {
  checkSelectorAndTargets(r, spec);
  list(spec.metrics).forEach((m, i) => {
    const at: PathSeg[] = ["spec", "metrics", i];
    const metrics = obj(m);
    if (metrics === undefined) return;
    checkProviders(r, at, metrics.providers);
    list(metrics.overrides).forEach((o, j) => {
      const oat: PathSeg[] = [...at, "overrides", j];
      const override = obj(o);
      if (override === undefined) {
        r.error(oat, "tagOverrides may not be null");
        return;
      }
      for (const [name, t] of entries(override.tagOverrides)) {
        const tat: PathSeg[] = [...oat, "tagOverrides", name];
        if (name === "") r.warn(tat, "tagOverrides.name may not be empty");
        const to = obj(t);
        if (to === undefined) {
          r.error(tat, "tagOverrides may not be null");
          continue;
        }
        const op = str(to.operation) === "" ? "UPSERT" : str(to.operation);
        if (op === "UPSERT" && str(to.value) === "")
          r.error(tat, "tagOverrides.value must be set when operation is UPSERT");
        if (op === "REMOVE" && str(to.value) !== "")
          r.error(tat, "tagOverrides.value may only be set when operation is UPSERT");
      }
      const match = obj(override.match);
      if (match !== undefined && "customMetric" in match && str(match.customMetric) === "") {
        r.error([...oat, "match", "customMetric"], "customMetric may not be empty");
      }
    });
  });
  const tracing = list(spec.tracing);
  if (tracing.length > 1)
    r.warn(["spec", "tracing"], "multiple tracing is not currently supported");
  tracing.forEach((t, i) => {
    const at: PathSeg[] = ["spec", "tracing", i];
    const tr = obj(t);
    if (tr === undefined) return;
    if (list(tr.providers).length > 1)
      r.warn([...at, "providers"], "multiple providers is not currently supported");
    checkProviders(r, at, tr.providers);
    const pct = wrapped(tr.randomSamplingPercentage) ?? 0;
    if (pct < 0 || pct > 100)
      r.error(
        [...at, "randomSamplingPercentage"],
        "randomSamplingPercentage must be in range [0.0, 100.0]",
      );
    for (const [name, tag] of entries(tr.customTags)) {
      const tat: PathSeg[] = [...at, "customTags", name];
      if (name === "") r.error(tat, "tag name may not be empty");
      const ct = obj(tag);
      if (ct === undefined) {
        r.error(tat, `tag '${name}' may not have a nil value`);
        continue;
      }
      if (isSet(ct.literal) && str(obj(ct.literal)?.value) === "")
        r.error(tat, "literal tag value may not be empty");
      else if (isSet(ct.header) && str(obj(ct.header)?.name) === "")
        r.error(tat, "header tag name may not be empty");
      else if (isSet(ct.environment) && str(obj(ct.environment)?.name) === "") {
        r.error(tat, "environment tag name may not be empty");
      }
    }
  });
  list(spec.accessLogging).forEach((l, i) => {
    const at: PathSeg[] = ["spec", "accessLogging", i];
    const logging = obj(l);
    if (logging === undefined) return;
    const filter = obj(logging.filter);
    if (filter !== undefined) {
      const p = celProblem(str(filter.expression));
      if (p !== undefined)
        r.error([...at, "filter", "expression"], `must be a valid CEL expression, ${p}`);
    }
    checkProviders(r, at, logging.providers);
  });
}
