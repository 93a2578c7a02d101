import { formatIssuePath } from "@ambientkit/xds-types";
// metadata checks the API server applies to every custom resource (ObjectMeta validation).
import type { InternalIssue, PathSeg } from "./model.js";
import type { ValidationIssue } from "./types.js";

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

const SUBDOMAIN_HINT =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_HINT =
  "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

export function isDns1123Subdomain(s: string): boolean {
  return s.length <= 253 && DNS1123_SUBDOMAIN.test(s);
}

function qualifiedNameProblem(key: string): string | undefined {
  const slash = key.indexOf("/");
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix === "" || !isDns1123Subdomain(prefix))) {
    return `prefix part ${SUBDOMAIN_HINT}`;
  }
  if (name === "" || name.length > 63 || !QUALIFIED_NAME.test(name) || name.includes("/")) {
    return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') and be at most 63 characters";
  }
  return undefined;
}

function push(
  out: InternalIssue[],
  code: ValidationIssue["code"],
  segs: PathSeg[],
  message: string,
): void {
  const path = formatIssuePath(segs);
  out.push({ code, severity: "error", path, message: `${path}: ${message}`, segs });
}

/** ObjectMeta checks: name (or generateName) required and a DNS-1123 subdomain; namespace, labels, annotations syntax. */
export function checkMetadata(metadata: unknown, namespaced: boolean, out: InternalIssue[]): void {
  if (metadata === undefined || metadata === null) {
    push(
      out,
      "metadata/name",
      ["metadata", "name"],
      "Required value: name or generateName is required",
    );
    return;
  }
  if (typeof metadata !== "object" || Array.isArray(metadata)) {
    push(out, "metadata/name", ["metadata"], `Invalid value: must be an object`);
    return;
  }
  const m = metadata as Record<string, unknown>;
  const name = m.name;
  if (name === undefined || name === null || name === "") {
    if (typeof m.generateName !== "string" || m.generateName === "") {
      push(
        out,
        "metadata/name",
        ["metadata", "name"],
        "Required value: name or generateName is required",
      );
    }
  } else if (typeof name !== "string") {
    push(out, "metadata/name", ["metadata", "name"], `Invalid value: must be a string`);
  } else if (!isDns1123Subdomain(name)) {
    push(
      out,
      "metadata/name",
      ["metadata", "name"],
      `Invalid value: ${JSON.stringify(name)}: ${SUBDOMAIN_HINT}`,
    );
  }
  const ns = m.namespace;
  if (ns !== undefined && ns !== null && ns !== "" && namespaced) {
    if (typeof ns !== "string" || ns.length > 63 || !DNS1123_LABEL.test(ns)) {
      push(
        out,
        "metadata/namespace",
        ["metadata", "namespace"],
        `Invalid value: ${JSON.stringify(ns)}: ${LABEL_HINT}`,
      );
    }
  }
  if (m.labels !== undefined && m.labels !== null) checkMap(m.labels, "labels", out);
  if (m.annotations !== undefined && m.annotations !== null) {
    checkMap(m.annotations, "annotations", out);
  }
}

/** Keys are qualified names; values strings (label values also limited in syntax and length). */
function checkMap(map: unknown, field: "labels" | "annotations", out: InternalIssue[]): void {
  const code = field === "labels" ? "metadata/labels" : "metadata/annotations";
  if (typeof map !== "object" || map === null || Array.isArray(map)) {
    push(out, code, ["metadata", field], "Invalid value: must be a map of strings");
    return;
  }
  const entries = map as Record<string, unknown>;
  for (const key in entries) {
    if (!Object.hasOwn(entries, key)) continue;
    const value = entries[key];
    const problem = qualifiedNameProblem(key);
    if (problem !== undefined) {
      push(
        out,
        code,
        ["metadata", field, key],
        `Invalid value: ${JSON.stringify(key)}: ${problem}`,
      );
    }
    if (typeof value !== "string") {
      push(
        out,
        code,
        ["metadata", field, key],
        `Invalid value: ${JSON.stringify(value)}: must be a string (quote it in YAML)`,
      );
    } else if (field === "labels" && (value.length > 63 || !LABEL_VALUE.test(value))) {
      push(
        out,
        code,
        ["metadata", field, key],
        `Invalid value: ${JSON.stringify(value)}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character, at most 63 characters`,
      );
    }
  }
}
