// A minimal Node.js `net` echo server: the baseline for bench/echo_load.ts.
const net = require("node:net");
const server = net.createServer((s) => {
  s.setNoDelay(true);
  s.on("error", () => {});
  s.pipe(s);
});
server.listen(Number(process.argv[2]), "127.0.0.1");
