// The one wire→domain step of the xDS client: a DeltaDiscoveryResponse's resources through
// @ambientkit/xds-types' decoding and conversion, then into the state store — all or nothing.
// Separate from the stream handling so it can be measured and reused (e.g. replaying a recorded push).
import {
  ADDRESS_TYPE_URL,
  type AddressResource,
  AUTHORIZATION_TYPE_URL,
  type Authorization,
  addressFromProto,
  authorizationFromProto,
  authorizationKey,
  decodeAddress,
  decodeAuthorization,
} from "@ambientkit/xds-types";
import { XdsClientError } from "./errors.js";
import type { DeltaDiscoveryResponse } from "./gen/discovery_pb.js";
import type { MeshStateStore, Named, ResourceKind } from "./state.js";

/** The type URL of each resource kind. */
export const TYPE_URLS: Readonly<Record<ResourceKind, string>> = {
  address: ADDRESS_TYPE_URL,
  authorization: AUTHORIZATION_TYPE_URL,
};

/** What applying one response came to: applied (ACK it) or rejected with nothing changed (NACK). */
export type ApplyResult =
  | { readonly ok: true; readonly kind: ResourceKind }
  | { readonly ok: false; readonly error: XdsClientError };

function rejected(message: string, cause?: unknown): XdsClientError {
  return new XdsClientError(
    "ERR_XDS_CLIENT_REJECTED",
    message,
    cause === undefined ? {} : { cause },
  );
}

/**
 * Applies one response to `state` if every resource in it decodes and converts; otherwise changes
 * nothing and returns the first problem. `kinds` are the kinds subscribed to (others are refused).
 */
export function applyDeltaResponse(
  state: MeshStateStore,
  res: DeltaDiscoveryResponse,
  kinds: readonly ResourceKind[] = ["address", "authorization"],
): ApplyResult {
  const kind = (Object.keys(TYPE_URLS) as ResourceKind[]).find((k) => TYPE_URLS[k] === res.typeUrl);
  try {
    if (kind === undefined || !kinds.includes(kind))
      throw rejected(
        `unexpected resource type ${JSON.stringify(res.typeUrl)}: this client subscribed to ${kinds.map((k) => TYPE_URLS[k]).join(", ")}`,
      );
    if (kind === "address") {
      state.applyAddresses(
        convert(res, kind, (bytes) => addressFromProto(decodeAddress(bytes))),
        res.removedResources,
      );
    } else {
      state.applyAuthorizations(
        convert(res, kind, (bytes) => authorizationFromProto(decodeAuthorization(bytes))),
        res.removedResources,
      );
    }
    return { ok: true, kind };
  } catch (e) {
    return {
      ok: false,
      error:
        e instanceof XdsClientError ? e : rejected(e instanceof Error ? e.message : String(e), e),
    };
  }
}

/** Every resource through the conversion; throws on the first bad one (so nothing is applied). */
function convert<T extends AddressResource | Authorization>(
  res: DeltaDiscoveryResponse,
  kind: ResourceKind,
  from: (bytes: Uint8Array) => T,
): Named<T>[] {
  const out: Named<T>[] = [];
  for (const r of res.resources) {
    const what = `${kind} resource ${JSON.stringify(r.name)}`;
    if (r.name === "") throw rejected(`a ${kind} resource has no name`);
    if (r.resource === undefined) throw rejected(`${what} has no body`);
    if (r.resource.typeUrl !== res.typeUrl)
      throw rejected(
        `${what} is a ${r.resource.typeUrl}, but the response is of type ${res.typeUrl}`,
      );
    let value: T;
    try {
      value = from(r.resource.value);
    } catch (cause) {
      throw rejected(`${what}: ${cause instanceof Error ? cause.message : String(cause)}`, cause);
    }
    // istiod names Authorization resources namespace/name; anything else would make removals miss.
    if (kind === "authorization" && r.name !== authorizationKey(value as Authorization))
      throw rejected(
        `${what} holds policy ${authorizationKey(value as Authorization)}; its resource name must be the same`,
      );
    out.push({ name: r.name, version: r.version, value });
  }
  return out;
}
