// The checks Istio's validating webhook (and `istioctl validate`) runs for AuthorizationPolicy,
// PeerAuthentication and RequestAuthentication. Their rules live once, in @ambientkit/authz
// (`checkSecurityResource`); this module runs the webhook's metadata checks (webhook/metadata.ts) first and keeps each
// issue's path segments so that validateYaml can give it a line and column.
import { checkSecurityResource } from "@ambientkit/authz";
import type { InternalIssue } from "./model.js";
import { checkIstioMetadata } from "./webhook/metadata.js";
import { Report } from "./webhook/report.js";

/** Runs Istio's webhook checks for `doc` (an Istio security kind) and appends IST0106/IST0133 issues. */
export function checkIstioSemantics(
  kind: string,
  doc: Record<string, unknown>,
  out: InternalIssue[],
): void {
  // istiod rejects on the first metadata problem without running the kind's own checks
  if (checkIstioMetadata(new Report(out), kind, doc)) return;
  checkSecurityResource(doc, (issue, segs) => {
    out.push({ ...issue, segs: [...segs] });
  });
}
