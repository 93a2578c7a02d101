/**
 * Istio's peer-metadata baggage: the `baggage` header ztunnel sends on HBONE CONNECT (and on the
 * response) and Envoy's metadata exchange reads. Universal: imports nothing from `node:`.
 *
 * Sources: istio/ztunnel `src/baggage.rs` (`baggage_header_val`, `parse_baggage_header`), istio/proxy
 * `extensions/common/metadata_object.{h,cc}` (`baggage()`, `convertBaggageToWorkloadMetadata`),
 * W3C Baggage (key = token, value = baggage-octets, `;` properties, 8192-byte limit).
 */
import { TelemetryError, type TelemetryResult } from "./errors.js";
import type { WorkloadInfo, WorkloadType } from "./labels.js";

/** The workload facts Istio carries in baggage. */
export interface PeerBaggage {
  /** `k8s.cluster.name` */
  clusterId?: string;
  /** `k8s.namespace.name` */
  namespace?: string;
  /** `k8s.<type>.name` */
  workloadName?: string;
  /** the `<type>` of `k8s.<type>.name` */
  workloadType?: WorkloadType;
  /** `service.name` (canonical service) */
  serviceName?: string;
  /** `service.version` (canonical revision) */
  serviceVersion?: string;
  /** `app.name` (Envoy; only sent when it differs from `service.name`) */
  appName?: string;
  /** `app.version` (Envoy; only sent when it differs from `service.version`) */
  appVersion?: string;
  /** `k8s.instance.name` (Envoy) */
  instanceName?: string;
  /** `cloud.region` */
  region?: string;
  /** `cloud.availability_zone` */
  zone?: string;
}

/** W3C's limit on a baggage header (bytes; values here are ASCII, so characters). */
export const BAGGAGE_MAX_LENGTH = 8192;

const WORKLOAD_TYPES: ReadonlySet<string> = new Set(["deployment", "cronjob", "job", "pod"]);

// Character classes as a table: bit 1 = RFC 7230 tchar (keys), bit 2 = W3C baggage-octet
// (values: %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E), bit 4 = OWS (space, tab).
const CLASS = new Uint8Array(128);
for (let c = 0x21; c <= 0x7e; c++) {
  if (c !== 0x22 && c !== 0x2c && c !== 0x3b && c !== 0x5c) CLASS[c] = (CLASS[c] as number) | 2;
}
for (const ch of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") {
  const c = ch.charCodeAt(0);
  CLASS[c] = (CLASS[c] as number) | 1;
}
CLASS[0x20] = 4;
CLASS[0x09] = 4;
const TOKEN = 1;
const VALUE = 2;
const OWS = 4;

function cls(c: number): number {
  return c < 128 ? (CLASS[c] as number) : 0;
}

function allChars(s: string, bit: number): boolean {
  for (let i = 0; i < s.length; i++) if ((cls(s.charCodeAt(i)) & bit) === 0) return false;
  return true;
}

function assign(out: PeerBaggage, key: string, value: string): void {
  // As ztunnel: the last occurrence of a key wins and an empty value means unset.
  const v = value === "" ? undefined : value;
  let field: keyof PeerBaggage | undefined;
  switch (key) {
    case "k8s.cluster.name":
      field = "clusterId";
      break;
    case "k8s.namespace.name":
      field = "namespace";
      break;
    case "k8s.deployment.name":
    case "k8s.cronjob.name":
    case "k8s.job.name":
    case "k8s.pod.name": {
      if (v === undefined) {
        delete out.workloadName;
        delete out.workloadType;
      } else {
        out.workloadName = v;
        out.workloadType = key.slice(4, -5) as WorkloadType;
      }
      return;
    }
    case "service.name":
      field = "serviceName";
      break;
    case "service.version":
      field = "serviceVersion";
      break;
    case "app.name":
      field = "appName";
      break;
    case "app.version":
      field = "appVersion";
      break;
    case "k8s.instance.name":
      field = "instanceName";
      break;
    case "cloud.region":
      field = "region";
      break;
    case "cloud.availability_zone":
      field = "zone";
      break;
    default:
      return; // unknown keys are ignored, as ztunnel and Envoy do
  }
  if (v === undefined) delete out[field];
  else (out as Record<string, string>)[field] = v;
}

