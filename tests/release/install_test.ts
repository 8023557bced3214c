/**
 * install.sh end to end: a python3 file server on 127.0.0.1 serves a
 * release laid out as GitHub lays one (BASE/download/TAG/ASSET and
 * BASE/latest/download/ASSET), with archives this test builds around a
 * stand-in executable; a stubbed `uname` on PATH plays each OS and CPU.
 */
import { fileURLToPath } from "node:url";
import { assertEquals, assertOk } from "../../lib/_assert.ts";
import { binaryName, packageAll, TARGETS } from "../../tools/release.ts";
import { needs, onlyOn, spawn, startPy } from "../_helpers.ts";

const INSTALL_SH = fileURLToPath(new URL("../../install.sh", import.meta.url));
const ignore = onlyOn(["linux", "darwin"], "a POSIX sh for install.sh") ||
  needs("python3", "tar", "zip", "curl");

const UNIX_TARGETS = TARGETS.filter((t) => !t.includes("windows"));

/** What the stand-in binary of `version` for `target` prints. */
function standIn(version: string, target: string): string {
  return `denocat ${version} (${target}; stand-in)`;
}

/**
 * Writes release `tag`'s archives for `targets` and its SHA256SUMS into
 * `dir`, packed by the release tool itself around stand-in executables.
 */
async function writeRelease(
  dir: string,
  tag: string,
  targets: readonly string[],
): Promise<void> {
  const dist = await Deno.makeTempDir();
  try {
    for (const target of targets) {
      await Deno.mkdir(`${dist}/${target}`);
      await Deno.writeTextFile(
        `${dist}/${target}/${binaryName(target)}`,
        `#!/bin/sh\necho '${standIn(tag.slice(1), target)}'\n`,
        { mode: 0o755 },
      );
    }
    await packageAll(dist, dir, targets);
  } finally {
    await Deno.remove(dist, { recursive: true });
  }
}

interface Release extends AsyncDisposable {
  /** DENOCAT_DOWNLOAD_BASE for the server. */
  base: string;
  /** A scratch directory removed with the fixture. */
  tmp: string;
}

/**
 * Releases served on loopback:
 * - v1.0.0 and v1.1.0 (the latest), every target (Windows as a .zip);
 * - v0.9.0 with the Linux x86_64 asset only;
 * - v6.6.6 whose Linux x86_64 archive was altered after SHA256SUMS was made;
 * - v7.7.7 whose SHA256SUMS has no line for the Linux x86_64 archive.
 */
async function releaseServer(): Promise<Release> {
  const tmp = await Deno.makeTempDir({ prefix: "denocat_install_" });
  const root = `${tmp}/releases`;
  await writeRelease(`${root}/download/v1.0.0`, "v1.0.0", TARGETS);
  await writeRelease(`${root}/download/v1.1.0`, "v1.1.0", TARGETS);
  await writeRelease(`${root}/latest/download`, "v1.1.0", TARGETS);
  await writeRelease(`${root}/download/v0.9.0`, "v0.9.0", [UNIX_TARGETS[0]!]);
  const tampered = `${root}/download/v6.6.6`;
  await writeRelease(tampered, "v6.6.6", [UNIX_TARGETS[0]!]);
  const archive = `${tampered}/denocat-${UNIX_TARGETS[0]}.tar.gz`;
  const bytes = await Deno.readFile(archive);
  bytes[bytes.length - 1]! ^= 0x01;
  await Deno.writeFile(archive, bytes);
  const unlisted = `${root}/download/v7.7.7`;
  await writeRelease(unlisted, "v7.7.7", [UNIX_TARGETS[0]!]);
  await Deno.writeTextFile(`${unlisted}/SHA256SUMS`, "");

  // uname and sysctl stand-ins: answer from the environment.
  const stub = `${tmp}/stub`;
  await Deno.mkdir(stub);
  await Deno.writeTextFile(
    `${stub}/uname`,
    '#!/bin/sh\ncase "$1" in\n  -m) echo "$STUB_ARCH" ;;\n  *) echo "$STUB_OS" ;;\nesac\n',
    { mode: 0o755 },
  );
  await Deno.writeTextFile(
    `${stub}/sysctl`,
    '#!/bin/sh\n[ -n "${STUB_TRANSLATED:-}" ] || exit 1\necho "$STUB_TRANSLATED"\n',
    { mode: 0o755 },
  );

  let server;
  try {
    server = await startPy(`
import http.server, os, sys
os.chdir(${JSON.stringify(root)})
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
print(s.server_address[1], flush=True)
s.serve_forever()
`);
  } catch (err) {
    await Deno.remove(tmp, { recursive: true });
    throw err;
  }
  const py = server;
  return {
    base: `http://127.0.0.1:${py.port}`,
    tmp,
    async [Symbol.asyncDispose]() {
      await py[Symbol.asyncDispose]();
      await Deno.remove(tmp, { recursive: true });
    },
  };
}

