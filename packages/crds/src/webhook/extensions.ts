// ProxyConfig, WasmPlugin and TrafficExtension: istio/istio pkg/config/validation
// ValidateProxyConfig, ValidateWasmPlugin and ValidateTrafficExtension (validation.go).

import { parseRequestURI } from "../net.js";
import {
  checkBetaSelector,
  checkSelectorAndTargets,
  list,
  num,
  type Obj,
  obj,
  str,
  utf8Length,
  wrapped,
} from "./common.js";
import type { PathSeg, Report } from "./report.js";

type At = readonly PathSeg[];

export function checkProxyConfig(r: Report, spec: Obj): void {
  checkBetaSelector(r, ["spec", "selector"], spec.selector);
  if ((wrapped(spec.concurrency) ?? 0) < 0)
    r.error(["spec", "concurrency"], "concurrency must be greater than or equal to 0");
}

/** validateWasmPluginURL with strictParseURL (url.ParseRequestURI, retried with http:// prepended). */
function urlProblem(url: string): string | undefined {
  if (url === "") return "url field needs to be set";
  let u = parseRequestURI(url);
  if (u === undefined) {
    u = parseRequestURI(`http://${url}`);
    if (u === undefined)
      return `failed to parse url: parse ${JSON.stringify(url)}: invalid URI for request`;
  }
  const scheme = u.scheme ?? "";
  if (!["", "file", "http", "https", "oci"].includes(scheme))
    return `url contains unsupported scheme: ${scheme}`;
  return undefined;
}

function shaProblem(sha: string): string | undefined {
  if (sha === "") return undefined;
  if (sha.length !== 64) return "sha256 field must be 64 characters long";
  return /^[a-f0-9]+$/.test(sha) ? undefined : "sha256 field must match [a-f0-9]{64} pattern";
}

/** validateWasmPluginVMConfig: the first problem, as Istio returns. */
function vmConfigProblem(vm: unknown): string | undefined {
  const keys = new Set<string>();
  for (const e of list(obj(vm)?.env)) {
    const env = obj(e);
    if (env === undefined) continue;
    const name = str(env.name);
    if (name === "") return "spec.vmConfig.env invalid";
    if (name.length > 256) return "env.name field must be less than 255 characters long";
    if (keys.has(name)) return "duplicate env";
    keys.add(name);
    if (str(env.valueFrom) !== "" && str(env.valueFrom) !== "INLINE" && str(env.value) !== "") {
      return "value may only be set when valueFrom is INLINE";
    }
  }
  return undefined;
}

function matchProblem(selectors: unknown): string | undefined {
  const sels = list(selectors);
  for (let i = 0; i < sels.length; i++) {
    const sel = obj(sels[i]);
    if (sel === undefined) return `spec.Match[${i}] is nil`;
    const ports = list(sel.ports);
    for (let j = 0; j < ports.length; j++) {
      const port = obj(ports[j]);
      if (port === undefined) return `spec.Match[${i}].Ports[${j}] is nil`;
      const n = num(port.number);
      if (n <= 0 || n > 65535) return `spec.Match[${i}].Ports[${j}] is out of range: ${n}`;
    }
  }
  return undefined;
}

function report(r: Report, at: At, p: string | undefined): void {
  if (p !== undefined) r.error(at, p);
}

export function checkWasmPlugin(r: Report, spec: Obj): void {
  checkSelectorAndTargets(r, spec);
  report(r, ["spec", "url"], urlProblem(str(spec.url)));
  report(r, ["spec", "sha256"], shaProblem(str(spec.sha256)));
  if (str(spec.imagePullSecret).length > 253) {
    r.error(
      ["spec", "imagePullSecret"],
      "imagePullSecret field must be less than 253 characters long",
    );
  }
  if (str(spec.pluginName).length > 256)
    r.error(["spec", "pluginName"], "pluginName field must be less than 255 characters long");
  report(r, ["spec", "vmConfig", "env"], vmConfigProblem(spec.vmConfig));
  report(r, ["spec", "match"], matchProblem(spec.match));
}

export function checkTrafficExtension(r: Report, spec: Obj): void {
  const wasm = obj(spec.wasm);
  const lua = obj(spec.lua);
  if ((wasm !== undefined) === (lua !== undefined))
    r.error(["spec"], "exactly one of wasm or lua must be set");
  checkSelectorAndTargets(r, spec, false);
  if (lua !== undefined) {
    const code = str(lua.inlineCode);
    if (code.length === 0) r.error(["spec", "lua", "inlineCode"], "lua.inlineCode cannot be empty");
    else if (utf8Length(code) > 65536) {
      r.error(["spec", "lua", "inlineCode"], "lua.inlineCode exceeds maximum size of 64KB");
    }
  }
  if (wasm !== undefined) {
    report(r, ["spec", "wasm", "url"], urlProblem(str(wasm.url)));
    report(r, ["spec", "wasm", "sha256"], shaProblem(str(wasm.sha256)));
    if (str(wasm.imagePullSecret).length > 253) {
      r.error(
        ["spec", "wasm", "imagePullSecret"],
        "imagePullSecret field must be less than 253 characters long",
      );
    }
    if (str(wasm.pluginName).length > 256) {
      r.error(
        ["spec", "wasm", "pluginName"],
        "pluginName field must be less than 256 characters long",
      );
    }
    report(r, ["spec", "wasm", "vmConfig", "env"], vmConfigProblem(wasm.vmConfig));
  }
  report(r, ["spec", "match"], matchProblem(spec.match));
}
