/**
 * Istio's AuthorizationPolicy validation (pkg/config/validation `ValidateAuthorizationPolicy`,
 * pkg/config/security, plus the CRD's CEL rules), with Istio's wording. Issues are values.
 */
import { AuthzError } from "./errors.js";
import { SOURCE_FIELDS } from "./fields.js";
import { assertAuthorizationPolicy } from "./guards.js";
import { parsePrefix } from "./ip.js";
import type { Issue } from "./parse.js";
import type { AuthorizationPolicy, PolicyTargetReference, Source } from "./types.js";

/** Result of validating one policy: `valid` is false if any issue is an error. */
export interface ValidationResult {
  valid: boolean;
  issues: Issue[];
}

type Path = (string | number)[];

const ALLOWED_REFS = [
  { group: "", kind: "Service" },
  { group: "core", kind: "Service" },
  { group: "networking.istio.io", kind: "ServiceEntry" },
  { group: "gateway.networking.k8s.io", kind: "Gateway" },
  { group: "gateway.networking.k8s.io", kind: "GatewayClass" },
];

const VALID_LITERAL = /^[a-zA-Z0-9\-._~%!$&'()+,;:@=]+$/;

function checkEmpty(key: string, values: readonly string[] | undefined): string | undefined {
  return values?.some((v) => v === "") ? `empty value not allowed, found in ${key}` : undefined;
}

function validateIps(values: readonly string[] | undefined): string[] {
  const out: string[] = [];
  for (const v of values ?? []) {
    if (v.includes("/")) {
      if (!parsePrefix(v)) out.push(`bad CIDR range (${v})`);
    } else if (!parsePrefix(v)) out.push(`bad IP address (${v})`);
  }
  return out;
}

function validatePorts(values: readonly string[] | undefined): string[] {
  const out: string[] = [];
  for (const v of values ?? []) {
    if (!/^[0-9]+$/.test(v) || Number(v) > 65535)
      out.push(`bad port (${v}): strconv.ParseUint: parsing ${JSON.stringify(v)}: invalid syntax`);
  }
  return out;
}

function checkServiceAccounts(key: string, values: readonly string[] | undefined): string[] {
  const out: string[] = [];
  if (!values) return out;
  if (values.length > 16) out.push(`${key} must have at most 16 items`);
  for (const v of values) {
    if (v === "") out.push(`empty value not allowed, found in ${key}`);
    else if (v.includes("*")) out.push(`wildcard is not supported in ${key}: ${v}`);
    else if (v.length > 320) out.push(`${key} value ${v} is longer than 320 characters`);
    else {
      const parts = v.split("/");
      if (parts.length > 2 || parts.some((p) => p === ""))
        out.push(`invalid ${key} ${v}: must be <serviceaccount> or <namespace>/<serviceaccount>`);
    }
  }
  return out;
}

function checkTrustDomains(key: string, values: readonly string[] | undefined): string[] {
  const out: string[] = [];
  for (const v of values ?? []) {
    if (v === "") out.push(`empty value not allowed, found in ${key}`);
    const stars = v.split("*").length - 1;
    if (v.includes("/")) out.push(`invalid ${key} ${v}: trust domain must not contain '/'`);
    if (stars > 1 || (stars === 1 && !v.startsWith("*") && !v.endsWith("*")))
      out.push(`invalid ${key} ${v}: '*' is only supported once, at the start or the end`);
  }
  return out;
}

function checkPaths(values: readonly string[] | undefined): string[] {
  const out: string[] = [];
  for (const raw of values ?? []) {
    const template = raw.includes("{*}") || raw.includes("{**}");
    let foundAny = false;
    const path = raw.replace(/^\/+|\/+$/g, "");
    for (const glob of path.split("/")) {
      if ((glob === "{*}" || glob === "{**}") && foundAny) {
        out.push(`invalid or unsupported path ${path}. {**} is not the last operator`);
        break;
      }
      if (glob === "{*}") continue;
      if (glob === "{**}") {
        foundAny = true;
        continue;
      }
      if (/[{}]/.test(glob)) {
        out.push(
          `invalid or unsupported path ${path}. Contains '{' or '}' beyond a supported path template`,
        );
        break;
      }
      if (template && !VALID_LITERAL.test(glob)) {
        out.push(
          `invalid or unsupported path ${path}. Contains segment ${glob} with invalid string literal`,
        );
        break;
      }
    }
  }
  return out;
}

function validateMapKey(key: string): string | undefined {
  const open = key.indexOf("[");
  if (key.endsWith("]") && open > 0 && open < key.length - 2) return undefined;
  return `bad key (${key}): should have format a[b]`;
}

/** `ValidateAttribute(key, values)` for `when` conditions. */
function validateAttribute(key: string, values: readonly string[]): string[] {
  const empty = checkEmpty(key, values);
  if (empty) return [empty];
  const mk = (m: string | undefined) => (m ? [m] : []);
  if (key.startsWith("request.headers")) return mk(validateMapKey(key));
  switch (key) {
    case "source.ip":
    case "remote.ip":
    case "destination.ip":
      return validateIps(values);
    case "destination.port":
      return validatePorts(values);
    case "source.namespace":
    case "source.principal":
    case "request.auth.principal":
    case "request.auth.audiences":
    case "request.auth.presenter":
    case "connection.sni":
      return [];
    case "source.serviceAccount":
      return checkServiceAccounts(key, values);
    case "source.trustDomain":
      return checkTrustDomains(key, values);
    case "destination.namespace":
      return [`attribute ${key} is replaced by the metadata.namespace`];
    case "destination.name":
    case "destination.user":
      return [`deprecated attribute ${key}: only supported in v1alpha1`];
  }
  if (key.startsWith("request.auth.claims")) return mk(validateMapKey(key));
  if (key.startsWith("experimental.envoy.filters.")) return mk(validateMapKey(key));
  if (key.startsWith("destination.labels"))
    return [`attribute ${key} is replaced by the workload selector`];
  return [`unknown attribute: ${key}`];
}

function validateRef(
  ref: PolicyTargetReference,
  path: Path,
  rootNamespace: string | undefined,
  policyNs: string,
  errors: [Path, string][],
): void {
  if (!ref.name) errors.push([[...path, "name"], "targetRef name must be set"]);
  if (ref.namespace)
    errors.push([
      [...path, "namespace"],
      "targetRef namespace must not be set; cross namespace referencing is not supported",
    ]);
  const group = ref.group ?? "";
  if (!ALLOWED_REFS.some((a) => a.group === group && a.kind === ref.kind)) {
    errors.push([
      path,
      `targetRef must be to one of [Service, ServiceEntry, gateway.networking.k8s.io/Gateway, gateway.networking.k8s.io/GatewayClass] but was ${group === "" ? "" : `${group}/`}${ref.kind}`,
    ]);
  } else if (
    ref.kind === "GatewayClass" &&
    rootNamespace !== undefined &&
    policyNs !== rootNamespace
  ) {
    errors.push([
      path,
      `GatewayClass targetRef is only valid in the root namespace ${rootNamespace}`,
    ]);
  }
}

const CUSTOM_FORBIDDEN_SOURCE: readonly [keyof Source, string][] = [
  ["namespaces", "From.Namespaces"],
  ["notNamespaces", "From.NotNamespaces"],
  ["serviceAccounts", "From.ServiceAccounts"],
  ["notServiceAccounts", "From.NotServiceAccounts"],
  ["principals", "From.Principals"],
  ["notPrincipals", "From.NotPrincipals"],
  ["requestPrincipals", "From.RequestPrincipals"],
  ["notRequestPrincipals", "From.NotRequestPrincipals"],
  ["trustDomains", "From.TrustDomains"],
  ["notTrustDomains", "From.NotTrustDomains"],
];

/**
 * Validates an AuthorizationPolicy as istiod's admission webhook and the CRD's CEL rules do.
 * `rootNamespace` enables the GatewayClass-in-root-namespace check.
 */
export function validateAuthorizationPolicy(
  policy: AuthorizationPolicy,
  options: { rootNamespace?: string } = {},
): ValidationResult {
  assertAuthorizationPolicy(policy);
  if (
    options === null ||
    typeof options !== "object" ||
    (options.rootNamespace !== undefined && typeof options.rootNamespace !== "string")
  )
    throw new AuthzError("ERR_AUTHZ_INVALID_INPUT", "options.rootNamespace must be a string");
  const errors: [Path, string][] = [];
  const warnings: [Path, string][] = [];
  const spec = policy.spec;
  const sp: Path = ["spec"];
  const hasTargetRefs = (spec.targetRefs?.length ?? 0) > 0;
  const set = [spec.selector !== undefined, spec.targetRef !== undefined, hasTargetRefs].filter(
    Boolean,
  ).length;
  if (set > 1) errors.push([sp, "only one of targetRefs or workloadSelector can be set"]);
  if (spec.selector) {
    const labels = spec.selector.matchLabels;
    if (Object.keys(labels).length === 0)
      warnings.push([
        [...sp, "selector"],
        "selector has no labels: the policy selects every workload in its namespace",
      ]);
    for (const [k, v] of Object.entries(labels)) {
      if (k === "")
        errors.push([
          [...sp, "selector", "matchLabels"],
          `empty key is not supported in selector: "${k}=${v}"`,
        ]);
      if (k.includes("*") || v.includes("*"))
        errors.push([
          [...sp, "selector", "matchLabels", k],
          `wildcard is not supported in selector: "${k}=${v}"`,
        ]);
    }
  }
  if (spec.targetRef)
    validateRef(
      spec.targetRef,
      [...sp, "targetRef"],
      options.rootNamespace,
      policy.namespace,
      errors,
    );
  if ((spec.targetRefs?.length ?? 0) > 16)
    errors.push([[...sp, "targetRefs"], "targetRefs must have at most 16 items"]);
  spec.targetRefs?.forEach((r, i) => {
    validateRef(r, [...sp, "targetRefs", i], options.rootNamespace, policy.namespace, errors);
  });

  if (spec.action === "CUSTOM") {
    if (spec.rules === undefined)
      errors.push([
        sp,
        "CUSTOM action without `rules` is meaningless as it will never be triggered, add an empty rule `{}` if you want it be triggered for every request",
      ]);
    else if (!spec.provider || spec.provider.name === "")
      errors.push([[...sp, "provider"], "`provider.name` must not be empty"]);
    spec.rules?.forEach((rule, i) => {
      rule?.from?.forEach((f, j) => {
        for (const [k, name] of CUSTOM_FORBIDDEN_SOURCE)
          if ((f.source?.[k]?.length ?? 0) > 0)
            errors.push([
              [...sp, "rules", i, "from", j, "source", k],
              `${name} is currently not supported with CUSTOM action`,
            ]);
      });
      rule?.when?.forEach((w, j) => {
        if (
          [
            "source.namespace",
            "source.serviceAccount",
            "source.principal",
            "source.trustDomain",
          ].includes(w.key) ||
          w.key.startsWith("request.auth.")
        )
          errors.push([
            [...sp, "rules", i, "when", j, "key"],
            `${w.key} is currently not supported with CUSTOM action`,
          ]);
      });
    });
  }
  if (spec.provider && spec.action !== "CUSTOM")
    errors.push([
      [...sp, "provider"],
      `\`provider\` must not be with non CUSTOM action, found ${spec.action}`,
    ]);
  if (spec.action === "DENY" && spec.rules === undefined)
    errors.push([
      sp,
      "DENY action without `rules` is meaningless as it will never be triggered, add an empty rule `{}` if you want it be triggered for every request",
    ]);
  if ((spec.rules?.length ?? 0) > 512)
    errors.push([[...sp, "rules"], "rules must have at most 512 items"]);

  spec.rules?.forEach((rule, i) => {
    const rp: Path = [...sp, "rules", i];
    if (rule === null) {
      errors.push([rp, `\`rule\` must not be nil, found at rule ${i}`]);
      return;
    }
    let tcpInFrom = false;
    let tcpInTo = false;
    let fromExist = false;
    let toExist = false;
    if (rule.from && rule.from.length === 0)
      errors.push([[...rp, "from"], `\`from\` must not be empty, found at rule ${i}`]);
    rule.from?.forEach((f, j) => {
      const p: Path = [...rp, "from", j, "source"];
      const src = f.source;
      if (!src) {
        errors.push([[...rp, "from", j], `\`from.source\` must not be nil, found at rule ${i}`]);
        return;
      }
      fromExist = true;
      const n = (k: keyof Source) => src[k]?.length ?? 0;
      if (
        n("principals") + n("notPrincipals") + n("namespaces") + n("notNamespaces") > 0 &&
        n("serviceAccounts") + n("notServiceAccounts") > 0
      )
        errors.push([
          p,
          `cannot set serviceAccounts with namespaces or principals, found at rule ${i}`,
        ]);
      if (SOURCE_FIELDS.every((k) => n(k) === 0))
        errors.push([p, `\`from.source\` must not be empty, found at rule ${i}`]);
      for (const k of ["ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks"] as const)
        for (const m of validateIps(src[k])) errors.push([[...p, k], m]);
      for (const k of SOURCE_FIELDS) {
        if (k === "serviceAccounts" || k === "notServiceAccounts") {
          for (const m of checkServiceAccounts(
            k === "serviceAccounts" ? "ServiceAccounts" : "NotServiceAccounts",
            src[k],
          ))
            errors.push([[...p, k], m]);
          continue;
        }
        if (k === "trustDomains" || k === "notTrustDomains") {
          for (const m of checkTrustDomains(
            k === "trustDomains" ? "TrustDomains" : "NotTrustDomains",
            src[k],
          ))
            errors.push([[...p, k], m]);
          continue;
        }
        const m = checkEmpty(k.charAt(0).toUpperCase() + k.slice(1), src[k]);
        if (m) errors.push([[...p, k], m]);
      }
      for (const k of [
        "principals",
        "notPrincipals",
        "namespaces",
        "notNamespaces",
        "requestPrincipals",
        "notRequestPrincipals",
      ] as const) {
        if (
          (src[k]?.length ?? 0) > 16 &&
          (k.includes("rincipals") || k.includes("amespaces")) &&
          !k.includes("equest")
        )
          errors.push([[...p, k], `${k} must have at most 16 items`]);
      }
      if (
        [
          "principals",
          "notPrincipals",
          "ipBlocks",
          "notIpBlocks",
          "namespaces",
          "notNamespaces",
          "remoteIpBlocks",
          "notRemoteIpBlocks",
          "serviceAccounts",
          "notServiceAccounts",
        ].some((k) => src[k as keyof Source] !== undefined)
      )
        tcpInFrom = true;
    });
    if (rule.to && rule.to.length === 0)
      errors.push([[...rp, "to"], `\`to\` must not be empty, found at rule ${i}`]);
    rule.to?.forEach((t, j) => {
      const p: Path = [...rp, "to", j, "operation"];
      const op = t.operation;
      if (!op) {
        errors.push([[...rp, "to", j], `\`to.operation\` must not be nil, found at rule ${i}`]);
        return;
      }
      toExist = true;
      const keys = [
        "ports",
        "notPorts",
        "methods",
        "notMethods",
        "paths",
        "notPaths",
        "hosts",
        "notHosts",
      ] as const;
      if (keys.every((k) => (op[k]?.length ?? 0) === 0))
        errors.push([p, `\`to.operation\` must not be empty, found at rule ${i}`]);
      for (const m of validatePorts(op.ports)) errors.push([[...p, "ports"], m]);
      for (const m of validatePorts(op.notPorts)) errors.push([[...p, "notPorts"], m]);
      for (const k of keys) {
        const m = checkEmpty(k.charAt(0).toUpperCase() + k.slice(1), op[k]);
        if (m) errors.push([[...p, k], m]);
      }
      for (const m of checkPaths(op.paths)) errors.push([[...p, "paths"], m]);
      for (const m of checkPaths(op.notPaths)) errors.push([[...p, "notPaths"], m]);
      if (op.ports !== undefined || op.notPorts !== undefined) tcpInTo = true;
    });
    rule.when?.forEach((w, j) => {
      const p: Path = [...rp, "when", j];
      if (w.key === "") {
        errors.push([[...p, "key"], "`key` must not be empty"]);
        return;
      }
      if ((w.values?.length ?? 0) === 0 && (w.notValues?.length ?? 0) === 0) {
        errors.push([
          p,
          `at least one of \`values\` or \`notValues\` must be set for key ${w.key}`,
        ]);
        return;
      }
      for (const m of validateAttribute(w.key, w.values ?? []))
        errors.push([[...p, "values"], `invalid \`value\` for \`key\` ${w.key}: ${m}`]);
      for (const m of validateAttribute(w.key, w.notValues ?? []))
        errors.push([[...p, "notValues"], `invalid \`notValue\` for \`key\` ${w.key}: ${m}`]);
    });
    if (((fromExist && !toExist && !tcpInFrom) || (toExist && !tcpInTo)) && spec.action === "DENY")
      warnings.push([
        rp,
        "configured AuthorizationPolicy will deny all traffic to TCP ports under its scope due to the use of only HTTP attributes in a DENY rule; it is recommended to explicitly specify the port",
      ]);
  });
  const prefix = `invalid policy ${policy.name}.${policy.namespace}: `;
  const issues: Issue[] = [
    ...errors.map(
      ([path, message]): Issue => ({ severity: "error", path, message: `${prefix}${message}` }),
    ),
    ...warnings.map(([path, message]): Issue => ({ severity: "warning", path, message })),
  ];
  return { valid: errors.length === 0, issues };
}
