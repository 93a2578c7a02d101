// Protobuf encode/decode for the workload API, by field number (protobuf-es over the generated
// descriptors in ./gen). Unknown fields are kept on decode and written back on encode, so a message
// from a newer istiod survives a round trip. Bytes that are not a valid encoding give an
// XdsTypesError with code ERR_XDS_PROTO_DECODE, never a crash.

import {
  create,
  type DescMessage,
  fromBinary,
  fromJson,
  type JsonValue,
  type MessageInitShape,
  type MessageShape,
  toBinary,
  toJson,
} from "@bufbuild/protobuf";
import { XdsTypesError } from "../errors.js";
import {
  type Authorization as XdsAuthorization,
  AuthorizationSchema as XdsAuthorizationSchema,
} from "./gen/authorization_pb.js";
import {
  type Address as XdsAddress,
  AddressSchema as XdsAddressSchema,
  type Service as XdsService,
  ServiceSchema as XdsServiceSchema,
  type Workload as XdsWorkload,
  WorkloadSchema as XdsWorkloadSchema,
} from "./gen/workload_pb.js";

/** xDS type URL of ztunnel's address resources (Workload or Service). */
export const ADDRESS_TYPE_URL = "type.googleapis.com/istio.workload.Address";
/** xDS type URL of ztunnel's authorization resources. */
export const AUTHORIZATION_TYPE_URL = "type.googleapis.com/istio.security.Authorization";

/** Creates a workload-API message of `schema` from a partial initializer (unset fields get proto3 defaults). */
export function createMessage<Desc extends DescMessage>(
  schema: Desc,
  init?: MessageInitShape<Desc>,
): MessageShape<Desc> {
  return create(schema, init);
}

/** Encodes any workload-API message (unknown fields included). */
export function encodeMessage<Desc extends DescMessage>(
  schema: Desc,
  message: MessageShape<Desc>,
): Uint8Array {
  try {
    return toBinary(schema, message);
  } catch (cause) {
    throw new XdsTypesError(
      "ERR_XDS_PROTO_ENCODE",
      `cannot encode ${schema.typeName}: ${(cause as Error)?.message ?? String(cause)}; check that every field holds a value of its proto type`,
      { cause },
    );
  }
}

/** Decodes any workload-API message; throws XdsTypesError `ERR_XDS_PROTO_DECODE` on malformed bytes. */
export function decodeMessage<Desc extends DescMessage>(
  schema: Desc,
  bytes: Uint8Array,
): MessageShape<Desc> {
  if (!(bytes instanceof Uint8Array)) {
    throw new XdsTypesError(
      "ERR_XDS_PROTO_DECODE",
      `cannot decode ${schema.typeName}: expected a Uint8Array, got ${typeof bytes}`,
    );
  }
  try {
    return fromBinary(schema, bytes);
  } catch (cause) {
    throw new XdsTypesError(
      "ERR_XDS_PROTO_DECODE",
      `cannot decode ${schema.typeName} from ${bytes.length} bytes: ${(cause as Error)?.message ?? String(cause)}; the bytes are not a protobuf encoding of this message (wrong type URL or truncated resource?)`,
      { cause },
    );
  }
}

/** Encodes an `istio.workload.Address` (the xDS resource wrapping a Workload or a Service). */
export function encodeAddress(message: XdsAddress): Uint8Array {
  return encodeMessage(XdsAddressSchema, message);
}
/** Decodes an `istio.workload.Address`. */
export function decodeAddress(bytes: Uint8Array): XdsAddress {
  return decodeMessage(XdsAddressSchema, bytes);
}
/** Encodes an `istio.workload.Workload`. */
export function encodeWorkload(message: XdsWorkload): Uint8Array {
  return encodeMessage(XdsWorkloadSchema, message);
}
/** Decodes an `istio.workload.Workload`. */
export function decodeWorkload(bytes: Uint8Array): XdsWorkload {
  return decodeMessage(XdsWorkloadSchema, bytes);
}
/** Encodes an `istio.workload.Service`. */
export function encodeService(message: XdsService): Uint8Array {
  return encodeMessage(XdsServiceSchema, message);
}
/** Decodes an `istio.workload.Service`. */
export function decodeService(bytes: Uint8Array): XdsService {
  return decodeMessage(XdsServiceSchema, bytes);
}
/** Encodes an `istio.security.Authorization`. */
export function encodeAuthorization(message: XdsAuthorization): Uint8Array {
  return encodeMessage(XdsAuthorizationSchema, message);
}
/** Decodes an `istio.security.Authorization`. */
export function decodeAuthorization(bytes: Uint8Array): XdsAuthorization {
  return decodeMessage(XdsAuthorizationSchema, bytes);
}

