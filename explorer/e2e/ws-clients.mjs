// CLIENTS (default 2) clients that do to the node what an open dashboard does, without rendering:
// each takes the Explorer's live stream and parses every frame, and polls /api/stats and
// /api/health once a second (as the UI's App does). What connected browsers cost the node itself
// when they run elsewhere. Needs Node's WebSocket (node --experimental-websocket on Node 20).
// Exits when stdin closes or SECONDS (default 600) pass. Used by scripts/explorer-overhead.sh.
const url = process.env.EXPLORER_URL?.replace(/^http/, "ws").replace(/\/?$/, "/ws?every=1s");
const count = Number(process.env.CLIENTS ?? 2);
const seconds = Number(process.env.SECONDS ?? 600);
if (!url) throw new Error("EXPLORER_URL is not set");
const base = process.env.EXPLORER_URL.replace(/\/?$/, "");
let frames = 0;
let opened = 0;
let polls = 0;
let pollErrors = 0;
const poll = async () => {
  try {
    const answers = await Promise.all([fetch(`${base}/api/stats`), fetch(`${base}/api/health`)]);
    await Promise.all(answers.map((answer) => answer.json()));
    polls += 1;
  } catch (error) {
    pollErrors += 1;
    if (pollErrors === 1) console.error(`poll failed: ${error.message ?? error}`);
  }
};
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
  setInterval(poll, 1000);
}
const done = () => {
  console.error(`${frames} frames received, ${polls} polls answered, ${pollErrors} failed`);
  process.exit(0);
};
process.stdin.on("end", done);
process.stdin.resume();
setTimeout(done, seconds * 1000);
