#!/usr/bin/env node
// The installed `ambientkit` command. A small shim rather than dist/bin.js itself: npm links a
// workspace's bin at install time, before a fresh checkout has built dist/, and a missing target
// leaves `npx ambientkit` looking in the public registry instead.
import("../dist/bin.js").catch((error) => {
  if (error?.code === "ERR_MODULE_NOT_FOUND" && String(error.message).includes("dist/bin.js")) {
    process.stderr.write(
      "ambientkit: the CLI is not built yet; run `npm run build` (tsc -b) in the repository first\n",
    );
    process.exitCode = 2;
    return;
  }
  throw error;
});
