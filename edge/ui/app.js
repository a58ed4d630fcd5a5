// Holdfast handheld UI. Plain JavaScript, no dependencies: it is served by the appliance
// and must work with no internet. It talks only to the device API (/api/v1/), with the
// device token kept in this browser and a fresh Idempotency-Key per action (reused when a
// request is retried after a network failure, so nothing is recorded twice).
'use strict';

const $ = (id) => document.getElementById(id);
const SCREENS = ['setup', 'replace-token', 'login', 'home', 'pickings', 'session', 'journal'];
const state = { lang: 'en', token: null, offeredToken: null, operator: null, session: null, workflow: null, cancelArmed: false };
let audio = null;

// --- strings ---------------------------------------------------------------------------

// The strings of the current language, from the appliance's catalogue (/ui/strings.json).
// Until they arrive the page shows its English text.
let STRINGS = {};

function T(key, vars) {
  let text = STRINGS[key] || key;
  for (const [name, value] of Object.entries(vars || {})) {
    text = text.split('{' + name + '}').join(String(value));
  }
  return text;
}

// Loads a language's strings (none given: the browser's, as the appliance negotiates it) and
// applies them to every element marked with data-i18n, -placeholder or -label.
async function loadStrings(lang) {
  try {
    const query = lang ? '?lang=' + encodeURIComponent(lang) : '';
    const response = await fetch('/ui/strings.json' + query);
    if (!response.ok) return;
    const data = await response.json();
    STRINGS = data.strings || {};
    state.lang = data.lang;
    document.documentElement.lang = data.lang;
    const select = $('language');
    if (!select.options.length) {
      for (const l of data.languages || []) {
        const option = document.createElement('option');
        option.value = l.code;
        option.textContent = l.name;
        select.appendChild(option);
      }
    }
    select.value = data.lang;
    for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = T(el.dataset.i18n);
    for (const el of document.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = T(el.dataset.i18nPlaceholder);
    for (const el of document.querySelectorAll('[data-i18n-label]')) el.setAttribute('aria-label', T(el.dataset.i18nLabel));
    refreshBanner();
  } catch (e) { /* keep the text shown */ }
}

// The operator's choice is kept with the operator (it follows them to any handheld); before
// sign-in, with this handheld.
async function chooseLanguage(lang) {
  localStorage.setItem('holdfast.lang', lang);
  await loadStrings(lang);
  if (state.operator) await api('PUT', '/api/v1/me/language', { language: lang });
}

function show(name) {
  for (const s of SCREENS) $(s).hidden = s !== name;
  $('who').hidden = !state.operator || name === 'setup' || name === 'login';
  const focus = { login: 'badge', pickings: 'picking-scan', session: 'scan', setup: 'token', 'replace-token': 'replace-token-no' }[name];
  if (focus) setTimeout(() => $(focus).focus(), 0);
}

function newKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

// One API call. Writes carry an Idempotency-Key; a network failure is retried with the same
// key, so the appliance answers the retry with its first answer instead of recording twice.
async function api(method, path, body) {
  const headers = { Authorization: 'Bearer ' + state.token };
  const init = { method, headers };
  if (method !== 'GET') {
    headers['Content-Type'] = 'application/json';
    headers['Idempotency-Key'] = newKey();
    init.body = JSON.stringify(body || {});
  }
  for (let attempt = 0; ; attempt++) {
    try {
      const response = await fetch(path, init);
      let data = {};
      try { data = await response.json(); } catch (e) { data = {}; }
      return { status: response.status, data };
    } catch (e) {
      if (attempt >= 3) {
        return { status: 0, data: { status: 'error', error: { code: 'unreachable', message: T('ui-unreachable') } } };
      }
      await new Promise((r) => setTimeout(r, 300 * (attempt + 1)));
    }
  }
}

function message(data) {
  return data.message || (data.error && data.error.message) || '';
}

function beep(kind) {
  try {
    audio = audio || new (window.AudioContext || window.webkitAudioContext)();
    const tones = { ok: [[1200, 0.08]], warning: [[700, 0.12], [700, 0.12]], error: [[180, 0.45]] }[kind] || [];
    let t = audio.currentTime;
    for (const [freq, len] of tones) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.type = kind === 'error' ? 'square' : 'sine';
      osc.frequency.value = freq;
      gain.gain.value = 0.2;
      osc.connect(gain);
      gain.connect(audio.destination);
      osc.start(t);
      osc.stop(t + len);
      t += len + 0.06;
    }
    if (kind === 'error' && navigator.vibrate) navigator.vibrate(300);
  } catch (e) { /* no sound on this device */ }
}

