// The checks Istio's validating webhook (and `istioctl validate`) runs for AuthorizationPolicy,
// PeerAuthentication and RequestAuthentication. Their rules live once, in @ambientkit/authz
// (`checkSecurityResource`); this module adds the webhook's annotation checks and keeps each
// issue's path segments so that validateYaml can give it a line and column.
import { checkSecurityResource } from "@ambientkit/authz";
import type { InternalIssue, PathSeg } from "./model.js";
import { type Obj, obj } from "./webhook/common.js";
import { Report } from "./webhook/report.js";

function checkIstioMetadata(c: Report, kind: string, doc: Obj, spec: Obj): void {
  const annotations = obj(obj(doc.metadata)?.annotations) ?? {};
  const m = obj(doc.metadata) ?? {};
  const id = `${String(m.namespace ?? "default")}/${String(m.name ?? "")}`;
  const dryRun = annotations["istio.io/dry-run"];
  if (dryRun !== undefined) {
    const at: PathSeg[] = ["metadata", "annotations", "istio.io/dry-run"];
    if (kind !== "AuthorizationPolicy") {
      c.error(
        at,
        `${id} has unsupported annotation istio.io/dry-run, please remove the annotation`,
      );
    } else {
      const action = typeof spec.action === "string" ? spec.action : "ALLOW";
      if (action !== "ALLOW" && action !== "DENY") {
        c.error(
          at,
          `the annotation istio.io/dry-run currently only supports action ALLOW/DENY, found action ${action} in ${id}`,
        );
      } else if (
        !["1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"].includes(
          String(dryRun),
        )
      ) {
        c.error(
          at,
          `${id} has annotation istio.io/dry-run with invalid value (${String(dryRun)}): strconv.ParseBool: parsing ${JSON.stringify(String(dryRun))}: invalid syntax`,
        );
      }
    }
  }
  for (const a of ["internal.istio.io/webhook-always-reject"]) {
    if (a in annotations)
      c.error(["metadata", "annotations", a], `${JSON.stringify(a)} annotation found, rejecting`);
  }
  for (const a of ["internal.istio.io/parent-namespace", "internal.istio.io/parents"]) {
    if (a in annotations)
      c.error(
        ["metadata", "annotations", a],
        `${JSON.stringify(a)} annotation found, this may not be set by users`,
      );
  }
}

/** Runs Istio's webhook checks for `doc` (an Istio security kind) and appends IST0106/IST0133 issues. */
export function checkIstioSemantics(
  kind: string,
  doc: Record<string, unknown>,
  out: InternalIssue[],
): void {
  const spec = obj(doc.spec) ?? {};
  checkIstioMetadata(new Report(out), kind, doc, spec);
  checkSecurityResource(doc, (issue, segs) => {
    out.push({ ...issue, segs: [...segs] });
  });
}
