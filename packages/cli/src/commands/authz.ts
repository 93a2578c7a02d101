import type { Command } from "commander";
import type { CommandContext } from "../main.js";

/** Registers `ambientkit authz`. Owned by the authz work; registers nothing until that lands. */
export function registerAuthz(_program: Command, _ctx: CommandContext): void {}