// ---------------------------------------------------------------- JSON / YAML (proto3 JSON mapping)

function message(cause: unknown): string {
  return (cause as Error)?.message ?? String(cause);
}

/**
 * Reads a workload-API message from its proto3 JSON form (as istiod's testdata and debug endpoints
 * write it; parse YAML to a value first). Unknown fields are rejected. Throws XdsTypesError
 * `ERR_XDS_PROTO_DECODE` with the reason.
 */
export function messageFromJson<Desc extends DescMessage>(
  schema: Desc,
  json: unknown,
): MessageShape<Desc> {
  try {
    return fromJson(schema, json as JsonValue);
  } catch (cause) {
    throw new XdsTypesError(
      "ERR_XDS_PROTO_DECODE",
      `cannot read ${schema.typeName} from JSON: ${message(cause)}`,
      { cause },
    );
  }
}

/** Writes a workload-API message in proto3 JSON form (camelCase names, enums by name, bytes base64). */
export function messageToJson<Desc extends DescMessage>(
  schema: Desc,
  msg: MessageShape<Desc>,
): JsonValue {
  try {
    return toJson(schema, msg);
  } catch (cause) {
    throw new XdsTypesError(
      "ERR_XDS_PROTO_ENCODE",
      `cannot write ${schema.typeName} as JSON: ${message(cause)}`,
      { cause },
    );
  }
}

/**
 * Field names of `Authorization` field 5 and below: ztunnel's (`rules[].clauses[].matches`) or
 * istio/istio's (`groups[].rules[].matches`). Same field numbers, so the same wire bytes.
 */
export type AuthorizationJsonNaming = "ztunnel" | "istio";

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function renameKey(v: unknown, from: string, to: string): unknown {
  if (!isObject(v) || !(from in v)) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k === from ? to : k] = x;
  return out;
}

/**
 * Reads an `istio.security.Authorization` from proto3 JSON in either naming: ztunnel's
 * (`rules: [{clauses: [{matches}]}]`) or istio/istio's (`groups: [{rules: [{matches}]}]`, as in
 * istiod's ambient testdata). Throws XdsTypesError `ERR_XDS_PROTO_DECODE`.
 */
export function authorizationFromJson(json: unknown): XdsAuthorization {
  let value = json;
  if (isObject(json) && "groups" in json) {
    if ("rules" in json) {
      throw new XdsTypesError(
        "ERR_XDS_PROTO_DECODE",
        "cannot read istio.security.Authorization from JSON: it has both `groups` (istio naming) and `rules` (ztunnel naming); use one",
      );
    }
    const groups = json.groups;
    value = {
      ...(renameKey(json, "groups", "rules") as Record<string, unknown>),
      rules: Array.isArray(groups) ? groups.map((g) => renameKey(g, "rules", "clauses")) : groups,
    };
  }
  return messageFromJson(XdsAuthorizationSchema, value);
}

/** Writes an `istio.security.Authorization` as proto3 JSON in the chosen naming (default ztunnel's). */
export function authorizationToJson(
  msg: XdsAuthorization,
  naming: AuthorizationJsonNaming = "ztunnel",
): JsonValue {
  const json = messageToJson(XdsAuthorizationSchema, msg);
  if (naming === "ztunnel" || !isObject(json)) return json;
  const rules = json.rules;
  return renameKey(
    {
      ...json,
      ...(Array.isArray(rules)
        ? { rules: rules.map((r) => renameKey(r, "clauses", "rules")) }
        : {}),
    },
    "rules",
    "groups",
  ) as JsonValue;
}
