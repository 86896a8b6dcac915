// Drives the agent desk (/desk) in headless Chromium with a fake microphone and prints
// what happened as JSON lines on stdout, one per step, so the Rust test can act between
// steps (start a caller once the desk is available, log in another agent once the desk
// is gone). Usage:
//   node desk.mjs <mode> <engine base URL> <agent token> <microphone WAV> <screenshot.png>
// Modes:
//   login-refused  open /desk, type a token the engine does not know: the page shows why
//   call           log in, take the call that rings, talk, fill in and submit the order
//   kill           log in, and close the page while a call rings on the desk
//   mic-blocked    log in with the microphone refused: the page warns at once
//   audio-stops    take a call; warn while no audio arrives, and stop warning after
// Driven by tests/desk_browser.rs; needs Debian's chromium and playwright-core
// (scripts/install-test-deps.sh).
import { chromium } from "playwright-core";

const [mode, base, token, microphone, screenshot] = process.argv.slice(2);
const executablePath = process.env.HOTLINE_CHROMIUM || "/usr/bin/chromium";
const step = (event, detail = {}) => console.log(JSON.stringify({ event, ...detail }));
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

const browser = await chromium.launch({
  executablePath,
  args: [
    "--no-sandbox",
    // The microphone is the WAV the test chose, granted without a prompt: the media
    // check and both directions of audio need a real capture track.
    "--use-fake-device-for-media-stream",
    // Without it the permission prompt is refused, as an agent refusing it would.
    ...(mode === "mic-blocked" ? [] : ["--use-fake-ui-for-media-stream"]),
    `--use-file-for-fake-audio-capture=${microphone}`,
    // The engine's media address is 127.0.0.1: let ICE offer loopback host candidates.
    "--allow-loopback-in-peer-connection",
    // The ring tone and the caller's voice play without a click first.
    "--autoplay-policy=no-user-gesture-required",
    // Nothing but the engine on 127.0.0.1: no update checks, sync or other traffic.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--no-first-run",
  ],
});
const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
const consoleLines = [];
page.on("console", m => consoleLines.push(`${m.type()}: ${m.text()}`));
page.on("pageerror", e => consoleLines.push(`pageerror: ${e.message}`));
// Everything the page asked for, to show it reached only the engine.
const requested = new Set();
page.on("request", r => requested.add(new URL(r.url()).origin));
page.on("websocket", ws => requested.add(new URL(ws.url()).origin));

const deskState = () => page.evaluate(() => {
  const d = window.desk;
  return d && {
    agent: d.agent, state: d.state, call: d.call, mediaCheck: d.mediaCheck, micError: d.micError,
    closed: d.closed, errors: d.errors, received: d.received.slice(-20), sent: d.sent.slice(-20),
    warnings: d.warnings, inbound: d.inbound, submitted: d.submitted,
  };
});
const until = (what, fn, arg, timeout = 30000) =>
  page.waitForFunction(fn, arg, { timeout }).catch(async e => {
    throw new Error(`waiting for ${what}: ${e.message}\ndesk: ${JSON.stringify(await deskState(), null, 1)}`);
  });
const text = sel => page.locator(sel).innerText();
// The inbound-rtp packets the browser has received so far, straight from getStats().
const inboundPackets = () => page.evaluate(async () => {
  let packets = 0;
  (await window.desk.pc.getStats()).forEach(r => { if (r.type === "inbound-rtp" && r.kind === "audio") packets += r.packetsReceived; });
  return packets;
});
const outboundPackets = () => page.evaluate(async () => {
  let packets = 0;
  (await window.desk.pc.getStats()).forEach(r => { if (r.type === "outbound-rtp" && r.kind === "audio") packets += r.packetsSent; });
  return packets;
});

async function logIn({ pauseFirst = false } = {}) {
  // The token travels in the fragment, which the browser never sends to the server.
  await page.goto(`${base}/desk#token=${encodeURIComponent(token)}`);
  await until("welcome", () => window.desk && window.desk.agent);
  const addressBar = page.url();
  await until("the media check", () => window.desk.mediaCheck, undefined, 20000);
  const mediaCheck = await page.evaluate(() => window.desk.mediaCheck);
  const mediaCheckShown = await text("#media-check");
  await page.click("#btn-login");
  await until("available", () => window.desk.state.state === "available");
  let paused = null;
  if (pauseFirst) {
    // A break (小休) with its reason, then back (恢复), as the engine reports them.
    await page.click("#btn-pause");
    await until("paused", () => window.desk.state.state === "paused");
    paused = { state: await text("#state-name"), reason: await text("#state-reason"), engine: await page.evaluate(() => window.desk.state) };
    await page.click("#btn-resume");
    await until("available again", () => window.desk.state.state === "available");
  }
  step("available", {
    paused,
    agent: await text("#agent"), addressBar, mediaCheck, mediaCheckShown,
    stateShown: await text("#state-name"), warnings: await page.evaluate(() => window.desk.warnings),
  });
}

