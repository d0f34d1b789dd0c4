// src/gen/replicator.ts is capnp-es's output for schema/replicator.capnp, committed so the
// package builds without the Cap'n Proto compiler. This checks it is up to date (`npm run
// generate` refreshes it); skipped where `capnp` (Debian's capnproto) is not installed.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const schema = resolve(
  process.env.REPLICATOR_SCHEMA ?? join(root, "..", "..", "schema", "replicator.capnp"),
);

function hasCapnp() {
  try {
    execFileSync("capnp", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

test(
  "the committed generated code matches the schema",
  { skip: !hasCapnp() && "capnp not installed" },
  () => {
    assert.ok(existsSync(schema), `${schema} not found (set REPLICATOR_SCHEMA)`);
    const out = mkdtempSync(join(tmpdir(), "replicator-gen-"));
    try {
      execFileSync(
        join(root, "node_modules", ".bin", "capnp-es"),
        [schema, `--src-prefix=${dirname(schema)}`, `-ots:${out}`],
        {
          cwd: root,
          stdio: ["ignore", "ignore", "pipe"],
        },
      );
      const fresh = readFileSync(join(out, "replicator.ts"), "utf8");
      const committed = readFileSync(join(root, "src", "gen", "replicator.ts"), "utf8");
      assert.ok(
        fresh === committed,
        "src/gen/replicator.ts is stale: run `npm run generate` in clients/typescript",
      );
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  },
);