function feedback(kind, text) {
  const box = $('feedback');
  box.className = kind;
  box.textContent = text;
  box.dataset.status = kind;
  beep(kind);
}

function statusOf(result) {
  if (result.data && result.data.status) return result.data.status;
  return result.status >= 200 && result.status < 300 ? 'ok' : 'error';
}

// --- connectivity banner -------------------------------------------------------------

function ago(iso) {
  const secs = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (secs < 90) return Math.round(secs) + ' s';
  if (secs < 5400) return Math.round(secs / 60) + ' min';
  return Math.round(secs / 3600) + ' h';
}

async function refreshBanner() {
  const banner = $('banner');
  try {
    // The status takes the device token (unless the site made a minimal one public).
    const init = state.token ? { headers: { Authorization: 'Bearer ' + state.token } } : {};
    const response = await fetch('/api/v1/status', init);
    if (response.status === 401) {
      banner.className = 'mode-unknown';
      banner.dataset.mode = 'unknown';
      $('banner-mode').textContent = T('ui-appliance-reachable');
      $('banner-detail').textContent = T('ui-set-up-to-see');
      return;
    }
    const s = await response.json();
    const queued = (s.queue.pending || 0) + (s.queue.in_flight || 0);
    banner.className = 'mode-' + s.mode;
    banner.dataset.mode = s.mode;
    $('banner-mode').textContent = T('ui-mode-' + s.mode);
    let detail = T('ui-since', { ago: ago(s.mode_since) }) + ' · ' + T('ui-queued', { n: queued });
    if (s.mode !== 'online') detail += ' · ' + T('ui-local-copy');
    $('banner-detail').textContent = detail;
  } catch (e) {
    banner.className = 'mode-unreachable';
    banner.dataset.mode = 'unreachable';
    $('banner-mode').textContent = T('ui-appliance-unreachable');
    $('banner-detail').textContent = '';
  }
}

// --- start-up, sign-in ---------------------------------------------------------------

// A set-up link (`/ui/#token=...`) offers a device token. A handheld without one takes it;
// one that already has a different token asks first: a link sent by someone else must not
// silently turn this handheld into another device.
async function takeOfferedToken() {
  const offered = new URLSearchParams(location.hash.slice(1)).get('token');
  if (!offered) return false;
  // The token never stays in the address bar or the history.
  history.replaceState(null, '', location.pathname);
  if (offered === state.token) return false;
  if (!state.token) {
    saveToken(offered);
    return false;
  }
  state.offeredToken = offered;
  show('replace-token');
  return true;
}

function saveToken(token) {
  localStorage.setItem('holdfast.token', token);
  state.token = token;
}

async function boot() {
  state.token = localStorage.getItem('holdfast.token');
  await loadStrings(localStorage.getItem('holdfast.lang'));
  const asking = await takeOfferedToken();
  refreshBanner();
  setInterval(refreshBanner, 5000);
  window.addEventListener('hashchange', takeOfferedToken);
  if (asking) return;
  if (!state.token) return show('setup');
  await loadMe();
}

async function loadMe() {
  const r = await api('GET', '/api/v1/me');
  if (r.status === 401) {
    localStorage.removeItem('holdfast.token');
    state.token = null;
    return show('setup');
  }
  state.operator = r.data.operator;
  if (!state.operator) return show('login');
  $('operator-name').textContent = state.operator.name;
  if (state.operator.language && state.operator.language !== state.lang) {
    await loadStrings(state.operator.language);
  }
  if (r.data.session) return openSession(r.data.session);
  renderHome(r.data.sessions || []);
}

