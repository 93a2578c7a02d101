// The generated protobuf-es message types, schemas and enums of ztunnel's workload API, one
// namespace per proto package: `workloadProto` = istio.workload, `securityProto` = istio.security.
// Use them with `create`, `toBinary`, `fromBinary` from @bufbuild/protobuf, or with ./codec.ts.

import * as securityProto from "./gen/authorization_pb.js";
import * as workloadProto from "./gen/workload_pb.js";

export { securityProto, workloadProto };
