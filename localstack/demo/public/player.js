// The demo player: a 10-minute canvas "film" whose position is reported through the SDK.
import { init } from '/demo/sdk.js';

const params = new URLSearchParams(location.search);
const filmId = params.get('film') || 'demo-film-1';
const viewer = params.get('viewer') || localStorage.getItem('ugc-demo-viewer') || `demo-${Math.random().toString(36).slice(2, 10)}`;
localStorage.setItem('ugc-demo-viewer', viewer);
const durationS = 600;
// Seconds between progress reports while playing.
const reportEveryS = Number(params.get('report') || 5);

const $ = (id) => document.getElementById(id);
const mmss = (s) => `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(Math.floor(s % 60)).padStart(2, '0')}`;
$('viewer').textContent = viewer;
$('film').textContent = filmId;

// The player: position advances with the wall clock while playing.
let position = 0;
let playingSince = null;
let lastReported = -1;
let sinceReport = 0;
const current = () => Math.min(durationS, playingSince === null ? position : position + (performance.now() - playingSince) / 1000);

let tracker;
function report() {
  const at = Math.floor(current());
  if (!tracker || at === lastReported) return;
  lastReported = at;
  tracker.progress(filmId, at, durationS);
}

// Registered before the SDK's own listeners, so the last position is queued before it flushes.
// Only while playing: a paused film already reported its position, a film never started has none.
const reportIfPlaying = () => { if (playingSince !== null) report(); };
addEventListener('pagehide', reportIfPlaying);
document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'hidden') reportIfPlaying(); });

function play() {
  if (playingSince !== null) return;
  playingSince = performance.now();
  $('play').textContent = 'Pause';
}
function pause() {
  if (playingSince === null) return;
  position = current();
  playingSince = null;
  $('play').textContent = 'Play';
  report();
  void tracker?.flush();
}
function seek(to) {
  position = Math.max(0, Math.min(durationS, to));
  if (playingSince !== null) playingSince = performance.now();
  render();
}

const ctx = $('screen').getContext('2d');
function render() {
  const t = current();
  const hue = (t * 12) % 360;
  const g = ctx.createLinearGradient(0, 0, 640, 360);
  g.addColorStop(0, `hsl(${hue}, 60%, 30%)`);
  g.addColorStop(1, `hsl(${(hue + 120) % 360}, 60%, 15%)`);
  ctx.fillStyle = g;
  ctx.fillRect(0, 0, 640, 360);
  for (let i = 0; i < 5; i++) {
    const a = t * (0.6 + i * 0.25) + i;
    ctx.beginPath();
    ctx.arc(320 + Math.cos(a) * (60 + i * 40), 180 + Math.sin(a * 1.3) * (30 + i * 22), 14 + i * 4, 0, Math.PI * 2);
    ctx.fillStyle = `hsla(${(hue + i * 50) % 360}, 80%, 60%, 0.8)`;
    ctx.fill();
  }
  ctx.fillStyle = '#fff';
  ctx.font = 'bold 56px monospace';
  ctx.textAlign = 'center';
  ctx.fillText(mmss(t), 320, 200);
  ctx.font = '16px sans-serif';
  ctx.fillText(`${filmId} — a generated film`, 320, 340);
  $('time').textContent = `${mmss(t)} / ${mmss(durationS)}`;
  $('time').dataset.position = String(Math.floor(t));
  $('seek').value = String(Math.floor(t));
  if (tracker) $('stats').textContent = JSON.stringify(tracker.stats(), null, 1);
}

render();
// A timer rather than requestAnimationFrame: it keeps reporting in background tabs too.
setInterval(() => {
  render();
  if (playingSince === null) return;
  if (current() >= durationS) pause();
  if (++sinceReport >= reportEveryS * 4) { sinceReport = 0; report(); }
}, 250);

$('play').addEventListener('click', () => (playingSince === null ? play() : pause()));
$('seek').addEventListener('change', (e) => { seek(Number(e.target.value)); report(); });

function renderRecent(items) {
  const list = $('recent');
  list.replaceChildren();
  if (items.length === 0) list.innerHTML = '<li>nothing yet: press Play</li>';
  for (const item of items) {
    const li = document.createElement('li');
    li.dataset.film = item.film_id;
    const depth = item.duration_s ? Math.min(100, (100 * item.position_s) / item.duration_s) : 0;
    li.innerHTML = `<code></code> at <span class="at"></span><div class="bar"><span style="width:${depth.toFixed(1)}%"></span></div>`;
    li.querySelector('code').textContent = item.film_id;
    li.querySelector('.at').textContent = mmss(item.position_s);
    list.append(li);
  }
}

async function start() {
  const { apiUrl } = await (await fetch('/demo/config.json')).json();
  tracker = init({
    endpoint: apiUrl,
    // ?token_ttl=N: tokens that expire in N seconds, so the SDK has to refresh them while the page is open.
    getToken: async () => (await (await fetch(`/demo/token?viewer=${encodeURIComponent(viewer)}${params.get('token_ttl') ? `&ttl=${params.get('token_ttl')}` : ''}`)).json()).token,
    flushIntervalMs: 2000,
    // ?unload=beacon|fetch forces one way of sending on page hide (the engine tests compare them);
    // ?unload=refused: a sendBeacon that refuses every body (as over its quota), so hide batches go as ordinary requests.
    ...(params.get('unload') === 'refused' ? { sendBeacon: () => false } : params.get('unload') ? { unload: params.get('unload') } : {}),
  });
  tracker.track('page_view', { url: location.pathname, ...(document.referrer ? { referrer: document.referrer } : {}) });
  const [saved, recent] = await Promise.all([tracker.filmProgress(filmId), tracker.recentFilms(5)]);
  renderRecent(recent);
  if (saved && saved.position_s > 0 && saved.position_s < durationS) {
    $('continue').textContent = `Continue from ${mmss(saved.position_s)}`;
    $('offer').dataset.position = String(saved.position_s);
    $('offer').hidden = false;
    $('continue').addEventListener('click', () => { $('offer').hidden = true; seek(saved.position_s); play(); });
    $('start-over').addEventListener('click', () => { $('offer').hidden = true; seek(0); play(); });
  }
  render();
  $('status').textContent = 'ready';
  $('status').dataset.ready = 'true';
}

start().catch((error) => {
  $('status').textContent = `error: ${error.message}`;
  $('status').dataset.ready = 'error';
});
