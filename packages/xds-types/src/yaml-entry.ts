// @ambientkit/xds-types/yaml — a YAML stream read one bounded document at a time (depth, size and
// alias limits), shared by the LOCAL_XDS parser and @ambientkit/crds. Needs the `yaml` package.
export {
  checkAliases,
  checkTree,
  type DocumentProblem,
  LinePositions,
  MAX_DOCUMENT_CHARS,
  MAX_NESTING_DEPTH,
  readYamlStream,
  type StreamDocument,
} from "./yaml-stream.js";
