import type { Command } from "commander";
import type { CommandContext } from "../main.js";

/** Registers `ambientkit hbone`. Owned by the hbone work; registers nothing until that lands. */
export function registerHbone(_program: Command, _ctx: CommandContext): void {}
