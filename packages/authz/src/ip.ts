/**
 * authz's names for the one IP module, `@ambientkit/xds-types/ip` (its numeric form: addresses as
 * bigint, prefixes as family + network + bits). Parsing follows Go's `netip` as istiod does: host
 * bits may be set in a prefix, a bare address is a full-length prefix. Families never cross: an
 * IPv4 prefix never contains an IPv6 address (ztunnel `IpNet::contains`, Envoy CIDR matcher).
 * Parsing keeps IPv4-mapped IPv6 as IPv6; `canonicalIp` folds a connection's address to IPv4 as
 * ztunnel's `to_canonical` does.
 */
import {
  type IpAddress,
  type IpNet,
  ipNetContains,
  isIpAddress,
  isIpNet,
} from "@ambientkit/xds-types/ip";
import { AuthzError } from "./errors.js";

export {
  canonicalIpAddress as canonicalIp,
  ipNetContains as contains,
  ipv4Equivalent,
  parseIpAddress as parseIp,
  parseIpNet as parsePrefix,
} from "@ambientkit/xds-types/ip";
export type { IpAddress, IpNet as IpPrefix };

/** True if `ip` lies in `prefix` (same family only); malformed arguments are ERR_AUTHZ_INVALID_INPUT. */
export function prefixContains(prefix: IpNet, ip: IpAddress): boolean {
  if (!isIpNet(prefix) || !isIpAddress(ip))
    throw new AuthzError(
      "ERR_AUTHZ_INVALID_INPUT",
      "prefixContains takes an IpPrefix from parsePrefix and an IpAddress from parseIp",
    );
  return ipNetContains(prefix, ip);
}