function renderHome(sessions) {
  const list = $('open-sessions');
  list.textContent = '';
  for (const s of sessions) {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.dataset.sessionId = s.id;
    b.textContent = T('ui-workflow-' + s.workflow) + (s.picking ? ' ' + s.picking.name : '') + ' — ' + T('ui-on-device', { device: s.device });
    b.addEventListener('click', async () => {
      const r = await api('POST', '/api/v1/sessions/' + encodeURIComponent(s.id) + '/resume');
      if (statusOf(r) === 'error') return alertError(r);
      openSession(r.data.session);
    });
    li.appendChild(b);
    list.appendChild(li);
  }
  if (!sessions.length) {
    const li = document.createElement('li');
    li.textContent = T('ui-none');
    list.appendChild(li);
  }
  show('home');
}

function alertError(r) {
  $('home-error') && $('home-error').remove();
  const p = document.createElement('p');
  p.id = 'home-error';
  p.className = 'error';
  p.textContent = message(r.data);
  document.querySelector('main section:not([hidden])').prepend(p);
  beep('error');
}

async function login(body) {
  const r = await api('POST', '/api/v1/login', body);
  if (statusOf(r) === 'error') {
    alertError(r);
    $('badge').value = '';
    $('pin').value = '';
    return show('login');
  }
  beep('ok');
  await loadMe();
}

// --- task choice -----------------------------------------------------------------------

async function chooseWorkflow(workflow) {
  state.workflow = workflow;
  if (workflow === 'count' || workflow === 'transfer') {
    const r = await api('POST', '/api/v1/sessions', { workflow });
    if (statusOf(r) === 'error') return alertError(r);
    return openSession(r.data.session);
  }
  $('pickings-title').textContent = T(workflow === 'pick' ? 'ui-choose-picking' : 'ui-choose-receipt');
  const r = await api('GET', '/api/v1/pickings');
  const list = $('picking-list');
  list.textContent = '';
  for (const p of (r.data.pickings || [])) {
    const wanted = workflow === 'receive' ? p.kind === 'incoming' : p.kind !== 'incoming';
    if (!wanted) continue;
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.dataset.pickingId = p.id;
    b.dataset.pickingName = p.name;
    b.innerHTML = '';
    b.textContent = p.name + ' — ' + fmt(p.picked) + '/' + fmt(p.demand);
    const sub = document.createElement('span');
    sub.className = 'sub';
    sub.textContent = [p.partner, p.origin, p.scheduled_date].filter(Boolean).join(' · ');
    b.appendChild(sub);
    b.addEventListener('click', () => startPicking(p.id));
    li.appendChild(b);
    list.appendChild(li);
  }
  show('pickings');
}

async function startPicking(id) {
  const r = await api('POST', '/api/v1/sessions', { workflow: state.workflow, picking_id: id });
  if (statusOf(r) === 'error') return alertError(r);
  openSession(r.data.session);
}

function fmt(q) {
  return Number.isInteger(q) ? String(q) : String(Math.round(q * 1000) / 1000);
}

// --- a session -------------------------------------------------------------------------

async function openSession(view) {
  state.session = view;
  state.cancelArmed = false;
  $('cancel').textContent = T('ui-cancel-task');
  $('backorder-choice').hidden = true;
  $('feedback').className = 'idle';
  $('feedback').textContent = '';
  $('feedback').dataset.status = '';
  await renderSession();
  show('session');
}

