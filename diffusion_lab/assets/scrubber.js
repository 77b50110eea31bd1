// The step scrubber (a Gradio templated gr.HTML: `element`, `props`, `trigger` and `watch` are given). Frames
// live in the page as one grid sheet per column, step and panel: a move of the slider swaps <img> sources with
// no server round trip; an enlarged sample is a crop of the same sheet (no picture of its own). Columns (a run
// and its branches) and samples with fewer frames than the longest move proportionally.
let timer = null, sel = 0, panel = null, at = 0;
const PLAY = '&#9654; Play', PAUSE = '&#10074;&#10074; Pause', W = 400, H = 100;
function stop() {
  if (timer) { clearInterval(timer); timer = null; }
  const b = element.querySelector('button.play');
  if (b) b.innerHTML = PLAY;
}
function frameOf(c, i, n) { const m = c.sheets.length; return n > 1 ? Math.round(i * (m - 1) / (n - 1)) : 0; }
function box(c, b) {  // tile b of column c as fractions of its sheet: [left, top, width, height]
  const [w, h] = c.tile, col = b % c.ncol, row = Math.floor(b / c.ncol);
  return [(c.pad + col * (w + c.pad)) / c.size[0], (c.pad + row * (h + c.pad)) / c.size[1], w / c.size[0], h / c.size[1]];
}
function crop(img, c, b) {
  const [x, y, w, h] = box(c, b);
  img.style.width = (100 / w) + '%';
  img.style.left = (-100 * x / w) + '%';
  img.style.top = (-100 * y / h) + '%';
}
function tileOf(c, b) { return Math.max(0, Math.min(b, c.captions.length - 1)); }
function chart(i) {
  const v = props.value, svg = element.querySelector('svg.chart');
  if (!svg) return;
  let lines = '';
  const legend = [];
  v.columns.forEach((c, k) => {
    if (!c.chart) return;
    const b = tileOf(c, sel), f = frameOf(c, i, v.n), m = c.sheets.length;
    let solid = 0;  // a column's solid lines (an illusion's readings) take the next colours; a dashed one its own
    for (const line of c.chart) {
      const p = line.p[b], cls = `c${(k + (line.dash ? solid - 1 : solid++)) % 4}${line.dash ? ' dash' : ''}`;
      const pts = p.map((q, j) => `${((m > 1 ? j / (m - 1) : 0) * W).toFixed(1)},${((1 - q) * H).toFixed(1)}`).join(' ');
      lines += `<polyline class="${cls}" points="${pts}"/>`;
      const who = v.columns.length > 1 ? c.name + ': ' : '';
      legend.push(`<span class="${cls}">${who}${line.dash ? 'runner-up ' : 'p '}${line.names[b][f]} ${p[f].toFixed(2)}</span>`);
    }
  });
  const x = ((v.n > 1 ? i / (v.n - 1) : 0) * W).toFixed(1);
  svg.innerHTML = `<line class="axis" x1="0" x2="${W}" y1="${H / 2}" y2="${H / 2}"/>${lines}` +
                  `<line class="now" x1="${x}" x2="${x}" y1="0" y2="${H}"/>`;
  element.querySelector('.legend').innerHTML = legend.join(' ');
}
function show(i) {
  const v = props.value;
  if (!v || !v.columns) return;
  at = i;
  panel = panel && v.panels.some(p => p.key === panel) ? panel : v.panels[0].key;
  element.querySelectorAll('button.pick').forEach(b => b.setAttribute('aria-pressed', b.dataset.panel === panel));
  element.querySelectorAll('.col').forEach(fig => {
    const c = v.columns[+fig.dataset.col], [x, y, w, h] = box(c, tileOf(c, sel));
    fig.querySelector('img.grid').src = c.sheets[frameOf(c, i, v.n)][panel];
    Object.assign(fig.querySelector('.mark').style, {left: 100 * x + '%', top: 100 * y + '%',
                                                    width: 100 * w + '%', height: 100 * h + '%'});
  });
  element.querySelectorAll('.row').forEach(row => {
    const c = v.columns[+row.dataset.col], b = v.grid ? tileOf(c, sel) : +row.dataset.tile, f = frameOf(c, i, v.n);
    for (const p of v.panels) {
      const img = row.querySelector('img.' + p.key);
      img.src = c.sheets[f][p.key];
      crop(img, c, b);
    }
    row.querySelector('.cap').innerHTML = c.captions[b] + (v.grid && v.columns.length > 1 ? ' · ' + c.name : '');
    const t = c.t[b][f];
    row.querySelector('.t').textContent = t >= 0 ? 't = ' + t : 'the result';
  });
  chart(i);
  element.dataset.frame = frameOf(v.columns[0], i, v.n);  // the original's frame shown: where a branch starts
  const pos = element.querySelector('.pos');
  if (pos) pos.textContent = 'frame ' + (i + 1) + ' / ' + v.n;
}
element.addEventListener('input', e => {
  if (e.target.matches('input[type=range]')) { stop(); show(+e.target.value); }
});
element.addEventListener('click', e => {
  const v = props.value;
  const grid = e.target.closest('img.grid');
  if (grid) {  // the tile under the pointer, if any, is enlarged
    const c = v.columns[+grid.closest('.col').dataset.col], r = grid.getBoundingClientRect();
    const x = (e.clientX - r.left) / r.width * c.size[0], y = (e.clientY - r.top) / r.height * c.size[1];
    const col = Math.floor((x - c.pad) / (c.tile[0] + c.pad)), row = Math.floor((y - c.pad) / (c.tile[1] + c.pad));
    const b = row * c.ncol + col;
    if (col >= 0 && col < c.ncol && b >= 0 && b < c.captions.length) { sel = b; show(at); }
    return;
  }
  const pick = e.target.closest('button.pick');
  if (pick) { panel = pick.dataset.panel; show(at); return; }
  if (e.target.closest('button.branch')) { stop(); trigger('submit', {frame: +element.dataset.frame}); return; }
  const b = e.target.closest('button.play');
  if (!b) return;
  if (timer) { stop(); return; }
  const s = element.querySelector('input[type=range]');
  if (+s.value >= +s.max) { s.value = 0; show(0); }
  b.innerHTML = PAUSE;
  timer = setInterval(() => {
    if (+s.value >= +s.max) { stop(); return; }
    s.value = +s.value + 1; show(+s.value);
  }, Math.max(40, Math.min(250, 3000 / (+s.max + 1))));
});
// new frames arrive with the thumb on their last frame (the page keeps an <input>'s moved value otherwise)
function toEnd() {
  const s = element.querySelector('input[type=range]');
  if (s) { s.value = s.max; show(+s.max); }
}
watch('value', () => { stop(); toEnd(); setTimeout(toEnd, 0); });
toEnd();
