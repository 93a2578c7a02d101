import { formatIssuePath } from "@ambientkit/xds-types";
// The one place the webhook checks create issues: Istio's `Validation` is (Warning, error), an
// error is analyzer code IST0106 and a warning IST0133 (istio-semantics.ts reports through it too). Keeping the
// issue shape here means a change to it touches this file only.
import type { InternalIssue, PathSeg } from "../model.js";

export type { PathSeg };

/** Collects the errors and warnings of one document, each at the path of its field. */
export class Report {
  constructor(
    readonly out: InternalIssue[],
    private readonly warnings = true,
  ) {}

  /** The same report without warnings: where Istio joins a part's result with `appendErrors`, its warnings are lost. */
  errorsOnly(): Report {
    return this.warnings ? new Report(this.out, false) : this;
  }

  error(segs: readonly PathSeg[], message: string): void {
    this.out.push({
      code: "IST0106",
      severity: "error",
      path: formatIssuePath(segs),
      message,
      segs: [...segs],
    });
  }

  warn(segs: readonly PathSeg[], message: string): void {
    if (!this.warnings) return;
    this.out.push({
      code: "IST0133",
      severity: "warning",
      path: formatIssuePath(segs),
      message,
      segs: [...segs],
    });
  }
}
