// gRPC: a @grpc/grpc-js server interceptor and a connect-node interceptor. `:path` is the method
// (`/pkg.Service/Method`), a deny is status PERMISSION_DENIED (7) with Envoy's message, a bad JWT
// UNAUTHENTICATED (16). Both frameworks are optional peers, loaded on first use.
import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import type { ContextKey, ContextValues, Interceptor } from "@connectrpc/connect";
import type { ServerInterceptor } from "@grpc/grpc-js";
import type { AppDecision, Authorizer } from "../authorizer.js";
import {
  GRPC_PERMISSION_DENIED,
  GRPC_UNAUTHENTICATED,
  INVALID_JWT_STATUS,
  type RequestFacts,
} from "../request.js";
import { type NodeAdapterOptions, nodeRequestFacts, peerChain } from "./facts.js";

/** Metadata key under which the grpc-js interceptor hands the decision to handlers (JSON). */
export const GRPC_DECISION_METADATA = "x-ambientkit-authz";

function grpcCode(d: AppDecision): number {
  return d.status === INVALID_JWT_STATUS ? GRPC_UNAUTHENTICATED : GRPC_PERMISSION_DENIED;
}

/** The decision summary a grpc-js handler reads: `grpcDecision(call.metadata)`. */
export interface GrpcDecisionSummary {
  decision: "allow" | "deny";
  enforced: boolean;
  decidedBy: string;
  rule?: number;
  principal: string | null;
  identitySource: string;
}

/** Reads the decision the interceptor put on the call's metadata (undefined if none). */
export function grpcDecision(metadata: {
  get(key: string): unknown[];
}): GrpcDecisionSummary | undefined {
  const v = metadata.get(GRPC_DECISION_METADATA)[0];
  if (typeof v !== "string") return undefined;
  try {
    return JSON.parse(v) as GrpcDecisionSummary;
  } catch {
    return undefined;
  }
}

/**
 * A grpc-js server interceptor (`new Server({ interceptors: [await grpcAuthzInterceptor(a)] })`).
 * The peer certificate is read from the call's auth context when `peerVerifier` is set.
 */
export async function grpcAuthzInterceptor(
  authorizer: Authorizer,
  options: NodeAdapterOptions = {},
): Promise<ServerInterceptor> {
  const grpc = await import("@grpc/grpc-js");
  return (method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(metadata, mdNext) {
            const info = call.getConnectionInfo();
            const headers: Record<string, string | string[]> = Object.create(null);
            for (const [k, v] of Object.entries(metadata.getMap()))
              if (typeof v === "string" && k !== GRPC_DECISION_METADATA) headers[k] = v;
            const facts: RequestFacts = {
              method: "POST",
              authority: call.getHost(),
              path: method.path,
              headers,
              sourceIp: info.remoteAddress ?? "",
              destinationIp: info.localAddress ?? "",
              destinationPort: info.localPort ?? 0,
            };
            const cert = call.getAuthContext().sslPeerCertificate;
            const withPeer: Promise<RequestFacts> =
              options.peerVerifier && cert
                ? options
                    .peerVerifier(peerChain(cert))
                    .then(
                      (id) => id,
                      () => null,
                    )
                    .then((peerPrincipal) => ({ ...facts, peerPrincipal }))
                : Promise.resolve(facts);
            void withPeer
              .then((f) => authorizer.authorize(f))
              .then((d) => {
                if (!d.allowed) {
                  call.sendStatus({
                    code: grpcCode(d),
                    details: d.body,
                    metadata: new grpc.Metadata(),
                  });
                  return;
                }
                // Replaces anything a client sent under the same key: handlers trust this value.
                metadata.set(
                  GRPC_DECISION_METADATA,
                  JSON.stringify({
                    decision: d.decision,
                    enforced: d.enforced,
                    decidedBy: d.decidedBy,
                    ...(d.rule !== undefined ? { rule: d.rule } : {}),
                    principal: d.identity.principal,
                    identitySource: d.identity.source,
                  } satisfies GrpcDecisionSummary),
                );
                mdNext(metadata);
              });
          },
        });
      },
    });
}

/** What {@link connectAuthz} returns: the interceptor and the adapter's contextValues hook. */
export interface ConnectAuthz {
  /** For `connectNodeAdapter({ interceptors: [interceptor] })`. */
  readonly interceptor: Interceptor;
  /** For `connectNodeAdapter({ contextValues })`: carries the node request to the interceptor. */
  readonly contextValues: (req: IncomingMessage | Http2ServerRequest) => ContextValues;
  /** Handlers read the decision with `ctx.values.get(decisionKey)`. */
  readonly decisionKey: ContextKey<AppDecision | undefined>;
}

/** A connect-node interceptor (Connect, gRPC and gRPC-Web protocols alike). */
export async function connectAuthz(
  authorizer: Authorizer,
  options: NodeAdapterOptions = {},
): Promise<ConnectAuthz> {
  const connect = await import("@connectrpc/connect");
  const nodeKey = connect.createContextKey<IncomingMessage | Http2ServerRequest | undefined>(
    undefined,
    {
      description: "@ambientkit/authz-http node request",
    },
  );
  const decisionKey = connect.createContextKey<AppDecision | undefined>(undefined, {
    description: "@ambientkit/authz-http decision",
  });
  const interceptor: Interceptor = (next) => async (req) => {
    const nodeReq = req.contextValues.get(nodeKey);
    let facts: RequestFacts;
    if (nodeReq) {
      facts = await nodeRequestFacts(nodeReq, options);
      facts = { ...facts, path: new URL(req.url).pathname, method: req.requestMethod };
    } else {
      // Without the contextValues hook there is no peer address: decided as garbage, i.e. denied.
      const headers: Record<string, string> = Object.create(null);
      req.header.forEach((v, k) => {
        headers[k] = v;
      });
      facts = {
        method: req.requestMethod,
        authority: new URL(req.url).host,
        path: new URL(req.url).pathname,
        headers,
        sourceIp: "",
        destinationIp: "",
        destinationPort: 0,
      };
    }
    const d = await authorizer.authorize(facts);
    req.contextValues.set(decisionKey, d);
    if (!d.allowed)
      throw new connect.ConnectError(
        d.body,
        d.status === INVALID_JWT_STATUS
          ? connect.Code.Unauthenticated
          : connect.Code.PermissionDenied,
      );
    return next(req);
  };
  return {
    interceptor,
    contextValues: (req) => connect.createContextValues().set(nodeKey, req),
    decisionKey,
  };
}
