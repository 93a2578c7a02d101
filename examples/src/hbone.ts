// The one place examples/ imports @ambientkit/hbone from, so a change in its barrel is fixed here.
export {
  type ConnectionEnd,
  decodeProxyV2,
  dialHbone,
  encodeProxyV2,
  type HboneCredentials,
  type HboneDecision,
  HboneError,
  HbonePool,
  HboneServer,
  type HboneServerRequest,
  type HboneStream,
  openTunnel,
  type ProxyHeader,
} from "@ambientkit/hbone";
