/**
 * Shared pieces of the demo tour: section headings, the commands shown to
 * the reader, and checks that stop the tour when something is wrong.
 *
 * @module
 */
export {
  randomBytes,
  runCli,
  sha256,
  startCli,
  startServer,
} from "../tests/_helpers.ts";

const bold = (s: string) => Deno.noColor ? s : `\x1b[1m${s}\x1b[0m`;
const green = (s: string) => Deno.noColor ? s : `\x1b[32m${s}\x1b[0m`;

/** Prints a section heading. */
export function section(title: string): void {
  console.log(`\n${bold(`== ${title}`)}`);
}

/** Prints the command a user would type for this step. */
export function shows(command: string): void {
  console.log(`  $ ${command}`);
}

/** Prints a result line. */
export function says(text: string): void {
  for (const line of text.replace(/\n$/, "").split("\n")) {
    console.log(`    ${line}`);
  }
}

/** Records a check; throws (ending the demo with exit 1) when it fails. */
export function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`check failed: ${what}`);
  console.log(`  ${green("✓")} ${what}`);
}
