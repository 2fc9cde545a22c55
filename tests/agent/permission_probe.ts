// Run with the agent's permission flags: reports what those flags allow.
// Each line is `<what>: allowed` or `<what>: denied (<error name>)`.

async function probe(what: string, attempt: () => Promise<unknown> | unknown): Promise<void> {
  try {
    await attempt();
    console.log(`${what}: allowed`);
  } catch (err) {
    console.log(`${what}: denied (${err instanceof Error ? err.name : String(err)})`);
  }
}

await probe(
  "run drbdsetup",
  () => new Deno.Command("drbdsetup", { args: ["events2", "--now"] }).output(),
);
await probe("run sh", () => new Deno.Command("sh", { args: ["-c", "true"] }).output());
await probe("run /bin/true", () => new Deno.Command("/bin/true").output());
await probe("write /tmp", () => Deno.writeTextFile("/tmp/ha-controller-probe", "x"));
await probe("read /etc/passwd", () => Deno.readTextFile("/etc/passwd"));
await probe("ffi", () => Deno.dlopen("libc.so.6", {}));
await probe("sys", () => Deno.hostname());
await probe("env HOME is hidden", () => {
  if (Deno.env.get("HOME") !== undefined) throw new Error("visible");
});
