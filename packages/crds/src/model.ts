// Types every step of the validation pipeline shares (paths are written by xds-types' formatIssuePath). A leaf module (it
// imports only types.ts) so that the steps can import it without importing each other in a cycle.
import type { ValidationIssue } from "./types.js";

export type PathSeg = string | number;

/** An issue as the pipeline builds it: with its path as segments, to find its line and column. */
export type InternalIssue = ValidationIssue & { segs?: PathSeg[] };

/** A structural schema node (OpenAPI v3 subset plus x-kubernetes-* extensions). */
export interface StructuralSchema {
  type?: string;
  properties?: Record<string, StructuralSchema>;
  items?: StructuralSchema;
  additionalProperties?: StructuralSchema | boolean;
  required?: string[];
  default?: unknown;
  nullable?: boolean;
  "x-kubernetes-preserve-unknown-fields"?: boolean;
  "x-kubernetes-int-or-string"?: boolean;
  "x-kubernetes-list-type"?: "atomic" | "set" | "map";
  "x-kubernetes-list-map-keys"?: string[];
  "x-kubernetes-validations"?: Array<{ rule: string; message?: string }>;
  [key: string]: unknown;
}
