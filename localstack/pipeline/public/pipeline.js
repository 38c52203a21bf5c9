// The /pipeline page: polls /pipeline/series.json once a second and redraws its uPlot charts.
/* global uPlot */
const palette = ['#2a9d8f', '#e76f51', '#e9c46a', '#264653', '#8ab17d', '#9b5de5', '#f15bb5', '#00bbf9', '#577590', '#bc6c25'];

/** Each chart: its element, its series (label, colour, the column it draws) and the unit on its axis. */
const charts = {
  ingest: {
    unit: 'req/s',
    series: [
      { label: '202', stroke: '#2a9d8f', column: (s) => s.acceptedPerS },
      { label: '4xx', stroke: '#e9c46a', column: (s) => s.clientErrorsPerS },
      { label: '503', stroke: '#e63946', column: (s) => s.unavailablePerS },
      { label: 'other', stroke: '#6c757d', column: (s) => s.otherAnswersPerS },
    ],
  },
  events: { unit: 'events/s', series: [{ label: 'events/s', stroke: '#264653', column: (s) => s.eventsPerS }] },
  // One series per partition, made when the partitions are known.
  lag: { unit: 'records', series: [] },
  rows: {
    unit: 'per s',
    series: [
      { label: 'rows/s', stroke: '#2a9d8f', column: (s) => s.rowsPerS },
      { label: 'dead letters/s', stroke: '#e63946', column: (s) => s.deadLettersPerS },
    ],
  },
  freshness: {
    unit: 'ms',
    // A point per second in which rows came: joined across quiet seconds, and each one marked.
    sparse: true,
    series: [
      { label: 'p50', stroke: '#264653', column: (s) => s.freshnessP50Ms },
      { label: 'p99', stroke: '#e76f51', column: (s) => s.freshnessP99Ms },
    ],
  },
};

let windowSeconds = 300;

function makeChart(name) {
  const chart = charts[name];
  const element = document.getElementById(`chart-${name}`);
  chart.plot?.destroy();
  chart.plot = new uPlot({
    width: Math.max(300, element.clientWidth),
    height: 210,
    scales: {
      // Always the whole window, ending now, so a quiet pipeline shows as flat, not as a zoom.
      x: { time: true, range: (_u, _min, max) => [(max ?? Date.now() / 1000) - windowSeconds, max ?? Date.now() / 1000] },
      y: { range: (_u, _min, max) => [0, Math.max(1, (max ?? 0) * 1.1)] },
    },
    series: [{}, ...chart.series.map((s) => ({ label: s.label, stroke: s.stroke, width: 2, spanGaps: Boolean(chart.sparse), points: { show: Boolean(chart.sparse), size: 5 } }))],
    axes: [{}, { label: chart.unit, size: 60 }],
    legend: { live: true },
  }, [[], ...chart.series.map(() => [])], element);
}

const format = (value, unit = '') => (value === null || value === undefined ? '–' : `${value >= 10 ? Math.round(value) : Math.round(value * 10) / 10}${unit}`);
function showNow(id, value, unit) {
  const output = document.getElementById(id);
  output.dataset.value = value === null || value === undefined ? '' : String(value);
  output.textContent = format(value, unit);
}

function draw(series) {
  windowSeconds = series.windowSeconds;
  document.getElementById('window').textContent = String(Math.round(windowSeconds / 60));
  const partitions = series.partitions.join(',');
  if (charts.lag.partitions !== partitions) {
    charts.lag.partitions = partitions;
    charts.lag.series = series.partitions.map((p, i) => ({ label: `p${p}`, stroke: palette[i % palette.length], column: (s) => s.lag[i] }));
    makeChart('lag');
  }
  for (const [name, chart] of Object.entries(charts)) {
    const columns = chart.series.map((s) => s.column(series));
    chart.plot.setData([series.t, ...columns]);
    // How many points above 0 the chart holds (what a glance at it shows; tests read it too).
    document.getElementById(`chart-${name}`).dataset.nonZero = String(columns.flat().filter((v) => v > 0).length);
  }
  const now = series.recent;
  showNow('now-accepted', now?.acceptedPerS);
  showNow('now-client-errors', now?.clientErrorsPerS);
  showNow('now-unavailable', now?.unavailablePerS);
  showNow('now-events', now?.eventsPerS);
  showNow('now-lag', now?.lagTotal);
  showNow('now-rows', now?.rowsPerS);
  showNow('now-dead-letters', now?.deadLettersPerS);
  showNow('now-freshness-p50', now?.freshnessP50Ms, ' ms');
  showNow('now-freshness-p99', now?.freshnessP99Ms, ' ms');
}

async function poll() {
  const state = document.getElementById('state');
  try {
    const res = await fetch('/pipeline/series.json', { cache: 'no-store' });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const series = await res.json();
    draw(series);
    state.dataset.state = 'live';
    state.dataset.points = String(series.t.length);
    state.textContent = `live · ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    state.dataset.state = 'stale';
    state.textContent = `not updating: ${error.message}`;
  }
  setTimeout(poll, 1000);
}

for (const name of Object.keys(charts)) makeChart(name);
// Resized in place: a chart made anew would be empty until the next poll.
addEventListener('resize', () => {
  for (const [name, chart] of Object.entries(charts)) {
    chart.plot.setSize({ width: Math.max(300, document.getElementById(`chart-${name}`).clientWidth), height: 210 });
  }
});
poll();
