// The one place examples/ imports @ambientkit/hbone from, so a change in its barrel is fixed here.
export {
  type HboneCredentials,
  type HboneDecision,
  HboneError,
  HbonePool,
  HboneServer,
  type HboneServerRequest,
  type HboneStream,
  openTunnel,
} from "@ambientkit/hbone";
