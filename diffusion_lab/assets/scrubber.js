// The step scrubber (a Gradio templated gr.HTML: `element`, `props` and `watch` are given). Frames live in
// the page: a move of the slider swaps <img> sources with no server round trip. Rows with fewer frames than
// the longest (SDEdit's low strengths) move proportionally.
let timer = null;
const PLAY = '&#9654; Play', PAUSE = '&#10074;&#10074; Pause';
function stop() {
  if (timer) { clearInterval(timer); timer = null; }
  const b = element.querySelector('button.play');
  if (b) b.innerHTML = PLAY;
}
function show(i) {
  const v = props.value;
  if (!v || !v.rows) return;
  element.querySelectorAll('.row').forEach(row => {
    const r = v.rows[+row.dataset.row], m = r.frames.length;
    const f = r.frames[v.n > 1 ? Math.round(i * (m - 1) / (v.n - 1)) : 0];
    for (const p of v.panels) row.querySelector('img.' + p.key).src = f[p.key];
    row.querySelector('.t').textContent = f.t;
  });
  const pos = element.querySelector('.pos');
  if (pos) pos.textContent = 'frame ' + (i + 1) + ' / ' + v.n;
}
element.addEventListener('input', e => {
  if (e.target.matches('input[type=range]')) { stop(); show(+e.target.value); }
});
element.addEventListener('click', e => {
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
  if (s) s.value = s.max;
}
watch('value', () => { stop(); toEnd(); setTimeout(toEnd, 0); });