async function renderSession() {
  const s = state.session;
  if (!s) return;
  $('session-title').textContent = T('ui-workflow-' + s.workflow) + (s.picking ? ' ' + s.picking.name : '');
  $('prompt').textContent = s.prompt;
  $('prompt').dataset.expect = s.expect;
  const isPicking = s.workflow === 'pick' || s.workflow === 'receive';
  $('validate').hidden = !isPicking;
  $('package-label').hidden = !(isPicking && s.picking);
  $('finish').hidden = isPicking;
  const lines = $('lines');
  lines.textContent = '';
  if (isPicking && s.picking) {
    const r = await api('GET', '/api/v1/pickings/' + s.picking.id);
    for (const m of (r.data.moves || [])) {
      const li = document.createElement('li');
      li.dataset.moveId = m.move_id;
      li.className = m.picked + 1e-9 >= m.demand ? 'done' : 'short';
      const progress = document.createElement('span');
      progress.className = 'progress';
      progress.textContent = fmt(m.picked) + '/' + fmt(m.demand);
      li.appendChild(progress);
      li.appendChild(document.createTextNode(m.product));
      const sub = document.createElement('span');
      sub.className = 'sub';
      const where = (m.reserved && m.reserved.length) ? m.reserved.map((x) => x[0] + (x[1] ? ' lot ' + x[1] : '')).join(', ') : (m.location || '');
      sub.textContent = [m.default_code, where, m.tracking !== 'none' ? 'by ' + m.tracking : ''].filter(Boolean).join(' · ');
      li.appendChild(sub);
      lines.appendChild(li);
    }
  }
}

// Shows a step's answer and moves on: a finished session goes back home.
async function stepDone(r) {
  const kind = statusOf(r);
  feedback(kind, message(r.data));
  if (r.data.code === 'backorder_choice_required') $('backorder-choice').hidden = false;
  if (r.data.session) state.session = r.data.session;
  if (state.session && state.session.state !== 'active') {
    state.session = null;
    const me = await api('GET', '/api/v1/me');
    renderHome(me.data.sessions || []);
    const done = document.createElement('p');
    done.id = 'home-error';
    done.className = 'done';
    done.dataset.status = kind;
    done.textContent = message(r.data);
    $('home').prepend(done);
    return;
  }
  await renderSession();
  $('scan').focus();
}

async function sendScan(code) {
  if (!code || !state.session) return;
  const r = await api('POST', '/api/v1/scan', { code, session_id: state.session.id });
  await stepDone(r);
}

async function sendQuantity(value) {
  const quantity = Number(value);
  if (value === '' || !Number.isFinite(quantity)) {
    feedback('error', T('ui-enter-number'));
    return;
  }
  const r = await api('POST', '/api/v1/sessions/' + encodeURIComponent(state.session.id) + '/quantity', { quantity });
  $('qty').value = '';
  await stepDone(r);
}

// Labels go to this handheld's printer (the site default); the answer says which job.
async function printLabel(body, show) {
  const r = await api('POST', '/api/v1/print', body);
  const ok = r.status > 0 && r.status < 300;
  const kind = ok ? 'ok' : 'error';
  show(kind, ok ? T('ui-label-queued', { printer: r.data.job.printer, job: r.data.job.id }) : message(r.data));
  return r;
}

function labelFeedback(kind, text) {
  const f = $('label-feedback');
  f.className = kind;
  f.dataset.status = kind;
  f.textContent = text;
}

// A product or bin scanned on the home screen prints its label.
async function labelScan(code) {
  const r = await api('POST', '/api/v1/lookup', { code });
  const hit = (r.data.matches || []).find((m) => m.kind === 'product' || m.kind === 'location');
  if (!hit) {
    labelFeedback('error', T('ui-not-product-or-bin', { code }));
    return;
  }
  const body = hit.kind === 'product'
    ? { label: 'product', product_id: hit.product_id }
    : { label: 'location', location_id: hit.location_id };
  await printLabel(body, labelFeedback);
}

async function sessionAction(action, body) {
  $('backorder-choice').hidden = true;
  const r = await api('POST', '/api/v1/sessions/' + encodeURIComponent(state.session.id) + '/' + action, body);
  await stepDone(r);
}

// A keyboard-wedge scanner types the code and ends it with Enter (or Tab).
function onScanKey(input, handler) {
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === 'Tab') {
      e.preventDefault();
      const code = input.value.trim();
      input.value = '';
      if (code) handler(code);
    }
  });
}

// --- journal ---------------------------------------------------------------------------

