import type { Command } from "commander";
import type { CommandContext } from "../main.js";

/** Registers `ambientkit svid`. Owned by the svid work; registers nothing until that lands. */
export function registerSvid(_program: Command, _ctx: CommandContext): void {}