/** Options for {@link parseBaggage}. */
export interface ParseBaggageOptions {
  /**
   * `strict` (default): any member that breaks the W3C grammar rejects the whole header.
   * `lenient`: malformed members are skipped and the rest is read, as ztunnel/Envoy do.
   */
  mode?: "strict" | "lenient";
}

function malformed(message: string): TelemetryError {
  return new TelemetryError(
    "ERR_TELEMETRY_BAGGAGE_MALFORMED",
    `${message}; a baggage header is a comma-separated list of key=value (W3C Baggage), e.g. "k8s.namespace.name=default,service.name=echo"`,
  );
}

/**
 * Parses `baggage` header value(s) into Istio's peer metadata. Several header lines may be passed
 * as an array (they are one comma-separated list). Members may carry `;` properties (ignored);
 * values are taken verbatim (Istio does not percent-encode). Never throws: see {@link parseBaggage}.
 */
export function tryParseBaggage(
  header: string | readonly string[] | undefined,
  options?: ParseBaggageOptions,
): TelemetryResult<PeerBaggage> {
  const out: PeerBaggage = {};
  if (header === undefined) return { ok: true, value: out };
  const text = typeof header === "string" ? header : header.join(",");
  const strict = options?.mode !== "lenient";
  if (text.length > BAGGAGE_MAX_LENGTH) {
    return {
      ok: false,
      error: new TelemetryError(
        "ERR_TELEMETRY_BAGGAGE_TOO_LONG",
        `baggage header is ${text.length} bytes, over the W3C limit of ${BAGGAGE_MAX_LENGTH}; send fewer or shorter members`,
      ),
    };
  }
  const n = text.length;
  let a = 0;
  while (a < n && (cls(text.charCodeAt(a)) & OWS) !== 0) a++;
  if (a === n) return { ok: true, value: out };
  let start = 0;
  while (start <= n) {
    let end = text.indexOf(",", start);
    if (end < 0) end = n;
    // member = key OWS "=" OWS value *( ";" property ); properties are ignored.
    let ks = start;
    while (ks < end && (cls(text.charCodeAt(ks)) & OWS) !== 0) ks++;
    let ke = ks;
    while (ke < end && (cls(text.charCodeAt(ke)) & TOKEN) !== 0) ke++;
    let i = ke;
    while (i < end && (cls(text.charCodeAt(i)) & OWS) !== 0) i++;
    const memberStart = start;
    start = end + 1;
    if (i >= end || text.charCodeAt(i) !== 0x3d) {
      if (strict) {
        const member = text.slice(memberStart, end);
        let why: string;
        if (ks === end) why = "baggage header has an empty list member";
        else if (member.indexOf("=") < 0) why = `baggage member "${member}" has no "="`;
        else why = `baggage key in "${member}" is not a token`;
        return { ok: false, error: malformed(why) };
      }
      continue;
    }
    if (ke === ks) {
      if (strict)
        return {
          ok: false,
          error: malformed(`baggage member "${text.slice(memberStart, end)}" has an empty key`),
        };
      continue;
    }
    let vs = i + 1;
    while (vs < end && (cls(text.charCodeAt(vs)) & OWS) !== 0) vs++;
    let ve = vs;
    while (ve < end && (cls(text.charCodeAt(ve)) & VALUE) !== 0) ve++;
    let j = ve;
    while (j < end && (cls(text.charCodeAt(j)) & OWS) !== 0) j++;
    if (j < end && text.charCodeAt(j) !== 0x3b) {
      if (strict) {
        return {
          ok: false,
          error: malformed(
            `baggage value of "${text.slice(ks, ke)}" has a character W3C Baggage does not allow`,
          ),
        };
      }
      continue;
    }
    assign(out, text.slice(ks, ke), text.slice(vs, ve));
  }
  return { ok: true, value: out };
}

/** Parses `baggage` header value(s); throws `TelemetryError` on malformed input. */
export function parseBaggage(
  header: string | readonly string[] | undefined,
  options?: ParseBaggageOptions,
): PeerBaggage {
  const r = tryParseBaggage(header, options);
  if (!r.ok) throw r.error;
  return r.value;
}

const FIELDS: ReadonlyArray<readonly [keyof PeerBaggage, string]> = [
  ["clusterId", "k8s.cluster.name"],
  ["namespace", "k8s.namespace.name"],
  ["workloadName", ""],
  ["serviceName", "service.name"],
  ["serviceVersion", "service.version"],
  ["appName", "app.name"],
  ["appVersion", "app.version"],
  ["instanceName", "k8s.instance.name"],
  ["region", "cloud.region"],
  ["zone", "cloud.availability_zone"],
];

