import { formatIssuePath } from "@ambientkit/xds-types";
// Turns ajv errors into issues worded like the API server's OpenAPI validation (kube-openapi).

import type { InternalIssue, PathSeg } from "./model.js";
import type { ErrorObject } from "./registry.js";
import type { IssueCode } from "./types.js";

/** Path segments of a JSON pointer into `data`, and the value there. */
function pointerToPath(pointer: string, data: unknown): [PathSeg[], unknown] {
  const out: PathSeg[] = [];
  let node: unknown = data;
  let start = 1;
  while (start <= pointer.length && pointer !== "") {
    let end = pointer.indexOf("/", start);
    if (end < 0) end = pointer.length;
    let seg = pointer.slice(start, end);
    if (seg.includes("~")) seg = seg.replace(/~1/g, "/").replace(/~0/g, "~");
    if (Array.isArray(node)) {
      const i = Number(seg);
      out.push(i);
      node = node[i];
    } else {
      out.push(seg);
      node =
        typeof node === "object" && node !== null
          ? (node as Record<string, unknown>)[seg]
          : undefined;
    }
    start = end + 1;
  }
  return [out, node];
}

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v;
}

function quote(v: unknown): string {
  return typeof v === "string" ? JSON.stringify(v) : (JSON.stringify(v) ?? String(v));
}

const COMBINATOR_BRANCH = /\/(?:oneOf|anyOf|allOf|not)\//;

function isCombinatorBranch(schemaPath: string): boolean {
  return COMBINATOR_BRANCH.test(schemaPath);
}

/** Issues for ajv's errors on `data` (the defaulted document). */
export function schemaIssues(errors: readonly ErrorObject[], data: unknown): InternalIssue[] {
  const out: InternalIssue[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    // Errors inside oneOf/anyOf/not branches are explained by the combinator's own error.
    if (isCombinatorBranch(e.schemaPath)) continue;
    const [segs, value] = pointerToPath(e.instancePath, data);
    const params = e.params as Record<string, unknown>;
    let code: IssueCode = `schema/${e.keyword}`;
    let segsOut = segs;
    let path = formatIssuePath(segs);
    let message: string;
    const at = path === "" ? "<root>" : path;
    switch (e.keyword) {
      case "required": {
        segsOut = [...segs, String(params.missingProperty)];
        path = formatIssuePath(segsOut);
        message = `${path}: Required value`;
        break;
      }
      case "additionalProperties": {
        code = "unknown-field";
        segsOut = [...segs, String(params.additionalProperty)];
        path = formatIssuePath(segsOut);
        message = `${path}: unknown field "${params.additionalProperty}" (not declared in the schema; the API server would prune or reject it)`;
        break;
      }
      case "type":
        message = `${at} in body must be of type ${params.type}: "${typeName(value)}"`;
        break;
      case "enum": {
        const allowed = (params.allowedValues as unknown[]).map(quote).join(", ");
        message = `${at}: Unsupported value: ${quote(value)}: supported values: ${allowed}`;
        break;
      }
      case "pattern":
        message = `${at} in body should match '${params.pattern}'`;
        break;
      case "minLength":
        message = `${at} in body should be at least ${params.limit} chars long`;
        break;
      case "maxLength":
        message = `${at} in body may not be longer than ${params.limit}`;
        break;
      case "minimum":
        message = `${at}: Invalid value: ${quote(value)}: ${at} in body should be greater than or equal to ${params.limit}`;
        break;
      case "exclusiveMinimum":
        message = `${at}: Invalid value: ${quote(value)}: ${at} in body should be greater than ${params.limit}`;
        break;
      case "maximum":
        message = `${at}: Invalid value: ${quote(value)}: ${at} in body should be less than or equal to ${params.limit}`;
        break;
      case "exclusiveMaximum":
        message = `${at}: Invalid value: ${quote(value)}: ${at} in body should be less than ${params.limit}`;
        break;
      case "minItems":
        message = `${at} in body should have at least ${params.limit} items`;
        break;
      case "maxItems":
        message = `${at}: Too many: ${Array.isArray(value) ? value.length : "?"}: must have at most ${params.limit} items`;
        break;
      case "minProperties":
        message = `${at} in body should have at least ${params.limit} properties`;
        break;
      case "maxProperties":
        message = `${at} in body should have at most ${params.limit} properties`;
        break;
      case "format":
        message = `${at} in body must be of type ${params.format}: ${quote(value)}`;
        break;
      case "oneOf":
        message =
          params.passingSchemas === null
            ? `${at} in body must validate one and only one schema (oneOf)`
            : `${at} in body must validate one and only one schema (oneOf): more than one of the mutually exclusive fields is set`;
        break;
      case "anyOf":
        message = `${at} in body must be of type integer,string: "${typeName(value)}"`;
        if (typeof value !== "object" || value === null) code = "schema/type";
        else message = `${at} in body must validate at least one schema (anyOf)`;
        break;
      case "not":
        message = `${at} in body must not validate the schema (not)`;
        break;
      default:
        message = `${at}: ${e.message ?? e.keyword}`;
    }
    const key = `${code}\u0000${message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ code, severity: "error", path, message, segs: segsOut });
  }
  return out;
}
