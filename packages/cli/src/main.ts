import { createRequire } from "node:module";
import { Command, CommanderError } from "commander";
import { type CommandContext, EXIT_OK, EXIT_USAGE } from "./command.js";
import { CliError } from "./errors.js";
import { type CliIo, describe } from "./io.js";

/**
 * Runs the CLI with `argv` (without `node` and the script path) and returns the exit code:
 * 0 ok, 1 a failure was found, 2 usage or input error.
 */
export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  let exit = EXIT_OK;
  const ctx: CommandContext = {
    io,
    setExit(code) {
      exit = Math.max(exit, code);
    },
  };
  const program = new Command("ambientkit")
    .description("Service-mesh primitives for Istio ambient mode")
    .version(cliVersion(), "-V, --version")
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout(s),
      writeErr: (s) => io.stderr(s),
    })
    .showHelpAfterError(false);
  try {
    for (const register of await registrations(argv[0])) register(program, ctx);
    for (const cmd of program.commands) applyHouseRules(cmd);
    await program.parseAsync([...argv], { from: "user" });
    return exit;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version are not failures; everything else commander rejects is usage.
      if (error.code === "commander.helpDisplayed" || error.code === "commander.version") return 0;
      if (error.code === "commander.help") return 0;
      return EXIT_USAGE;
    }
    if (error instanceof CliError) {
      io.stderr(`ambientkit: ${error.message}\n`);
      return EXIT_USAGE;
    }
    io.stderr(`ambientkit: ${describe(error)}\n`);
    return EXIT_USAGE;
  }
}

type Register = (program: Command, ctx: CommandContext) => void;

/** Each command's module, loaded on demand: they pull in libraries that take long to load. */
const COMMANDS: Record<string, () => Promise<Register>> = {
  validate: async () => (await import("./commands/validate.js")).registerValidate,
  authz: async () => (await import("./commands/authz.js")).registerAuthz,
  ca: async () => (await import("./commands/ca.js")).registerCa,
  svid: async () => (await import("./commands/svid.js")).registerSvid,
  hbone: async () => (await import("./commands/hbone.js")).registerHbone,
  xds: async () => (await import("./commands/xds.js")).registerXds,
};

/**
 * The commands to register: only the one being run (so `validate` does not load the HBONE and
 * identity libraries), or all of them for help, version and unknown commands.
 */
function registrations(first: string | undefined): Promise<Register[]> {
  const load = first !== undefined ? COMMANDS[first] : undefined;
  if (load !== undefined) return Promise.all([load()]);
  return Promise.all(Object.values(COMMANDS).map((l) => l()));
}

function cliVersion(): string {
  // package.json sits one level above both src/ (tests) and dist/ (the installed binary).
  const pkg = createRequire(import.meta.url)("../package.json") as { version: string };
  return pkg.version;
}

function applyHouseRules(cmd: Command): void {
  cmd.exitOverride();
  for (const sub of cmd.commands) applyHouseRules(sub);
}
