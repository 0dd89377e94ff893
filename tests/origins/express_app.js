// Express as an origin for tests/differential.rs, configured the plain way: the default router
// (case-insensitive, non-strict), one handler for the checkout and everything below it, the VIP
// presale for its host name only, a catch-all for the rest. `node express_app.js MODULE LABEL`
// loads MODULE (`express` is Express 5, `express4` Express 4, both under
// target/test-origins/node_modules, found through NODE_PATH). Binds 127.0.0.1 port 0 and prints
// `PORT <n>` on stdout once it listens.
"use strict";

const http = require("http");

const [moduleName, label] = process.argv.slice(2);
const express = require(moduleName);
const major = Number(require(`${moduleName}/package.json`).version.split(".")[0]);
const app = express();

app.use((req, res, next) => {
  res.set("X-Origin", label);
  next();
});

// Node itself refuses an HTTP/1.1 request without Host with a bare 400 (`requireHostHeader`,
// on by default); the server below turns that off and this does the same, marked as the
// origin's answer so a test can tell it from usher's own 400.
app.use((req, res, next) => {
  if (req.httpVersion === "1.1" && req.headers.host === undefined) {
    return res.status(400).end();
  }
  next();
});

// Express 5 names its wildcards (path-to-regexp 8); Express 4 takes a bare `*`.
const below = major >= 5 ? "/checkout/*rest" : "/checkout/*";
app.all(["/checkout", below], (req, res) => {
  res.type("text/plain").send(`PROTECTED:${label} checkout ${req.path}\n`);
});

app.get("/vip", (req, res, next) => {
  if (req.hostname !== "shop.test") return next();
  res.type("text/plain").send(`PROTECTED:${label} vip ${req.hostname} ${req.path}\n`);
});

app.use((req, res) => {
  res.type("text/plain").send(`PUBLIC:${label} ${req.hostname} ${req.path}\n`);
});

const server = http.createServer({ requireHostHeader: false }, app);
server.listen(0, "127.0.0.1", () => {
  console.log(`PORT ${server.address().port}`);
});
// Node answers requests its parser refuses with a bare 400; this one is marked as the origin's,
// so a test can tell it from usher's own 400. How Node parses is unchanged.
server.on("clientError", (err, socket) => {
  if (socket.writable) {
    socket.end(
      `HTTP/1.1 400 Bad Request\r\nX-Origin: ${label}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
    );
  } else {
    socket.destroy();
  }
});
