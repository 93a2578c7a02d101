// `ambientkit hbone dial|serve`: open one HBONE tunnel from a terminal, or run a debugging HBONE
// gateway that dials each CONNECT's :authority over TCP (see @ambientkit/hbone).
import {
  type HboneCredentials,
  HboneError,
  HboneServer,
  identityOfCredentials,
  openTunnel,
  parseAuthority,
  trustDomainOf,
} from "@ambientkit/hbone";
import { TrustBundle, TrustBundleSet } from "@ambientkit/identity";
import type { Command } from "commander";
import { type CommandContext, EXIT_FAILURE_FOUND, EXIT_OK, outputOption } from "../command.js";
import { CliError } from "../errors.js";
import { type CliIo, readInput } from "../io.js";

interface DialFlags {
  connect: string;
  authority: string;
  cert: string;
  key: string;
  ca: string;
  expectId: string[];
  header: string[];
}

interface ServeFlags {
  listen: string;
  cert: string;
  key: string;
  ca: string;
  trustDomain?: string;
  output: "text" | "json";
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function hostPort(flag: string, value: string): { host: string; port: number } {
  try {
    const a = parseAuthority(value);
    return { host: a.host, port: a.port };
  } catch (cause) {
    throw new CliError(
      "ERR_CLI_USAGE",
      `${flag} ${value}: expected HOST:PORT ([v6]:PORT for IPv6)`,
      { cause },
    );
  }
}

async function credentials(
  io: CliIo,
  flags: { cert: string; key: string; ca: string },
): Promise<{ cert: string; key: string; ca: string }> {
  const creds = {
    cert: await readInput(io, flags.cert),
    key: await readInput(io, flags.key),
    ca: await readInput(io, flags.ca),
  };
  try {
    identityOfCredentials(creds);
  } catch (cause) {
    throw new CliError("ERR_CLI_INPUT_INVALID", `${flags.cert}: ${(cause as Error).message}`, {
      cause,
    });
  }
  return creds;
}

/** Registers `ambientkit hbone`. */
export function registerHbone(program: Command, ctx: CommandContext): void {
  const hbone = program
    .command("hbone")
    .description("HBONE (HTTP/2 CONNECT over mTLS 1.3) tunnels, as ztunnel speaks them");

  hbone
    .command("dial")
    .description("open one HBONE tunnel and pipe stdin → tunnel → stdout")
    .requiredOption("--connect <host:port>", "HBONE peer to dial, e.g. 10.0.0.2:15008")
    .requiredOption(
      "--authority <host:port>",
      "CONNECT :authority (the destination), e.g. 10.0.0.2:8080",
    )
    .requiredOption("--cert <file>", "our SVID (PEM, leaf first)")
    .requiredOption("--key <file>", "our private key (PEM)")
    .requiredOption("--ca <file>", "trust bundle: PEM roots of our certificate's trust domain")
    .option(
      "--expect-id <spiffe-id>",
      "SPIFFE ID the server must present (repeatable; default: any in our trust domain)",
      collect,
      [],
    )
    .option(
      "--header <k=v>",
      "extra CONNECT header (repeatable), e.g. baggage=k8s.namespace.name=default",
      collect,
      [],
    )
    .action(async (flags: DialFlags) => {
      ctx.setExit(await dial(ctx, flags));
    });

  hbone
    .command("serve")
    .description("terminate HBONE and dial each CONNECT :authority over TCP (a debugging gateway)")
    .requiredOption("--listen <host:port>", "address to listen on, e.g. 0.0.0.0:15008")
    .requiredOption("--cert <file>", "our SVID (PEM, leaf first)")
    .requiredOption("--key <file>", "our private key (PEM)")
    .requiredOption(
      "--ca <file>",
      "trust bundle: PEM roots of our certificate's trust domain (and of --trust-domain)",
    )
    .option(
      "--trust-domain <td>",
      "accept clients of this trust domain, verified against the --ca roots (default: our certificate's)",
    )
    .addOption(outputOption())
    .action(async (flags: ServeFlags) => {
      ctx.setExit(await serve(ctx, flags));
    });
}

async function dial(ctx: CommandContext, flags: DialFlags): Promise<number> {
  const { io } = ctx;
  const address = hostPort("--connect", flags.connect);
  hostPort("--authority", flags.authority);
  const creds = await credentials(io, flags);
  const headers: Record<string, string> = {};
  for (const h of flags.header) {
    const eq = h.indexOf("=");
    if (eq <= 0) throw new CliError("ERR_CLI_USAGE", `--header ${h}: expected NAME=VALUE`);
    headers[h.slice(0, eq).trim().toLowerCase()] = h.slice(eq + 1);
  }
  let expected = flags.expectId;
  if (expected.length === 0) {
    const td = trustDomainOf(identityOfCredentials(creds));
    expected = [`spiffe://${td}/`];
  }
  const input = io.stdinStream();
  const output = io.stdoutStream();
  let tunnel: Awaited<ReturnType<typeof openTunnel>>;
  try {
    tunnel = await openTunnel({
      address,
      credentials: creds,
      expectedIdentities: expected,
      authority: flags.authority,
      headers,
    });
  } catch (error) {
    if (error instanceof HboneError) {
      if (error.code === "ERR_HBONE_STATUS") {
        io.stderr(`ambientkit: CONNECT ${flags.authority} answered with status ${error.status}\n`);
        return EXIT_FAILURE_FOUND;
      }
      if (
        error.code === "ERR_HBONE_BAD_AUTHORITY" ||
        error.code === "ERR_HBONE_BAD_HEADER" ||
        error.code === "ERR_HBONE_CONFIG"
      ) {
        throw new CliError("ERR_CLI_USAGE", error.message, { cause: error });
      }
      io.stderr(`ambientkit: ${error.message} [${error.code}]\n`);
      return EXIT_FAILURE_FOUND;
    }
    throw error;
  }
  io.stderr(
    `ambientkit: tunnel to ${flags.authority} open via ${flags.connect} (peer ${tunnel.info.peerIdentity})\n`,
  );
  return new Promise<number>((resolve) => {
    let failed: Error | undefined;
    input.pipe(tunnel);
    tunnel.pipe(output, { end: false });
    tunnel.once("error", (e) => {
      failed = e;
    });
    input.once("error", (e) => {
      failed = e;
      tunnel.destroy();
    });
    tunnel.once("close", () => {
      if (failed) {
        io.stderr(`ambientkit: tunnel failed: ${failed.message}\n`);
        resolve(EXIT_FAILURE_FOUND);
      } else {
        resolve(EXIT_OK);
      }
    });
  });
}

async function serve(ctx: CommandContext, flags: ServeFlags): Promise<number> {
  const { io } = ctx;
  // port 0 (pick one) is fine for a listener
  const m = /^(?:\[([^\]]+)\]|([^:]+)):([0-9]{1,5})$/.exec(flags.listen);
  if (!m || Number(m[3]) > 65535)
    throw new CliError("ERR_CLI_USAGE", `--listen ${flags.listen}: expected HOST:PORT`);
  const listen = { host: m[1] ?? m[2] ?? "", port: Number(m[3]) };
  const pem = await credentials(io, flags);
  let creds: HboneCredentials = pem;
  if (flags.trustDomain !== undefined) {
    // --ca holds the roots the operator trusts for --trust-domain (and for our own trust domain)
    const own = trustDomainOf(identityOfCredentials(pem));
    try {
      const bundles = new TrustBundleSet([TrustBundle.fromPem(flags.trustDomain, pem.ca)]);
      if (own !== undefined && own !== flags.trustDomain)
        bundles.add(TrustBundle.fromPem(own, pem.ca));
      creds = { ...pem, trustBundles: bundles };
    } catch (cause) {
      throw new CliError(
        "ERR_CLI_USAGE",
        `--trust-domain ${flags.trustDomain} / --ca ${flags.ca}: ${(cause as Error).message}`,
        { cause },
      );
    }
  }
  let server: HboneServer;
  try {
    server = makeServer(io, flags, creds);
  } catch (cause) {
    if (cause instanceof HboneError && cause.code === "ERR_HBONE_CONFIG")
      throw new CliError("ERR_CLI_USAGE", cause.message, { cause });
    throw cause;
  }
  const addr = await server.listen(listen.port, listen.host);
  if (flags.output === "json")
    io.stdout(
      `${JSON.stringify({ event: "listening", address: addr.address, port: addr.port })}\n`,
    );
  else io.stdout(`listening on ${addr.address}:${addr.port}\n`);
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolve();
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  await server.close(5000);
  return EXIT_OK;
}

function makeServer(io: CliIo, flags: ServeFlags, creds: HboneCredentials): HboneServer {
  const server = new HboneServer({
    credentials: creds,
    ...(flags.trustDomain !== undefined ? { trustDomain: flags.trustDomain } : {}),
    hooks: {
      onClose: (info, s) => {
        if (flags.output === "json") {
          io.stdout(
            `${JSON.stringify({ event: "tunnel", authority: info.authority, peer: info.peerIdentity, sent: s.bytesSent, received: s.bytesReceived, error: s.error?.code })}\n`,
          );
        } else {
          io.stdout(
            `tunnel ${info.peerIdentity} → ${info.authority}: sent ${s.bytesSent} B, received ${s.bytesReceived} B${s.error ? ` (${s.error.code})` : ""}\n`,
          );
        }
      },
    },
  });
  server.on("clientError", (e: HboneError) =>
    io.stderr(`ambientkit: refused a client: ${e.message}\n`),
  );
  return server;
}
