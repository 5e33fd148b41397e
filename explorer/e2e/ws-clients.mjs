// CLIENTS (default 2) WebSocket clients on the Explorer's live stream that parse every frame, as
// the UI's data layer does, without rendering: what connected browsers cost the node itself
// when they run elsewhere. Needs Node's WebSocket (node --experimental-websocket on Node 20).
// Exits when stdin closes or SECONDS (default 600) pass. Used by scripts/explorer-overhead.sh.
const url = process.env.EXPLORER_URL?.replace(/^http/, "ws").replace(/\/?$/, "/ws");
const count = Number(process.env.CLIENTS ?? 2);
const seconds = Number(process.env.SECONDS ?? 600);
if (!url) throw new Error("EXPLORER_URL is not set");
let frames = 0;
let opened = 0;
for (let i = 0; i < count; i++) {
  const socket = new WebSocket(url);
  socket.onopen = () => {
    opened += 1;
    if (opened === count) console.log(`watching ${url} with ${count} WebSocket clients`);
  };
  socket.onmessage = (event) => {
    JSON.parse(event.data);
    frames += 1;
  };
  socket.onerror = (error) => console.error(`socket error: ${error.message ?? error}`);
}
const done = () => {
  console.error(`${frames} frames received`);
  process.exit(0);
};
process.stdin.on("end", done);
process.stdin.resume();
setTimeout(done, seconds * 1000);
