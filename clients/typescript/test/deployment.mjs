// Starts a real local Replicator deployment (replicator-local: replicatord processes on
// 127.0.0.1, TLS with a throw-away CA unless insecure) for the tests, and stops it by PID.
// Binaries: $REPLICATOR_BIN_DIR (default ../../build/bin, the build tree of this repository).
import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const binDir = resolve(
  process.env.REPLICATOR_BIN_DIR ?? join(here, "..", "..", "..", "build", "bin"),
);

function bin(name) {
  const path = join(binDir, name);
  if (!existsSync(path)) {
    throw new Error(
      `${path} not found: build the repository, or set REPLICATOR_BIN_DIR to its bin directory`,
    );
  }
  return path;
}

// The `replicator` CLI, for certificates. Throws with its stderr on failure.
export function replicatorCli(args) {
  return execFileSync(bin("replicator"), args, {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 30000,
  });
}

const kStartTimeoutMs = 90000;
const kStopTimeoutMs = 30000;

// Starts `clusters` x `nodes`; resolves to {dir, certsDir, addresses, stop()} once every node
// is up (replicator-local prints its addresses then).
export async function startDeployment({ clusters = 1, nodes = 3, insecure = false } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "replicator-ts-"));
  const args = [`--clusters=${clusters}`, `--nodes=${nodes}`, "--storage=memory", `--dir=${dir}`];
  if (insecure) args.push("--insecure");
  const child = spawn(bin("replicator-local"), args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.setEncoding("utf8");
  child.stderr.setEncoding("utf8");
  const exited = new Promise((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(new Error(`replicator-local not ready within ${kStartTimeoutMs} ms:\n${out}${err}`)),
      kStartTimeoutMs,
    );
    child.stdout.on("data", (chunk) => {
      out += chunk;
      if (out.includes("Ctrl-C stops every node.")) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr.on("data", (chunk) => (err += chunk));
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(
        new Error(
          `replicator-local exited (code ${code}, signal ${signal}) before it was ready:\n${out}${err}`,
        ),
      );
    });
  });
  let stopped = false;
  // Should the test process end without stop() (a crash), the launcher still stops its nodes.
  const onExit = () => {
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, "SIGTERM");
  };
  process.once("exit", onExit);
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    process.off("exit", onExit);
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(child.pid, "SIGTERM"); // it stops every node by PID, then exits
      const timer = setTimeout(() => child.kill("SIGKILL"), kStopTimeoutMs);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await ready;
  } catch (e) {
    await stop();
    throw e;
  }
  const addresses = [...out.matchAll(/^ {2}cluster (\S+) {2}(\S+:\d+)/gm)].map((m) => ({
    cluster: m[1],
    address: m[2],
  }));
  if (addresses.length !== clusters * nodes) {
    await stop();
    throw new Error(
      `expected ${clusters * nodes} node addresses from replicator-local, got:\n${out}`,
    );
  }
  // The PID of node `index` (in the order of `addresses`): the launcher's child whose data
  // dir is DIR/c<cluster>-n<node>.
  const nodePid = (index) => {
    const dataDir = join(dir, `c${Math.floor(index / nodes) + 1}-n${(index % nodes) + 1}`);
    const children = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, "utf8")
      .trim()
      .split(/\s+/);
    for (const pid of children) {
      const args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      if (args.includes(`--data-dir=${dataDir}`)) return Number(pid);
    }
    throw new Error(`no node with --data-dir=${dataDir} among the launcher's children ${children}`);
  };
  return {
    dir,
    certsDir: insecure ? undefined : join(dir, "certs"),
    addresses,
    pid: child.pid,
    nodePid,
    stop,
  };
}
