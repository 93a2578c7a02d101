import type { Command } from "commander";
import type { CommandContext } from "../main.js";

/** Registers `ambientkit validate`. Owned by the validate work; registers nothing until that lands. */
export function registerValidate(_program: Command, _ctx: CommandContext): void {}