async function waitOffered() {
  await until("a call offered", () => window.desk.call && !window.desk.call.connected, undefined, 90000);
  const offered = await page.evaluate(() => window.desk.received.findLast(m => m.type === "offered"));
  // The engine reports the agent's state about once a second: ringing follows the offer.
  await until("the ringing state", () => window.desk.state.state === "ringing", undefined, 10000);
  step("offered", {
    offered,
    shown: { queue: await text("#call-queue"), caller: await text("#call-caller"), wait: await text("#call-wait"), state: await text("#state-name") },
    ringing: await page.evaluate(() => window.desk.ringing),
    answerEnabled: await page.isEnabled("#btn-answer"),
    answerLabel: await text("#btn-answer"),
    hangupLabel: await text("#btn-hangup"),
  });
  return offered;
}

async function loginRefused() {
  await page.goto(`${base}/desk`);
  const loginVisible = await page.isVisible("#login-form");
  const title = await page.title();
  await page.fill("#token", "not-an-agent-token");
  await page.click("#connect");
  await until("the refusal", () => window.desk.closed && document.getElementById("login-note").textContent);
  step("done", {
    title, loginVisible,
    note: await text("#login-note"),
    deskHidden: await page.isHidden("#desk"),
    closed: await page.evaluate(() => window.desk.closed),
    errors: await page.evaluate(() => window.desk.errors),
  });
}

async function call() {
  await logIn({ pauseFirst: true });
  const offered = await waitOffered();
  await page.click("#btn-answer");
  await until("connected", () => window.desk.call && window.desk.call.connected);
  await until("the work order in the form", id => window.desk.workOrder && window.desk.workOrder.order.id === id, offered.work_order);
  const connected = await page.evaluate(() => window.desk.received.findLast(m => m.type === "connected"));
  await until("the on-call state", () => window.desk.state.state === "on_call", undefined, 10000);
  const stateOnCall = await text("#state-name");
  const inboundAtConnect = await inboundPackets();
  const outboundAtConnect = await outboundPackets();
  // R28: a forbidden phrase is flagged while the agent types, before anything is saved.
  await page.selectOption("#f-category", "help");
  await page.fill("#f-matter", "家门钥匙丢了，我也不知道找谁开锁");
  await until("the forbidden phrase flagged", () => window.desk.phraseHits.matter.length > 0);
  const flagged = { hits: await page.evaluate(() => window.desk.phraseHits.matter), shown: await text("#hits-matter"), cls: await page.getAttribute("#f-matter", "class") };
  // R13: the knowledge base and the directory while the caller is on the line.
  await page.fill("#knowledge-q", "社保卡");
  await page.click("#knowledge-form button");
  await until("knowledge results", () => document.querySelector("#knowledge .result"));
  await page.fill("#directory-q", "开锁");
  await page.click("#directory-form button");
  await until("directory results", () => document.querySelector("#directory .result button"));
  const provider = await page.locator("#directory .result b").first().innerText();
  await page.locator("#directory .result button").first().click();
  await sleep(2000);
  const inboundLater = await inboundPackets();
  const outboundLater = await outboundPackets();
  await page.screenshot({ path: screenshot, fullPage: true });
  const warningsOnCall = await page.evaluate(() => window.desk.warnings);
  // The agent rewrites the matter in acceptable words and fills in the rest.
  await page.fill("#f-matter", "家门钥匙丢失，需要上门开锁");
  await until("the flag cleared", () => window.desk.phraseHits.matter.length === 0);
  await page.fill("#f-answer", "已转介开锁服务企业，企业将尽快与您联系");
  await page.check("#f-urgent");
  // F6 holds the caller and takes them back.
  await page.keyboard.press("F6");
  await until("held", () => window.desk.call.held === true);
  const holdShown = { button: await text("#btn-hold"), status: await text("#call-status") };
  await page.keyboard.press("F6");
  await until("taken back", () => window.desk.call.held === false);
  // F4: hang up from the keyboard (the shortcut the page shows on the button).
  await page.keyboard.press("F4");
  await until("ended", () => window.desk.received.some(m => m.type === "ended"));
  const ended = await page.evaluate(() => window.desk.received.findLast(m => m.type === "ended"));
  await until("wrap-up", () => window.desk.state.state === "wrap_up");
  const wrapUpShown = await text("#state-name");
  await page.click("#btn-submit");
  await until("the order submitted", () => window.desk.submitted);
  // Wrap-up ends on submit: the agent is ready for the next call.
  await until("available after submitting", () => window.desk.state.state === "available", undefined, 20000);
  await until("today's calls listed", id => (window.desk.today || []).some(o => o.id === id), offered.work_order);
  step("done", {
    offered, connected, ended, stateOnCall, wrapUpShown,
    inboundAtConnect, inboundLater, outboundAtConnect, outboundLater,
    flagged, warningsOnCall, holdShown,
    held: await page.evaluate(() => window.desk.received.filter(m => m.type === "held").map(m => m.held)),
    knowledgeShown: await text("#knowledge"), provider,
    referralField: await page.inputValue("#f-referral"),
    note: await text("#order-note"),
    sent: await page.evaluate(() => window.desk.sent),
    states: await page.evaluate(() => window.desk.received.filter(m => m.type === "state").map(m => m.state)),
    todayRow: await text(`tr[data-order="${offered.work_order}"]`),
    requested: [...requested].sort(),
  });
}

