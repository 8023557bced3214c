/**
 * `deno task demo`: a real loopback tour of every denocat mode. Each section
 * runs the CLI as a user would, shows the commands, and checks the results;
 * any failed check ends the tour with exit code 1.
 *
 * @module
 */
const SECTIONS: Array<[string, () => Promise<{ run(): Promise<void> }>]> = [
  ["tcp", () => import("./demo/tcp.ts")],
  ["udp", () => import("./demo/udp.ts")],
  ["framing", () => import("./demo/framing.ts")],
  ["transfer", () => import("./demo/transfer.ts")],
  ["shell", () => import("./demo/shell.ts")],
  ["forward", () => import("./demo/forward.ts")],
];

if (import.meta.main) {
  const only = Deno.args[0];
  if (only && !SECTIONS.some(([name]) => name === only)) {
    console.error(
      `demo: no section named ${only}; sections: ${
        SECTIONS.map(([n]) => n).join(", ")
      }`,
    );
    Deno.exit(2);
  }
  const t0 = performance.now();
  try {
    for (const [name, load] of SECTIONS) {
      if (only && only !== name) continue;
      await (await load()).run();
    }
  } catch (err) {
    console.error(`\ndemo: ${err instanceof Error ? err.message : err}`);
    Deno.exit(1);
  }
  console.log(
    `\nAll checks passed in ${((performance.now() - t0) / 1000).toFixed(1)} s.`,
  );
}
