// @ambientkit/xds-types/local-xds — ztunnel's LOCAL_XDS YAML format. Needs the `yaml` package
// (an optional peer dependency: the workload API at the root does not).
export type { Issue, IssueSeverity, Result } from "./issue.js";
export {
  type LocalXdsIssue,
  type LocalXdsIssueCode,
  type LocalXdsParseResult,
  parseLocalXds,
  serializeLocalXds,
} from "./workload/local-xds.js";