async function audioStops() {
  await logIn();
  await waitOffered();
  await page.click("#btn-answer");
  await until("connected", () => window.desk.call && window.desk.call.connected);
  const before = await inboundPackets();
  await until("the caller's audio", n => window.desk.inbound.packetsReceived > n + 50, before);
  step("talking", { warnings: await page.evaluate(() => window.desk.warnings) });
  // The test stops the engine's audio now; the page must say so within seconds.
  await until("the no-audio warning", () => window.desk.warnings.inbound, undefined, 30000);
  step("warned", {
    warning: await page.locator("#warn-inbound").innerText(),
    visible: await page.isVisible("#warn-inbound"),
    stalledSeconds: await page.evaluate(() => window.desk.inbound.stalledSeconds),
  });
  // Then lets it flow again: the warning goes once packets arrive, on the same call.
  await until("the warning cleared", () => !window.desk.warnings.inbound || window.desk.call.ended, undefined, 30000);
  step("cleared", {
    warnings: await page.evaluate(() => window.desk.warnings),
    call: await page.evaluate(() => window.desk.call),
  });
  await page.keyboard.press("F4");
  // Waits on the frame: with no wrap-up the page drops the call as soon as the engine
  // says the agent is available again.
  await until("ended", () => window.desk.received.some(m => m.type === "ended"), undefined, 10000);
  step("done");
}

async function kill() {
  await logIn();
  const offered = await waitOffered();
  // The browser goes away while the call rings: its socket and media close.
  await page.close();
  step("closed", { call: offered.call, work_order: offered.work_order });
}

async function micBlocked() {
  await page.goto(`${base}/desk#token=${encodeURIComponent(token)}`);
  await until("welcome", () => window.desk && window.desk.agent);
  await until("the microphone refused", () => window.desk.micError);
  step("done", {
    micError: await page.evaluate(() => window.desk.micError),
    warning: await page.locator("#warn-mic").innerText(),
    warningVisible: await page.isVisible("#warn-mic"),
    mediaCheckShown: await text("#media-check"),
    retryVisible: await page.isVisible("#btn-retry-mic"),
    sent: await page.evaluate(() => window.desk.sent.map(m => m.type)),
  });
}

try {
  if (mode === "login-refused") await loginRefused();
  else if (mode === "mic-blocked") await micBlocked();
  else if (mode === "call") await call();
  else if (mode === "kill") await kill();
  else if (mode === "audio-stops") await audioStops();
  else throw new Error(`unknown mode ${mode}`);
} catch (e) {
  console.error(e.stack || String(e));
  console.error("browser console:\n" + consoleLines.join("\n"));
  process.exitCode = 1;
} finally {
  await browser.close();
}