interface InstallRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs install.sh as `uname` reports `os`/`arch`. */
async function install(
  rel: Release,
  os: string,
  arch: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<InstallRun> {
  await using p = spawn("/bin/sh", [INSTALL_SH, ...args], {
    env: {
      PATH: `${rel.tmp}/stub:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`,
      HOME: `${rel.tmp}/home`,
      DENOCAT_DOWNLOAD_BASE: rel.base,
      STUB_OS: os,
      STUB_ARCH: arch,
      STUB_TRANSLATED: "",
      ...env,
    },
    timeout: 20000,
  });
  const out = await p.output;
  return { code: out.code, stdout: out.text, stderr: out.stderr };
}

/** Where `name` is on PATH, or undefined. */
function which(name: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (Deno.statSync(`${dir}/${name}`).isFile) return `${dir}/${name}`;
    } catch { /* not here */ }
  }
  return undefined;
}

/** Everything install.sh runs, bar the downloader and hasher it chooses. */
const BASE_TOOLS = [
  "awk",
  "cat",
  "chmod",
  "cp",
  "cut",
  "gzip",
  "mkdir",
  "mktemp",
  "mv",
  "rm",
  "tail",
  "tar",
  "tr",
];

/**
 * A PATH of only `tools` (links to the real ones) plus the uname and sysctl
 * stand-ins, so a test can take curl or sha256sum away.
 */
async function toolbox(rel: Release, tools: string[]): Promise<string> {
  const dir = await Deno.makeTempDir({ dir: rel.tmp, prefix: "path_" });
  for (const tool of [...BASE_TOOLS, ...tools]) {
    const real = which(tool);
    if (!real) throw new Error(`${tool} is not installed`);
    await Deno.symlink(real, `${dir}/${tool}`);
  }
  for (const stub of ["uname", "sysctl"]) {
    await Deno.symlink(`${rel.tmp}/stub/${stub}`, `${dir}/${stub}`);
  }
  return dir;
}

