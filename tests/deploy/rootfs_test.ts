// The container image's layout, proven without a container engine: the root
// filesystem deploy/rootfs.sh builds holds the agent, drbdsetup and their
// shared libraries and nothing else, and the agent's `status` works in it.
//
// Here `deno compile` cannot fetch its runtime, so the `deno` binary (same
// loader and libc needs as the compiled one) stands in for /ha-controller
// and runs the agent as a `deno bundle` output. The chroot gets what a
// container runtime always supplies, /proc and /dev, in a private mount
// namespace, and its root is mounted read-only (readOnlyRootFilesystem);
// nothing of the host's file system is visible otherwise.

import assert from "node:assert/strict";
import { freePort, testFlags } from "../sim/agent_process.ts";
import { ApiServer } from "../sim/apiserver/mod.ts";
import { deadline } from "../helpers.ts";

const repo = new URL("../../", import.meta.url).pathname;
const rootfsScript = `${repo}deploy/rootfs.sh`;

/** The first of `candidates` that is an executable file, or null. */
function findProgram(candidates: string[]): string | null {
  for (const path of candidates) {
    try {
      const info = Deno.statSync(path);
      if (info.isFile && ((info.mode ?? 0) & 0o111) !== 0) return path;
    } catch {
      // Not there: try the next place.
    }
  }
  return null;
}

function inSystemDirs(name: string): string[] {
  return ["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map((dir) => `${dir}/${name}`);
}

const tools = {
  drbdsetup: findProgram(inSystemDirs("drbdsetup")),
  unshare: findProgram(inSystemDirs("unshare")),
  mount: findProgram(inSystemDirs("mount")),
  chroot: findProgram(inSystemDirs("chroot")),
  ldd: findProgram(inSystemDirs("ldd")),
};

/** Why the chroot test cannot run here, or null when it can. */
function chrootUnavailable(): string | null {
  if (Deno.build.os !== "linux") return `needs Linux, this is ${Deno.build.os}`;
  if (tools.drbdsetup === null) {
    return "drbdsetup is not installed (apt-get install drbd-utils; .ci/run does this)";
  }
  for (const [name, path] of Object.entries(tools)) {
    if (path === null) return `${name} is not installed`;
  }
  if (Deno.uid() !== 0) return "chroot and mount namespaces need root";
  const probe = new Deno.Command(tools.unshare!, {
    args: ["--mount", "--propagation", "private", "--", tools.chroot!, "/", "/bin/true"],
    stdout: "null",
    stderr: "piped",
  }).outputSync();
  if (!probe.success) {
    const said = new TextDecoder().decode(probe.stderr).trim();
    return `unshare --mount and chroot are not permitted here: ${said}`;
  }
  return null;
}

const skipReason = chrootUnavailable();
if (skipReason !== null) {
  console.warn(`tests/deploy/rootfs_test.ts: SKIPPING the chroot test: ${skipReason}`);
}

async function run(program: string, args: string[], options: { cwd?: string } = {}) {
  const output = await new Deno.Command(program, {
    args,
    cwd: options.cwd,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(deadline(120_000)),
  }).output();
  const text = {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
  assert.equal(
    text.code,
    0,
    `expected ${program} ${args.join(" ")} to succeed, it exited ${text.code}: ${text.stderr}`,
  );
  return text;
}

/** Every file and symlink under `root`, as absolute paths inside it, sorted. */
async function listFiles(root: string, dir = ""): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(`${root}${dir}`)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) found.push(...await listFiles(root, path));
    else found.push(path);
  }
  return found.sort();
}