async function showJournal() {
  const r = await api('GET', '/api/v1/journal?limit=30');
  const list = $('journal-list');
  list.textContent = '';
  for (const e of (r.data.entries || [])) {
    const li = document.createElement('li');
    li.dataset.kind = e.kind;
    li.dataset.state = e.state;
    const p = e.payload || {};
    const what = p.quantity !== undefined ? ' qty ' + fmt(p.quantity) : p.counted !== undefined ? ' counted ' + fmt(p.counted) : p.backorder ? ' ' + p.backorder : '';
    li.textContent = '#' + e.seq + ' ' + e.kind + what + ' — ' + e.state;
    list.appendChild(li);
  }
  show('journal');
}

// --- wiring ----------------------------------------------------------------------------

document.addEventListener('DOMContentLoaded', () => {
  $('replace-token-yes').addEventListener('click', async () => {
    if (state.offeredToken) saveToken(state.offeredToken);
    state.offeredToken = null;
    state.operator = null;
    refreshBanner();
    await loadMe();
  });
  $('replace-token-no').addEventListener('click', async () => {
    state.offeredToken = null;
    if (!state.token) return show('setup');
    await loadMe();
  });
  $('save-token').addEventListener('click', async () => {
    state.token = $('token').value.trim();
    if (!state.token) return;
    localStorage.setItem('holdfast.token', state.token);
    await loadMe();
  });
  onScanKey($('badge'), (badge) => login({ badge }));
  $('pin-login').addEventListener('click', () => login({ operator: $('operator').value.trim(), pin: $('pin').value }));
  $('pin').addEventListener('keydown', (e) => { if (e.key === 'Enter') $('pin-login').click(); });
  $('logout').addEventListener('click', async () => {
    await api('POST', '/api/v1/logout');
    state.operator = null;
    state.session = null;
    show('login');
  });
  for (const b of document.querySelectorAll('[data-workflow]')) {
    b.addEventListener('click', () => chooseWorkflow(b.dataset.workflow));
  }
  for (const b of document.querySelectorAll('button.back')) {
    b.addEventListener('click', () => loadMeHome());
  }
  onScanKey($('picking-scan'), async (code) => {
    const match = Array.from(document.querySelectorAll('#picking-list button')).find((b) => b.dataset.pickingName === code);
    if (match) return startPicking(Number(match.dataset.pickingId));
    const r = await api('POST', '/api/v1/lookup', { code });
    const hit = (r.data.matches || []).find((m) => m.kind === 'picking');
    if (hit) return startPicking(hit.picking_id);
    alertError({ data: { message: T('ui-not-picking', { code }) } });
  });
  $('show-journal').addEventListener('click', showJournal);
  $('language').addEventListener('change', () => chooseLanguage($('language').value));
  onScanKey($('label-scan'), labelScan);
  $('package-label').addEventListener('click', () => {
    if (state.session && state.session.picking) {
      printLabel({ label: 'package', picking_id: state.session.picking.id }, feedback);
    }
  });
  onScanKey($('scan'), sendScan);
  $('qty').addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      e.preventDefault();
      sendQuantity($('qty').value);
    }
  });
  $('qty-set').addEventListener('click', () => sendQuantity($('qty').value));
  $('validate').addEventListener('click', () => sessionAction('validate', {}));
  $('bo-yes').addEventListener('click', () => sessionAction('validate', { backorder: 'backorder' }));
  $('bo-no').addEventListener('click', () => sessionAction('validate', { backorder: 'no_backorder' }));
  $('finish').addEventListener('click', () => sessionAction('finish'));
  $('leave').addEventListener('click', () => { state.session = null; loadMeHome(); });
  $('cancel').addEventListener('click', () => {
    if (!state.cancelArmed) {
      state.cancelArmed = true;
      $('cancel').textContent = T('ui-cancel-again');
      return;
    }
    sessionAction('cancel');
  });
  boot();
});

async function loadMeHome() {
  const r = await api('GET', '/api/v1/me');
  renderHome(r.data.sessions || []);
}
