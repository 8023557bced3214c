/**
 * The interactive shell client driven as a person would, inside tmux
 * (send-keys, capture-pane): Ctrl-C at the prompt interrupts the remote
 * command and brings the prompt back; `shell -t` gives the server's shell a
 * terminal (cd persists, the window size and its changes arrive, Ctrl-C
 * reaches the remote foreground job, the exit code comes back, the local
 * terminal is restored).
 */
import { assertEquals, assertOk } from "../lib/_assert.ts";
import { needs, startServer, testOnlyOn } from "./_helpers.ts";

// The server's terminals come from util-linux script; tmux drives the client.
const test = testOnlyOn(["linux"], "util-linux script and tmux");

const CLI = new URL("../cli.ts", import.meta.url).pathname;

/** A tmux server of our own, one session running `command`. */
function tmux(command: string, size = { cols: 120, rows: 40 }) {
  const socket = `denocat-test-${crypto.randomUUID().slice(0, 8)}`;
  const run = (...args: string[]) =>
    new Deno.Command("tmux", {
      args: ["-L", socket, "-f", "/dev/null", ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
  const started = run(
    "new-session",
    "-d",
    "-s",
    "t",
    "-x",
    String(size.cols),
    "-y",
    String(size.rows),
    command,
  );
  const screen = async () =>
    new TextDecoder().decode(
      (await run("capture-pane", "-p", "-t", "t")).stdout,
    );
  return {
    started,
    screen,
    keys: (...keys: string[]) => run("send-keys", "-t", "t", ...keys),
    resize: (cols: number, rows: number) =>
      run("resize-window", "-t", "t", "-x", String(cols), "-y", String(rows)),
    /** Waits until the screen matches `re`; returns the screen. */
    async until(re: RegExp, ms = 10_000): Promise<string> {
      const deadline = Date.now() + ms;
      let last = "";
      while (Date.now() < deadline) {
        last = await screen();
        if (re.test(last)) return last;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`screen never matched ${re}:\n${last}`);
    },
    async [Symbol.asyncDispose]() {
      await run("kill-server");
    },
  };
}

async function readRc(file: string, ms = 10_000): Promise<string> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    try {
      const text = await Deno.readTextFile(file);
      if (text.endsWith("\n")) return text.trim();
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${file} never written`);
}

test(
  "shell prompt: Ctrl-C interrupts the remote command's group and the prompt comes back (tmux)",
  {
    ignore: needs("tmux"),
  },
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "denocat-tmux-" });
    try {
      await using srv = await startServer([
        "shell",
        "-l",
        "--insecure-no-auth",
        "127.0.0.1",
        "0",
      ]);
      const rc = `${dir}/rc`;
      await using t = tmux(
        `${Deno.execPath()} run -A ${CLI} shell 127.0.0.1 ${srv.port}; echo "rc=$?" > ${rc}; sleep 60`,
      );
      await t.started;
      // capture-pane drops trailing blanks: the prompt shows as "...>".
      await t.until(new RegExp(`denocat 127\\.0\\.0\\.1:${srv.port}>$`, "m"));
      await t.keys("sleep 31.5", "Enter");
      await srv.waitForStderr(/exec-start peer=\S+ pid=\d+ cmd="sleep 31\.5"/);
      const t0 = performance.now();
      await t.keys("C-c");
      const screen = await t.until(/\[killed by SIGINT\]\n.*>$/m);
      const back = performance.now() - t0;
      assertOk(back < 2000, `prompt back after ${back} ms`);
      await srv.waitForStderr(/exec peer=\S+ exit=130 signal=SIGINT/);
      // The session goes on.
      await t.keys("echo after-$((6*7))", "Enter");
      await t.until(/^after-42$/m);
      // At the prompt, Ctrl-C drops the half-typed line for a fresh prompt.
      await t.keys("echo never");
      await t.until(/> echo never/);
      await t.keys("C-c");
      await t.keys("exit", "Enter");
      assertEquals(await readRc(rc), "rc=0");
      assertOk(!srv.stderrSoFar().includes("never"), "the dropped line ran");
      assertOk(screen.includes("sleep 31.5"));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

test(
  "shell -t: a remote terminal: cd persists, size and resizes arrive, Ctrl-C, exit code, terminal restored (tmux)",
  {
    ignore: needs("tmux", "script", "stty"),
  },
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "denocat-tmux-" });
    try {
      await using srv = await startServer([
        "shell",
        "-l",
        "--insecure-no-auth",
        "--shell",
        "/bin/sh",
        "127.0.0.1",
        "0",
      ]);
      const rc = `${dir}/rc`;
      await using t = tmux(
        `${Deno.execPath()} run -A ${CLI} shell -t 127.0.0.1 ${srv.port}; echo "rc=$? $(stty -a | grep -o -- '-\\?icanon' | head -n 1)" > ${rc}; sleep 60`,
        { cols: 120, rows: 40 },
      );
      await t.started;
      await srv.waitForStderr(/exec-start peer=\S+ pid=\d+ pty cmd=""/);
      await t.keys("PS1='R> '", "Enter");
      await t.until(/R>$/m);
      await t.keys(`cd ${dir}`, "Enter");
      await t.keys("pwd; tty; stty size", "Enter");
      const s1 = await t.until(/^40 120$/m);
      assertOk(s1.includes(`${await Deno.realPath(dir)}\n/dev/pts/`), s1);
      assertOk(/^\/dev\/pts\/\d+$/m.test(s1), s1);
      await t.resize(100, 30);
      await new Promise((r) => setTimeout(r, 500));
      await t.keys("clear; stty size", "Enter");
      await t.until(/^30 100$/m);
      await t.keys("sleep 33.5", "Enter");
      await new Promise((r) => setTimeout(r, 300));
      const t0 = performance.now();
      await t.keys("C-c");
      await t.keys("echo back-$((6*7))", "Enter");
      await t.until(/back-42$/m);
      const back = performance.now() - t0;
      assertOk(back < 2000, `remote prompt back after ${back} ms`);
      await t.keys("exit 7", "Enter");
      // The remote code comes back, and the local terminal is cooked again.
      assertEquals(await readRc(rc), "rc=7 icanon");
      await srv.waitForStderr(/exec peer=\S+ exit=7 .*cmd=""/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