Deno.test({
  name:
    "the agent's status runs in a read-only chroot of the image's root filesystem and sees DRBD absent",
  ignore: skipReason !== null,
  permissions: "inherit",
  fn: async () => {
    const work = await Deno.makeTempDir({ prefix: "ha-rootfs-" });
    const root = `${work}/root`;
    const server = await ApiServer.start({ tls: true });
    try {
      server.create({
        apiVersion: "v1",
        kind: "Node",
        metadata: { name: "node-a" },
        spec: {},
        status: { conditions: [{ type: "Ready", status: "True", reason: "KubeletReady" }] },
      });

      await run(rootfsScript, [root, Deno.execPath(), tools.drbdsetup!]);
      const files = await listFiles(root);
      const libraries = files.filter((f) => /^\/(usr\/)?lib(64|x32|32)?\/.*\.so[.0-9]*$/.test(f));
      assert.deepEqual(
        files.filter((f) => !libraries.includes(f)),
        ["/etc/group", "/etc/passwd", "/ha-controller", "/usr/sbin/drbdsetup"],
        `expected only the two programs, /etc/passwd and /etc/group besides libraries, got ${files}`,
      );
      assert.ok(
        libraries.some((f) => f.includes("/ld-linux")) && libraries.some((f) => /libc\.so/.test(f)),
        `expected the dynamic loader and libc in the root filesystem, got ${libraries}`,
      );

      // The agent as one JavaScript file (the compiled binary embeds the same
      // module graph), and the kubeconfig it is pointed at.
      await run(Deno.execPath(), [
        "bundle",
        "--platform",
        "deno",
        "--quiet",
        "-o",
        `${work}/agent.js`,
        "main.ts",
      ], {
        cwd: repo,
      });
      await Deno.copyFile(`${work}/agent.js`, `${root}/agent.js`);
      await Deno.copyFile(server.kubeconfigPath, `${root}/kubeconfig`);
      // Mount points a container runtime creates and fills.
      await Deno.mkdir(`${root}/proc`);
      await Deno.mkdir(`${root}/dev`);

      const api = new URL(server.url);
      const flags = await testFlags(
        `${api.hostname}:${api.port}`,
        `127.0.0.1:${freePort()}`,
        "/kubeconfig",
      );
      // Read-only, as the DaemonSet's readOnlyRootFilesystem makes it.
      const inChroot =
        `${tools.mount} --bind "$0" "$0" && ${tools.mount} -o remount,bind,ro "$0" && ` +
        `${tools.mount} -t proc proc "$0/proc" && ${tools.mount} --rbind /dev "$0/dev" && ` +
        `exec ${tools.chroot} "$0" "$@"`;
      const output = await new Deno.Command(tools.unshare!, {
        args: [
          "--mount",
          "--propagation",
          "private",
          "--",
          "/bin/sh",
          "-c",
          inChroot,
          root,
          "/ha-controller",
          "run",
          ...flags,
          "/agent.js",
          "status",
          "--node-name",
          "node-a",
          "--kubeconfig",
          "/kubeconfig",
        ],
        clearEnv: true,
        env: { PATH: "/usr/sbin" },
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(deadline(60_000)),
      }).output();
      const stdout = new TextDecoder().decode(output.stdout);
      const stderr = new TextDecoder().decode(output.stderr);
      const said = `stdout:\n${stdout}\nstderr:\n${stderr}`;
      assert.equal(output.code, 0, `expected status to exit 0 in the chroot, ${said}`);
      assert.match(stdout, /^NODE node-a$/m, said);
      assert.match(stdout, /^CLUSTER synced$/m, said);
      // drbdsetup ran (loader and libc found) and said the module is missing:
      // there is no DRBD kernel module here, and no modprobe in the image.
      assert.match(stdout, /^DRBD not-loaded\b/m, said);
    } finally {
      await server.close();
      await Deno.remove(work, { recursive: true });
    }
  },
});

Deno.test("the Dockerfile pins package.json's Deno, compiles with deno.json's task and ends on scratch", async () => {
  const dockerfile = await Deno.readTextFile(`${repo}deploy/Dockerfile`);
  const packageJson = JSON.parse(await Deno.readTextFile(`${repo}package.json`));
  const instructions = dockerfile.split("\n").filter((line) => /^[A-Z]+ /.test(line));
  const froms = instructions.filter((line) => line.startsWith("FROM "));

  const denoImage = froms.find((line) => line.includes("denoland/deno"));
  assert.equal(
    denoImage,
    `FROM denoland/deno:debian-${packageJson.devDependencies.deno} AS build`,
    "expected the build stage on the official Deno image of package.json's pinned version",
  );
  // npm ci needs the lock file and the .npmrc it was made with (legacy-peer-deps).
  assert.ok(
    instructions.includes("COPY package.json package-lock.json .npmrc ./") &&
      instructions.includes("RUN npm ci --no-audit --no-fund"),
    `expected the dependencies stage to copy .npmrc with the lock file and run npm ci, got ${instructions}`,
  );
  // One source of truth for the production permissions: the compile task.
  assert.ok(
    instructions.includes("RUN deno task compile"),
    `expected the build stage to run deno.json's compile task, got ${instructions}`,
  );
  assert.doesNotMatch(
    instructions.join("\n"),
    /--allow-|--deny-|--ignore-env/,
    "expected no Deno permission flags of the Dockerfile's own",
  );
  const config = JSON.parse(await Deno.readTextFile(`${repo}deno.json`));
  assert.match(config.tasks.compile, /--output dist\/ha-controller /);
  assert.ok(
    instructions.includes("COPY --from=build /src/dist/ha-controller /usr/local/bin/ha-controller"),
  );
  assert.ok(
    instructions.includes("RUN rootfs.sh /rootfs /usr/local/bin/ha-controller /usr/sbin/drbdsetup"),
    "expected the root filesystem built by deploy/rootfs.sh",
  );

  // The final stage: the assembled root filesystem and nothing that needs a shell.
  const final = instructions.slice(instructions.lastIndexOf(froms[froms.length - 1]));
  assert.deepEqual(final, [
    "FROM scratch",
    "COPY --from=rootfs /rootfs/ /",
    "ENV PATH=/usr/sbin",
    "USER 0:0",
    'ENTRYPOINT ["/ha-controller"]',
  ]);
});
