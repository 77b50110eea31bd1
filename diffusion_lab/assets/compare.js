// The compare view (a Gradio templated gr.HTML: `element`, `props` and `watch` are given). The template is
// static, so Gradio never redraws it; this script draws each value into it. Frames live in the page: a move of
// the shared slider swaps <img> sources with no server round trip. Every column shows its last frame at or
// before the slider's "how far along" (0: pure noise, 1: the clean image), so runs of any length line up.
// The slider stays where the user put it while the columns stream on.
const root = element.querySelector('.compare');
const PLAY = '&#9654; Play', PAUSE = '&#10074;&#10074; Pause', END = 1000;
let run = null, pos = END, panel = 'x0', timer = null;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function build(v) {
  root.replaceChildren();
  root.append(el('div', 'title', v.title));
  const bar = el('div', 'panels');
  for (const [key, label] of [['x0', 'predicted x\u2080'], ['x', 'noisy x\u209c']]) {
    const l = el('label'), r = el('input');
    r.type = 'radio'; r.name = 'panel-' + v.run; r.value = key; r.checked = key === panel;
    l.append(r, ' ' + label);
    bar.append(l);
  }
  root.append(bar);
  const grid = el('div', 'cols');
  grid.style.setProperty('--cols', v.columns.length);
  v.columns.forEach((c, i) => {
    const col = el('figure', 'col');
    col.dataset.col = i;
    const img = el('img');
    img.alt = c.label;
    col.append(el('div', 'label', c.label), img, el('div', 't'), el('div', 'meta'));
    grid.append(col);
  });
  root.append(grid);
  const controls = el('div', 'controls');
  const play = el('button', 'play');
  play.type = 'button'; play.innerHTML = PLAY;
  const s = el('input');
  Object.assign(s, {type: 'range', min: 0, max: END, step: 1, value: pos});
  s.setAttribute('aria-label', 'how far along');
  controls.append(play, s, el('span', 'pos'));
  root.append(controls);
}

function render(v) {
  if (!v || !v.columns) {
    stop();
    run = null;
    root.replaceChildren(el('div', 'empty', root.dataset.empty));
    return;
  }
  if (v.run !== run) { stop(); run = v.run; pos = END; build(v); }
  root.querySelector('.title').textContent = v.title;
  show(pos);
}

function pick(frames, a) {
  let f = frames[0];
  for (const g of frames) { if (g.a <= a + 1e-6) f = g; else break; }
  return f;
}

function show(p) {
  const v = props.value;
  if (!v || !v.columns || v.run !== run) return;
  const a = p / END;
  root.querySelectorAll('.col').forEach(col => {
    const i = +col.dataset.col, c = v.columns[i];
    const frames = c.live && !c.done ? c.frames.concat([c.live]) : c.frames;
    const img = col.querySelector('img'), t = col.querySelector('.t'), meta = col.querySelector('.meta');
    if (!frames.length) { t.textContent = 'waiting'; meta.textContent = ''; return; }
    const f = pick(frames, a);
    if (img.getAttribute('src') !== f[panel]) img.src = f[panel];
    t.textContent = f.t < 0 ? `result · ${c.steps}/${c.steps} steps` : `t=${f.t} · ${f.k}/${c.steps} steps`;
    const time = `${c.seconds.toFixed(c.seconds < 10 ? 2 : 1)} s` +
      (c.shared > 1 ? ` (one pass for ${c.shared} columns)` : '');
    const right = c.correct === null || c.correct === undefined ? '' : ` · classifier: ${c.correct}/${v.n} right`;
    meta.textContent = c.done ? time + right : `running: ${c.done_steps}/${c.steps} steps · ${time}`;
    col.classList.toggle('running', !c.done);
  });
  const label = root.querySelector('.pos');
  if (label) label.textContent = a >= 1 ? '100% · the clean image' :
    `${Math.round(a * 100)}% along · t \u2248 ${Math.max(0, Math.round((1 - a) * v.T) - 1)}`;
}

function stop() {
  if (timer) { clearInterval(timer); timer = null; }
  const b = root.querySelector('button.play');
  if (b) b.innerHTML = PLAY;
}

element.addEventListener('input', e => {
  if (e.target.matches('input[type=range]')) { stop(); pos = +e.target.value; show(pos); }
});
element.addEventListener('change', e => {
  if (e.target.matches('input[type=radio]')) { panel = e.target.value; show(pos); }
});
element.addEventListener('click', e => {
  const b = e.target.closest('button.play');
  if (!b) return;
  if (timer) { stop(); return; }
  const s = root.querySelector('input[type=range]');
  if (pos >= END) pos = 0;
  b.innerHTML = PAUSE;
  timer = setInterval(() => {  // about 3 s from noise to image
    pos = Math.min(END, pos + END / 60);
    s.value = pos; show(pos);
    if (pos >= END) stop();
  }, 50);
});
watch('value', () => render(props.value));
render(props.value);