/** The entries of `dir`, or null when it does not exist. */
function entries(dir: string): string[] | null {
  try {
    return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
}

/** Runs the installed binary (the stand-in prints its identity). */
async function runInstalled(path: string): Promise<string> {
  const r = await new Deno.Command(path, { stdout: "piped" }).output();
  return new TextDecoder().decode(r.stdout).trim();
}

Deno.test({
  name: "install.sh picks the archive for each OS and CPU uname reports",
  ignore,
  async fn() {
    await using rel = await releaseServer();
    const cases: Array<[string, string, string, Record<string, string>?]> = [
      ["Linux", "x86_64", "x86_64-unknown-linux-gnu"],
      ["Linux", "amd64", "x86_64-unknown-linux-gnu"],
      ["Linux", "aarch64", "aarch64-unknown-linux-gnu"],
      ["Linux", "arm64", "aarch64-unknown-linux-gnu"],
      ["Darwin", "x86_64", "x86_64-apple-darwin"],
      ["Darwin", "arm64", "aarch64-apple-darwin"],
      // A shell under Rosetta says x86_64 on Apple silicon.
      ["Darwin", "x86_64", "aarch64-apple-darwin", { STUB_TRANSLATED: "1" }],
    ];
    for (const [i, [os, arch, target, env]] of cases.entries()) {
      const dir = `${rel.tmp}/bin${i}`;
      const r = await install(rel, os, arch, ["--dir", dir], env);
      assertEquals(r.code, 0, `${os} ${arch}: ${r.stderr}`);
      assertEquals(r.stderr, "");
      const identity = standIn("1.1.0", target);
      assertEquals(await runInstalled(`${dir}/denocat`), identity);
      assertOk(
        r.stdout.startsWith(`installed ${identity} as ${dir}/denocat\n`),
        r.stdout,
      );
      // Not on PATH: says so.
      assertOk(r.stdout.includes(`${dir} is not on your PATH`), r.stdout);
      assertEquals(entries(dir), ["denocat"]);
      assertEquals(Deno.statSync(`${dir}/denocat`).mode! & 0o777, 0o755);
    }
  },
});

Deno.test({
  name: "install.sh --version pins a release; default dir is ~/.local/bin",
  ignore,
  async fn() {
    await using rel = await releaseServer();
    for (const pin of ["v1.0.0", "1.0.0"]) {
      const r = await install(rel, "Linux", "x86_64", ["--version", pin]);
      assertEquals(r.code, 0, r.stderr);
      assertEquals(
        await runInstalled(`${rel.tmp}/home/.local/bin/denocat`),
        standIn("1.0.0", "x86_64-unknown-linux-gnu"),
      );
    }
    // Upgrading over an existing binary replaces it.
    const r = await install(rel, "Linux", "x86_64", []);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(
      await runInstalled(`${rel.tmp}/home/.local/bin/denocat`),
      standIn("1.1.0", "x86_64-unknown-linux-gnu"),
    );
    assertEquals(entries(`${rel.tmp}/home/.local/bin`), ["denocat"]);
  },
});

Deno.test({
  name: "install.sh refuses a tampered archive: exit 1, nothing installed",
  ignore,
  async fn() {
    await using rel = await releaseServer();
    // Into a fresh directory: it is not even created.
    const fresh = `${rel.tmp}/fresh`;
    let r = await install(rel, "Linux", "x86_64", [
      "--dir",
      fresh,
      "--version",
      "v6.6.6",
    ]);
    assertEquals(r.code, 1);
    assertOk(
      /^denocat install: checksum mismatch for denocat-x86_64-unknown-linux-gnu\.tar\.gz \(expected [0-9a-f]{64}, got [0-9a-f]{64}\); nothing installed\n$/
        .test(r.stderr),
      r.stderr,
    );
    assertEquals(r.stdout, "");
    assertEquals(entries(fresh), null);
    // Over an existing install: the old binary stays as it was.
    const dir = `${rel.tmp}/bin`;
    await Deno.mkdir(dir);
    await Deno.writeTextFile(`${dir}/denocat`, "#!/bin/sh\necho old\n", {
      mode: 0o755,
    });
    r = await install(rel, "Linux", "x86_64", [
      "--dir",
      dir,
      "--version",
      "v6.6.6",
    ]);
    assertEquals(r.code, 1);
    assertOk(r.stderr.includes("checksum mismatch"), r.stderr);
    assertEquals(await runInstalled(`${dir}/denocat`), "old");
    assertEquals(entries(dir), ["denocat"]);
  },
});

Deno.test({
  name: "install.sh refuses an archive SHA256SUMS does not list",
  ignore,
  async fn() {
    await using rel = await releaseServer();
    const dir = `${rel.tmp}/bin`;
    const r = await install(rel, "Linux", "x86_64", [
      "--dir",
      dir,
      "--version",
      "v7.7.7",
    ]);
    assertEquals(r.code, 1);
    assertEquals(
      r.stderr,
      "denocat install: SHA256SUMS has no entry for denocat-x86_64-unknown-linux-gnu.tar.gz; nothing installed\n",
    );
    assertEquals(entries(dir), null);
  },
});

Deno.test({
  name: "install.sh names a missing asset or release in one line, exit 1",
  ignore,
  async fn() {
    await using rel = await releaseServer();
    const dir = `${rel.tmp}/bin`;
    // v0.9.0 has no macOS build.
    let r = await install(rel, "Darwin", "arm64", [
      "--dir",
      dir,
      "--version",
      "v0.9.0",
    ]);
    assertEquals(r.code, 1);
    assertOk(
      r.stderr.startsWith(
        `denocat install: cannot download ${rel.base}/download/v0.9.0/denocat-aarch64-apple-darwin.tar.gz: `,
      ) && r.stderr.includes("404") && r.stderr.split("\n").length === 2,
      r.stderr,
    );
    // No such release at all.
    r = await install(rel, "Linux", "x86_64", [
      "--dir",
      dir,
      "--version",
      "v9.9.9",
    ]);
    assertEquals(r.code, 1);
    assertOk(
      r.stderr.startsWith(
        `denocat install: cannot download ${rel.base}/download/v9.9.9/`,
      ) && r.stderr.includes("404") && r.stderr.split("\n").length === 2,
      r.stderr,
    );
    assertEquals(entries(dir), null);
  },
});

Deno.test({
  name: "install.sh refuses platforms without a build and bad arguments",
  ignore,
  async fn() {
    await using rel = await releaseServer();
    const dir = `${rel.tmp}/bin`;
    const refusals: Array<[string, string, string[], number, RegExp]> = [
      [
        "FreeBSD",
        "amd64",
        [],
        1,
        /^denocat install: no denocat build for FreeBSD /,
      ],
      [
        "Linux",
        "riscv64",
        [],
        1,
        /^denocat install: no denocat build for Linux on riscv64 /,
      ],
      [
        "MINGW64_NT-10.0",
        "x86_64",
        [],
        1,
        /^denocat install: install\.sh does not install on Windows: download denocat-x86_64-pc-windows-msvc\.zip /,
      ],
      [
        "Linux",
        "x86_64",
        ["--version", "v1.0.0/../x"],
        2,
        /^denocat install: bad version: v1\.0\.0\/\.\.\/x /,
      ],
      [
        "Linux",
        "x86_64",
        ["--version", "latest"],
        2,
        /^denocat install: bad version: vlatest /,
      ],
      [
        "Linux",
        "x86_64",
        ["--version"],
        2,
        /^denocat install: --version needs a release tag/,
      ],
      [
        "Linux",
        "x86_64",
        ["--frobnicate"],
        2,
        /^denocat install: unknown argument: --frobnicate /,
      ],
    ];
    for (const [os, arch, args, code, re] of refusals) {
      const r = await install(rel, os, arch, ["--dir", dir, ...args]);
      assertEquals(r.code, code, `${os} ${arch} ${args}: ${r.stderr}`);
      assertOk(re.test(r.stderr), r.stderr);
      assertEquals(r.stderr.split("\n").length, 2, r.stderr);
      assertEquals(entries(dir), null);
    }
  },
});

Deno.test({
  name: "install.sh falls back to wget and to shasum (macOS has no sha256sum)",
  ignore: ignore || needs("wget", "shasum", "perl"),
  async fn() {
    await using rel = await releaseServer();
    const dir = `${rel.tmp}/bin`;
    const path = await toolbox(rel, ["wget", "shasum"]);
    let r = await install(rel, "Darwin", "arm64", ["--dir", dir], {
      PATH: path,
    });
    assertEquals(r.code, 0, r.stderr);
    assertEquals(
      await runInstalled(`${dir}/denocat`),
      standIn("1.1.0", "aarch64-apple-darwin"),
    );
    // The fallbacks still refuse a tampered archive and name a missing one.
    r = await install(rel, "Linux", "x86_64", [
      "--dir",
      `${rel.tmp}/other`,
      "--version",
      "v6.6.6",
    ], { PATH: path });
    assertEquals(r.code, 1);
    assertOk(r.stderr.includes("checksum mismatch"), r.stderr);
    r = await install(rel, "Darwin", "arm64", [
      "--dir",
      `${rel.tmp}/other`,
      "--version",
      "v0.9.0",
    ], { PATH: path });
    assertEquals(r.code, 1);
    assertOk(
      r.stderr.startsWith(
        `denocat install: cannot download ${rel.base}/download/v0.9.0/denocat-aarch64-apple-darwin.tar.gz: `,
      ) && r.stderr.includes("404") && r.stderr.split("\n").length === 2,
      r.stderr,
    );
    assertEquals(entries(`${rel.tmp}/other`), null);
  },
});

Deno.test({
  name: "install.sh says what it lacks when there is no downloader or hasher",
  ignore,
  async fn() {
    await using rel = await releaseServer();
    const dir = `${rel.tmp}/bin`;
    let r = await install(rel, "Linux", "x86_64", ["--dir", dir], {
      PATH: await toolbox(rel, ["sha256sum"]),
    });
    assertEquals(r.code, 1);
    assertEquals(r.stderr, "denocat install: needs curl or wget to download\n");
    r = await install(rel, "Linux", "x86_64", ["--dir", dir], {
      PATH: await toolbox(rel, ["curl"]),
    });
    assertEquals(r.code, 1);
    assertEquals(
      r.stderr,
      "denocat install: needs sha256sum or shasum to verify the download\n",
    );
    assertEquals(entries(dir), null);
  },
});
