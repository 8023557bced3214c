/**
 * Fixtures for the identity tests: two python clients that share a source
 * port (tests/fixtures/same_port_clients.py), file writers that carry a
 * descriptor (so the pump may take them over), and /proc readers.
 *
 * @module
 */
import { assertOk } from "../../lib/_assert.ts";

const SCRIPT =
  new URL("../fixtures/same_port_clients.py", import.meta.url).pathname;

/** The two clients, driven one command at a time. */
export interface SamePortClients extends AsyncDisposable {
  /** The source port both use. */
  sport: number;
  /**
   * Sends a command; resolves when its answer line comes, with what
   * follows the answer ("" when it succeeded, " error: ..." otherwise).
   */
  run(command: string): Promise<string>;
}

/** A temporary directory holding the clients' payloads as files `a` and `b`; removed on dispose. */
export async function payloadDir(
  a: Uint8Array,
  b: Uint8Array,
): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir();
  await Deno.writeFile(`${path}/a`, a);
  await Deno.writeFile(`${path}/b`, b);
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  };
}

/** Starts the clients toward `host:port`; their payloads are files `a` and `b`. */
export async function samePortClients(
  host: string,
  port: number,
  a: string,
  b: string,
): Promise<SamePortClients> {
  const child = new Deno.Command("python3", {
    args: [SCRIPT, host, String(port), a, b],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const stdin = child.stdin.getWriter();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).values();
  let buffered = "";
  const waiting = new Map<string, (rest: string) => void>();
  const nextLine = async (): Promise<string | undefined> => {
    while (!buffered.includes("\n")) {
      const r = await lines.next();
      if (r.done) return undefined;
      buffered += r.value;
    }
    const i = buffered.indexOf("\n");
    const line = buffered.slice(0, i);
    buffered = buffered.slice(i + 1);
    return line;
  };
  const first = await nextLine();
  assertOk(first?.startsWith("port "), `python said ${first}`);
  const reading = (async () => {
    for (let line; (line = await nextLine()) !== undefined;) {
      const key = line.split(" ", 2).join(" ");
      const rest = line.slice(key.length);
      const w = waiting.get(key);
      waiting.delete(key);
      w?.(rest);
    }
  })();
  const answer: Record<string, string> = {
    connect: "connected",
    send: "sent",
    finish: "finished",
    reset: "reset",
  };
  return {
    sport: Number(first!.slice(5)),
    async run(command: string) {
      const [verb, who] = command.split(" ");
      const expect = `${answer[verb!]} ${who}`;
      const done = new Promise<string>((r) => waiting.set(expect, r));
      await stdin.write(new TextEncoder().encode(command + "\n"));
      let timer: ReturnType<typeof setTimeout> | undefined;
      return await Promise.race([
        done,
        new Promise<never>((_, reject) =>
          timer = setTimeout(
            () => reject(new Error(`python: no answer to ${command}`)),
            20_000,
          )
        ),
      ]).finally(() => clearTimeout(timer));
    },
    async [Symbol.asyncDispose]() {
      await stdin.close().catch(() => {});
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      await child.status;
      await reading.catch(() => {});
    },
  };
}

const libc = Deno.build.os === "linux"
  ? Deno.dlopen("libc.so.6", {
    open: { parameters: ["buffer", "i32", "i32"], result: "i32" },
    write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
    close: { parameters: ["i32"], result: "i32" },
    getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
    setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  }).symbols
  : undefined;

/**
 * A file written through its own descriptor (so the pump can take it over),
 * as a Writer. Before the pump takes over, `beforeWrite(total, n)` runs
 * ahead of each write: the tests slow the plain loop down with it, or hold
 * it at the hand-off.
 */
export function fileWriter(
  path: string,
  beforeWrite: (total: number, n: number) => Promise<void> | void = () => {},
) {
  const fd = libc!.open(
    new TextEncoder().encode(path + "\0"),
    0o1 | 0o100 | 0o1000, /* O_WRONLY | O_CREAT | O_TRUNC */
    0o600,
  );
  assertOk(fd >= 0, `open ${path}`);
  let total = 0;
  return {
    fd,
    async write(p: Uint8Array) {
      await beforeWrite(total, p.length);
      const n = Number(libc!.write(fd, p, BigInt(p.length)));
      if (n < 0) throw new Error(`write ${path} failed`);
      total += n;
      return n;
    },
    [Symbol.dispose]() {
      libc!.close(fd);
    },
  };
}

/** Slows each write before 4 MiB a little, so the pump thread is up in time. */
export const paced = async (total: number) => {
  if (total >= 1 << 20 && total < 4 << 20) {
    await new Promise((r) => setTimeout(r, 100));
  }
};

/** Raises this process's soft RLIMIT_NOFILE to at least `n` (up to the hard limit). */
export function raiseFdLimit(n: number): void {
  const lim = new BigUint64Array(2);
  const bytes = new Uint8Array(lim.buffer);
  assertOk(libc!.getrlimit(7, /* RLIMIT_NOFILE */ bytes) === 0);
  if (lim[0]! >= BigInt(n)) return;
  assertOk(
    lim[1]! >= BigInt(n),
    `the hard RLIMIT_NOFILE (${
      lim[1]
    }) is below ${n}; raise it to run this test`,
  );
  lim[0] = BigInt(n);
  assertOk(libc!.setrlimit(7, bytes) === 0, "setrlimit");
}

/** The descriptors of process `pid` that are sockets, as "N -> socket:[inode]". */
export function socketsOf(pid: number | "self"): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(`/proc/${pid}/fd`)) {
    try {
      const target = Deno.readLinkSync(`/proc/${pid}/fd/${e.name}`);
      if (target.startsWith("socket:")) out.push(`${e.name} -> ${target}`);
    } catch { /* closed meanwhile */ }
  }
  return out;
}

/**
 * The sockets and epoll or event descriptors of process `pid` that a child
 * it spawned would inherit: open without O_CLOEXEC, with what each links
 * to. (Files and pipes its own parent passed down are not counted.)
 */
export function inheritable(pid: number): string[] {
  const out: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(`/proc/${pid}/fd`)];
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return out; // it has exited
    throw err;
  }
  for (const e of entries) {
    try {
      const target = Deno.readLinkSync(`/proc/${pid}/fd/${e.name}`);
      if (!/^(socket|anon_inode):/.test(target)) continue;
      const info = Deno.readTextFileSync(`/proc/${pid}/fdinfo/${e.name}`);
      const flags = parseInt(/^flags:\s*([0-7]+)/m.exec(info)![1]!, 8);
      if ((flags & 0o2000000) === 0) out.push(`${e.name} -> ${target}`);
    } catch { /* closed meanwhile */ }
  }
  return out;
}
