import type { Command } from "commander";
import type { CommandContext } from "../main.js";

/** Registers `ambientkit ca`. Owned by the ca work; registers nothing until that lands. */
export function registerCa(_program: Command, _ctx: CommandContext): void {}
