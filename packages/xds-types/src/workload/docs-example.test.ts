// Runs the example of docs/ztunnel-workload-api.md (keep the two in step).
import { expect, it } from "vitest";
import {
  authorizationFromProto,
  decodeAuthorization,
  encodeAuthorization,
  localConfigToProto,
} from "../index.js";
import { parseLocalXds, serializeLocalXds } from "../local-xds-entry.js";

it("the guide's example runs", () => {
  const text = `
workloads:
  - uid: cluster1//v1/Pod/default/local
    name: local
    namespace: default
    serviceAccount: default
    workloadIps: ["127.0.0.1"]
    protocol: HBONE
    services: { "default/example.com": { 80: 8080 } }
policies:
  - { name: deny-9999, namespace: default, scope: Namespace, action: Allow, dryRun: false,
      rules: [[[{ notDestinationPorts: [9999] }]]] }
`;
  const result = parseLocalXds(text);
  if (!result.ok)
    throw new Error(result.issues.map((i) => `${i.line}:${i.column} ${i.message}`).join("\n"));
  const config = result.value;

  const { authorizations, addresses } = localConfigToProto(config);
  const first = authorizations[0];
  if (!first) throw new Error("no policy");
  const bytes = encodeAuthorization(first);
  expect(authorizationFromProto(decodeAuthorization(bytes)).rules).toEqual([
    [[{ notDestinationPorts: [9999] }]],
  ]);
  expect(addresses).toHaveLength(1);

  const yaml = serializeLocalXds(config);
  expect(yaml).toContain("notDestinationPorts:");
  expect(parseLocalXds(yaml)).toEqual(result);
});