/**
 * Formats Istio baggage in ztunnel's order (cluster, namespace, workload, service.name,
 * service.version, then Envoy's app.* / k8s.instance.name, then cloud.region,
 * cloud.availability_zone), comma-joined without spaces, empty fields omitted; `app.name` /
 * `app.version` only when they differ from `service.*` (Envoy's rule). The workload key is
 * `k8s.<workloadType>.name` (default `deployment`). Never throws: see {@link formatBaggage}.
 */
export function tryFormatBaggage(b: PeerBaggage): TelemetryResult<string> {
  const parts: string[] = [];
  for (const [field, key] of FIELDS) {
    const v = b[field];
    if (v === undefined || v === "") continue;
    if (field === "appName" && v === b.serviceName) continue;
    if (field === "appVersion" && v === b.serviceVersion) continue;
    let k = key;
    if (field === "workloadName") {
      const t = b.workloadType ?? "deployment";
      if (!WORKLOAD_TYPES.has(t)) {
        return {
          ok: false,
          error: new TelemetryError(
            "ERR_TELEMETRY_BAGGAGE_VALUE",
            `workload type "${t}" is not one of deployment, cronjob, job, pod`,
          ),
        };
      }
      k = `k8s.${t}.name`;
    }
    if (!allChars(v, VALUE)) {
      return {
        ok: false,
        error: new TelemetryError(
          "ERR_TELEMETRY_BAGGAGE_VALUE",
          `baggage value for "${k}" (${JSON.stringify(v)}) has a character W3C Baggage does not allow (space, comma, semicolon, quote, backslash or non-ASCII); Istio does not percent-encode, so use Kubernetes-style names`,
        ),
      };
    }
    parts.push(`${k}=${v}`);
  }
  const value = parts.join(",");
  if (value.length > BAGGAGE_MAX_LENGTH) {
    return {
      ok: false,
      error: new TelemetryError(
        "ERR_TELEMETRY_BAGGAGE_TOO_LONG",
        `baggage would be ${value.length} bytes, over the W3C limit of ${BAGGAGE_MAX_LENGTH}`,
      ),
    };
  }
  return { ok: true, value };
}

/** Formats Istio baggage; throws `TelemetryError` on a value baggage cannot carry. */
export function formatBaggage(b: PeerBaggage): string {
  const r = tryFormatBaggage(b);
  if (!r.ok) throw r.error;
  return r.value;
}

/** The baggage a workload announces (ztunnel's `Workload::baggage`). */
export function baggageFromWorkload(w: WorkloadInfo): PeerBaggage {
  const out: PeerBaggage = {};
  if (w.clusterId) out.clusterId = w.clusterId;
  if (w.namespace) out.namespace = w.namespace;
  if (w.workloadName) out.workloadName = w.workloadName;
  if (w.workloadType) out.workloadType = w.workloadType;
  if (w.canonicalService) out.serviceName = w.canonicalService;
  if (w.canonicalRevision) out.serviceVersion = w.canonicalRevision;
  if (w.region) out.region = w.region;
  if (w.zone) out.zone = w.zone;
  return out;
}

/**
 * What a reporter learns about its peer from baggage (Envoy's `convertBaggageToWorkloadMetadata`:
 * service.* and app.* stand in for each other when one is missing). `identity` is the peer's
 * mTLS-proven SPIFFE ID, if any.
 */
export function workloadFromBaggage(b: PeerBaggage, identity?: string): WorkloadInfo {
  const out: WorkloadInfo = {};
  if (b.instanceName) out.name = b.instanceName;
  if (b.workloadName) out.workloadName = b.workloadName;
  if (b.workloadType) out.workloadType = b.workloadType;
  if (b.namespace) out.namespace = b.namespace;
  const canon = b.serviceName || b.appName;
  if (canon) out.canonicalService = canon;
  const rev = b.serviceVersion || b.appVersion;
  if (rev) out.canonicalRevision = rev;
  const app = b.appName || b.serviceName;
  if (app) out.app = app;
  const version = b.appVersion || b.serviceVersion;
  if (version) out.version = version;
  if (identity) out.identity = identity;
  if (b.clusterId) out.clusterId = b.clusterId;
  if (b.region) out.region = b.region;
  if (b.zone) out.zone = b.zone;
  return out;
}
