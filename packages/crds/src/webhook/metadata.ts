// istiod's validateMetadata, the wrapper RegisterValidateFunc puts around every kind's checks: the
// annotations users may not set, checked first; the first one found rejects the resource and the
// kind's own checks do not run. One copy for all Istio kinds (security kinds included).
import { type Obj, obj, str } from "./common.js";
import type { Report } from "./report.js";

const PARSE_BOOL = [
  "1",
  "t",
  "T",
  "TRUE",
  "true",
  "True",
  "0",
  "f",
  "F",
  "FALSE",
  "false",
  "False",
];

/** The name istiod sees: the API server fills a generated name in before webhooks run. */
export function webhookName(meta: Obj): string {
  if (str(meta.name) !== "") return str(meta.name);
  // any 5-character suffix stands in for the generated one
  return str(meta.generateName) !== "" ? `${str(meta.generateName)}xxxxx` : "";
}

/** The namespace istiod sees: a missing one is the one kubectl applies by default. */
export function webhookNamespace(meta: Obj): string {
  return str(meta.namespace) !== "" ? str(meta.namespace) : "default";
}

/** Reports the first metadata problem istiod rejects `doc` for; true when there was one. */
export function checkIstioMetadata(r: Report, kind: string, doc: Record<string, unknown>): boolean {
  const meta = obj(doc.metadata) ?? {};
  const annotations = obj(meta.annotations) ?? {};
  const id = `${webhookNamespace(meta)}/${webhookName(meta)}`;
  const at = (a: string): readonly ["metadata", "annotations", string] => [
    "metadata",
    "annotations",
    a,
  ];
  const dryRun = annotations["istio.io/dry-run"];
  if (dryRun !== undefined) {
    // only AuthorizationPolicy supports it, for ALLOW and DENY, with a Go ParseBool value
    if (kind !== "AuthorizationPolicy") {
      r.error(
        at("istio.io/dry-run"),
        `${id} has unsupported annotation istio.io/dry-run, please remove the annotation`,
      );
      return true;
    }
    const spec = obj(doc.spec) ?? {};
    const action = typeof spec.action === "string" ? spec.action : "ALLOW";
    if (action !== "ALLOW" && action !== "DENY") {
      r.error(
        at("istio.io/dry-run"),
        `the annotation istio.io/dry-run currently only supports action ALLOW/DENY, found action ${action} in ${id}`,
      );
      return true;
    }
    if (!PARSE_BOOL.includes(String(dryRun))) {
      r.error(
        at("istio.io/dry-run"),
        `${id} has annotation istio.io/dry-run with invalid value (${String(dryRun)}): strconv.ParseBool: parsing ${JSON.stringify(String(dryRun))}: invalid syntax`,
      );
      return true;
    }
  }
  if ("internal.istio.io/webhook-always-reject" in annotations) {
    r.error(
      at("internal.istio.io/webhook-always-reject"),
      '"internal.istio.io/webhook-always-reject" annotation found, rejecting',
    );
    return true;
  }
  // escalates privileges: banned from resources users write
  for (const a of ["internal.istio.io/parent-namespace", "internal.istio.io/parents"]) {
    if (a in annotations) {
      r.error(at(a), `${JSON.stringify(a)} annotation found, this may not be set by users`);
      return true;
    }
  }
  return false;
}
