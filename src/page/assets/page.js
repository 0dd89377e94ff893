/* usher waiting page: keeps the page current without ever reloading it, and takes the visitor
   in, with no click, when their turn comes. Server-Sent Events first (/_usher/events), polling
   /_usher/status as the fallback. While the zone asks for proof of work, a newcomer's page
   solves the puzzle in a Web Worker (pow.js) first and presents the answer to /_usher/solve. Plain ES5, no framework, no build step. The wording of
   numbers mirrors src/room/page/format.rs; change both together. See docs/waiting-page.md. */
(function () {
  'use strict';
  var data = document.getElementById('usher-data');
  if (!data) return;
  var page = JSON.parse(data.textContent);
  var s = page.strings;
  var zone = encodeURIComponent(page.status.zone);
  var refresh = page.status.refresh_ms || 5000;
  var loadedAt = Date.now();
  var receivedAt = loadedAt;
  var deadline = 0;   // local time the sale starts, while in the pre-queue
  var lowest = 0;     // the smallest position shown while in line: it never goes up
  var furthest = 0;   // likewise, the progress bar never goes back
  var view = '';
  var done = false;
  var source = null;
  var timer = null;

  function byId(id) { return document.getElementById(id); }

  // Only real changes touch the DOM, so the aria-live region announces only news.
  function setText(id, text) {
    var el = byId(id);
    if (el && el.textContent !== text) el.textContent = text;
  }

  function fill(pattern, values) {
    return pattern.replace(/\{(\w+)\}/g, function (all, name) {
      return Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : all;
    });
  }

  function etaText(lowS, highS) {
    highS = Math.max(highS, lowS);
    if (highS < 60) return s.eta_soon;
    var low = Math.max(Math.ceil(lowS / 60), 1);
    var high = Math.ceil(highS / 60);
    if (high <= 90) {
      if (low !== high) return fill(s.eta_minutes_range, { low: low, high: high });
      return low === 1 ? s.eta_minute : fill(s.eta_minutes, { n: low });
    }
    var lowH = Math.max(Math.floor((low + 30) / 60), 1);
    var highH = Math.ceil(high / 60);
    if (lowH !== highH) return fill(s.eta_hours_range, { low: lowH, high: highH });
    return fill(s.eta_hours, { n: lowH });
  }

  function aheadText(n) {
    return fill(n === 0 ? s.ahead_none : n === 1 ? s.ahead_one : s.ahead_other, { n: n });
  }

  function pad(n) { return n < 10 ? '0' + n : String(n); }

  function clock(ms) {
    var t = Math.ceil(Math.max(ms, 0) / 1000);
    return Math.floor(t / 3600) + ':' + pad(Math.floor(t / 60) % 60) + ':' + pad(t % 60);
  }

  function tick() {
    var age = Math.floor((Date.now() - receivedAt) / 1000);
    setText('updated', age < 5 ? s.updated_now
      : age < 60 ? fill(s.updated_seconds, { n: age })
      : fill(s.updated_minutes, { n: Math.floor(age / 60) }));
    // Past the start the places are being drawn: say so rather than show 0:00:00.
    if (deadline) setText('countdown', deadline <= Date.now() ? s.drawing
      : fill(s.countdown, { time: clock(deadline - Date.now()) }));
  }

  function setView(next, state) {
    var before = s[view + '_headline'];
    var headline = s[next + '_headline'] || '';
    document.body.setAttribute('data-state', state);
    document.body.setAttribute('data-view', next);
    setText('headline', headline);
    setText('message', s[next + '_message'] || '');
    if (before && document.title.indexOf(before) === 0) {
      document.title = headline + document.title.slice(before.length);
    }
    view = next;
  }

  function setProgress(percent) {
    var bar = byId('progress');
    if (bar && bar.tagName === 'PROGRESS') {
      bar.value = percent;
      bar.textContent = percent + '%';
    } else if (bar) {
      bar.setAttribute('aria-valuenow', percent);
      bar.style.width = percent + '%';
    }
  }

  // The operator's notice: kept current, added at the top of <main> by a template without it.
  function showNotice(text) {
    var el = byId('notice');
    if (!el && text) {
      el = document.createElement('p');
      el.id = 'notice';
      el.className = 'notice';
      el.setAttribute('role', 'status');
      var main = document.querySelector('main') || document.body;
      main.insertBefore(el, main.firstChild);
    }
    if (el && el.textContent !== text) el.textContent = text;
  }

  function show(st) {
    var next = st.degraded ? 'degraded' : st.state;
    showNotice(st.message || '');
    var inLine = next === 'waiting' || next === 'paused';
    if (next !== view) setView(next, st.state);
    setText('title', st.event ? st.event.title : st.title);
    if (!inLine && next !== 'degraded') { lowest = 0; furthest = 0; }
    if (inLine && st.position > 0) {
      lowest = lowest ? Math.min(lowest, st.position) : st.position;
      furthest = Math.max(furthest, st.progress_percent || 0);
      setText('position', String(lowest));
      setText('ahead', aheadText(lowest - 1));
      setText('eta', next === 'waiting' ? etaText(st.eta_low_seconds, st.eta_high_seconds) : s.eta_unknown);
      setProgress(furthest);
    }
    // The countdown runs on this device's clock, from the server's own reading of the gap.
    deadline = next === 'prequeue' && st.event ? receivedAt + st.event.starts_at_ms - st.updated_at_ms : 0;
    tick();
  }

  function stop() {
    if (source) { source.close(); source = null; }
    if (timer) { clearTimeout(timer); timer = null; }
  }

  // The fragment is dropped, since a URL that differs only by it would not load.
  function loadAgain() { location.replace(location.href.split('#')[0]); }

  // The page is served at the URL the visitor asked for; loading it again swaps the visitor
  // token for an access token (admitted) or gets a new place (not_queued).
  function leave(st, delay) {
    stop();
    show(st);
    done = true;
    setTimeout(loadAgain, Math.max(delay, 0));
  }

  function apply(st) {
    if (done || !st || !st.state) return;
    receivedAt = Date.now();
    if (st.refresh_ms) refresh = st.refresh_ms;
    // A lost place waits out one refresh from the page load, so a browser that refuses the
    // cookie reloads at the no-JavaScript pace, not in a tight loop.
    if (st.state === 'admitted') return leave(st, 0);
    if (st.state === 'not_queued') return leave(st, loadedAt + refresh - receivedAt);
    show(st);
    // Closed and ended are final for this page, as they are without JavaScript.
    if (st.state === 'closed' || st.state === 'ended') { stop(); done = true; }
  }

  function poll(delay) {
    if (done) return;
    timer = setTimeout(function () {
      timer = null;
      // Only browsers older than fetch (IE 11) get here without it: they wait like the
      // no-JavaScript page does, by loading the page again.
      if (!window.fetch) { loadAgain(); return; }
      fetch('/_usher/status?zone=' + zone, {
        headers: { accept: 'application/json' }, credentials: 'same-origin', cache: 'no-store'
      })
        .then(function (r) { return r.json(); })
        .then(apply)
        .catch(function () {})
        .then(function () { if (!timer) poll(refresh); });
    }, delay);
  }

  function listen() {
    if (!window.EventSource) return poll(refresh);
    var errors = 0;
    source = new EventSource('/_usher/events?zone=' + zone);
    source.addEventListener('status', function (e) {
      errors = 0;
      try { apply(JSON.parse(e.data)); } catch (err) { /* skip it; the next event counts */ }
    });
    // A refused stream (not 200, not text/event-stream) is closed for good by the browser; a
    // dropped one reconnects on its own after `retry`. Three drops without news: poll instead.
    source.onerror = function () {
      errors += 1;
      if (source && (source.readyState === 2 || errors >= 3)) {
        source.close();
        source = null;
        poll(refresh);
      }
    };
  }

  // Presents the answer to a challenge (`answer`: `nonce=N` or `response=R`), which earns the
  // place at the arrival the challenge carries; loading the page again then shows it. Whatever
  // goes wrong, the page loads again and gets a challenge again.
  function present(ch, answer) {
    done = true;
    fetch(ch.solve + '&challenge=' + encodeURIComponent(ch.token) + '&' + answer, {
      headers: { accept: 'application/json' }, credentials: 'same-origin', cache: 'no-store'
    })
      .then(function (r) {
        var wait = r.status === 429 || r.status === 503
          ? (parseInt(r.headers.get('retry-after'), 10) || 5) * 1000 : 0;
        setTimeout(loadAgain, wait);
      })
      .catch(function () { setTimeout(loadAgain, refresh); });
  }

  // The puzzle: a worker tries nonces (never the page's own thread, which stays responsive)
  // and reports how many it tried; the bar shows the chance it would have found one by then.
  function solve(ch) {
    if (!page.pow || !window.Worker || !window.fetch) return;
    var expected = Math.pow(2, ch.bits);
    var worker = new Worker(page.pow);
    function retry() { worker.terminate(); done = true; setTimeout(loadAgain, refresh); }
    worker.onerror = retry;
    worker.onmessage = function (e) {
      var m = e.data || {};
      if (typeof m.progress === 'number') {
        setProgress(Math.min(99, Math.floor(100 * (1 - Math.exp(-m.progress / expected)))));
      } else if (typeof m.nonce === 'number') {
        setProgress(100);
        worker.terminate();
        present(ch, 'nonce=' + m.nonce);
      } else if (m.error) {
        retry();
      }
    };
    worker.postMessage({ seed: ch.seed, bits: ch.bits });
  }

  // The challenge hook: the provider's widget, rendered into #usher-challenge (the template's
  // {{usher_challenge}}, else the end of <main>); its answer is checked by usher with the
  // provider. Turnstile, hCaptcha and reCAPTCHA render alike.
  var CAPTCHA_GLOBALS = { turnstile: 'turnstile', hcaptcha: 'hcaptcha', recaptcha: 'grecaptcha' };
  function captcha(ch) {
    var box = byId('usher-challenge');
    if (!box) {
      box = document.createElement('div');
      box.id = 'usher-challenge';
      (document.querySelector('main') || document.body).appendChild(box);
    }
    window.usherChallengeReady = function () {
      window[CAPTCHA_GLOBALS[ch.provider]].render(box, {
        sitekey: ch.site_key,
        callback: function (response) { present(ch, 'response=' + encodeURIComponent(response)); }
      });
    };
    var script = document.createElement('script');
    script.src = ch.script + (ch.script.indexOf('?') < 0 ? '?' : '&') + 'render=explicit&onload=usherChallengeReady';
    script.async = true;
    document.head.appendChild(script);
  }

  // A tab in the background polls slowly (browsers throttle timers): ask at once on return.
  document.addEventListener('visibilitychange', function () {
    if (!document.hidden && timer) { clearTimeout(timer); timer = null; poll(0); }
  });

  show(page.status);
  setInterval(tick, 1000);
  if (page.status.state === 'closed' || page.status.state === 'ended') done = true;
  else if (page.status.state === 'challenge' && page.status.challenge) {
    if (page.status.challenge.kind === 'captcha') captcha(page.status.challenge);
    else solve(page.status.challenge);
  }
  else listen();
})();
