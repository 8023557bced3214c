/**
 * A connect-scan worker (see scan.ts): runs {@linkcode ConnectScanner} on
 * the shared job until no port is left to claim, beside the main thread.
 *
 * Messages in: one {@linkcode ScanJob}. Messages out: `{ done: true }` once
 * this thread will write no more results (also when libc cannot be opened
 * here: it then claims nothing and the other threads scan every port).
 *
 * @module
 */
import { libc } from "./libc.ts";
import { workerScope } from "./_worker_scope.ts";
import { ConnectScanner } from "./_scan_core.ts";
import { BUSY, type ScanJob } from "./scan_job.ts";

const scope = workerScope<ScanJob>();

scope.onmessage = (e: MessageEvent<ScanJob>) => {
  const c = libc();
  const control = new Int32Array(e.data.control);
  if (c !== null) {
    // Raised before the first claim, so that the main thread, finding no
    // port left to claim, knows whether to wait for this one.
    Atomics.add(control, BUSY, 1);
    try {
      new ConnectScanner(c, e.data).run();
    } finally {
      Atomics.sub(control, BUSY, 1);
    }
  }
  scope.postMessage({ done: true });
  scope.close();
};
