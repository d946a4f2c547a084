// waystation console: the live alerts board, its alarm, and confirmations
// for actions that move hardware. Everything else is plain HTML.
(function () {
  "use strict";

  // A form with data-confirm asks before it is sent.
  document.addEventListener("submit", function (e) {
    var msg = e.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) {
      e.preventDefault();
    }
  });

  var board = document.getElementById("board");
  if (!board || document.body.getAttribute("data-live") !== "board") {
    return;
  }
  var liveState = document.getElementById("live-state");
  var toggle = document.getElementById("sound-toggle");
  var title = document.title;

  // The alarm (sound and title flash) is on unless this browser turned it off.
  var alarmOn = true;
  try { alarmOn = localStorage.getItem("waystation.alarm") !== "off"; } catch (e) {}
  var audio = null;
  function audioContext() {
    var AC = window.AudioContext || window.webkitAudioContext;
    if (!audio && AC) {
      audio = new AC();
    }
    if (audio && audio.state === "suspended") {
      audio.resume();
    }
    return audio;
  }
  function showToggle() {
    toggle.hidden = false;
    toggle.setAttribute("aria-pressed", alarmOn ? "true" : "false");
    toggle.textContent = alarmOn ? "Alarm: on" : "Alarm: off";
  }
  showToggle();
  toggle.addEventListener("click", function () {
    alarmOn = !alarmOn;
    try { localStorage.setItem("waystation.alarm", alarmOn ? "on" : "off"); } catch (e) {}
    showToggle();
    if (alarmOn) {
      audioContext(); // a click lets the page play sound later
    } else {
      stopFlash();
    }
  });
  // Browsers let a page play sound only after the person touched it.
  ["click", "keydown", "touchstart"].forEach(function (ev) {
    document.addEventListener(ev, function () { if (alarmOn) { audioContext(); } }, { once: true });
  });

  function beep() {
    var ctx = audioContext();
    if (!ctx) {
      return;
    }
    var t = ctx.currentTime;
    for (var i = 0; i < 3; i++) {
      var osc = ctx.createOscillator();
      var gain = ctx.createGain();
      osc.type = "square";
      osc.frequency.value = i % 2 ? 660 : 880;
      gain.gain.setValueAtTime(0.0001, t + i * 0.35);
      gain.gain.exponentialRampToValueAtTime(0.3, t + i * 0.35 + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t + i * 0.35 + 0.3);
      osc.connect(gain).connect(ctx.destination);
      osc.start(t + i * 0.35);
      osc.stop(t + i * 0.35 + 0.32);
    }
  }

  var flashTimer = null;
  function startFlash(n) {
    stopFlash();
    var on = false;
    flashTimer = setInterval(function () {
      on = !on;
      document.title = on ? "‼ " + n + " NEW CRITICAL — waystation" : title;
    }, 700);
  }
  function stopFlash() {
    if (flashTimer) {
      clearInterval(flashTimer);
      flashTimer = null;
    }
    document.title = title;
  }
  // Looking at the page ends the flash.
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) { setTimeout(stopFlash, 4000); }
  });
  board.addEventListener("focusin", stopFlash);
  // So does touching it.
  ["click", "keydown", "touchstart"].forEach(function (ev) {
    document.addEventListener(ev, function () { if (flashTimer) { stopFlash(); } });
  });

  function alarm(fresh) {
    var n = Number(document.body.getAttribute("data-alarms") || "0") + 1;
    document.body.setAttribute("data-alarms", String(n));
    if (!alarmOn) {
      return;
    }
    document.body.setAttribute("data-alarmed", String(n));
    beep();
    startFlash(fresh.length);
  }

  function criticalFiring(root) {
    var out = {};
    root.querySelectorAll('li.alert[data-level="critical"][data-state="firing"]:not(.silenced)').forEach(
      function (li) { out[li.getAttribute("data-alert")] = true; });
    return out;
  }
  var known = criticalFiring(board);

  // Someone typing a note keeps the board still until they are done.
  function editing() {
    var a = document.activeElement;
    return a && board.contains(a) && a.tagName === "INPUT" && a.value !== "";
  }

  var inFlight = false, again = false, deferred = false;
  function refresh() {
    if (inFlight) {
      again = true;
      return;
    }
    if (editing()) {
      deferred = true;
      return;
    }
    inFlight = true;
    fetch("/alerts/board", { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (r.redirected || r.status === 401) {
          window.location.reload(); // signed out: the server asks to sign in
          return null;
        }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (html === null) {
          return;
        }
        if (editing()) {
          deferred = true;
          return;
        }
        board.innerHTML = html;
        var now = criticalFiring(board), fresh = [];
        Object.keys(now).forEach(function (id) { if (!known[id]) { fresh.push(id); } });
        known = now;
        fresh.forEach(function (id) {
          var li = board.querySelector('li.alert[data-alert="' + CSS.escape(id) + '"]');
          if (li) { li.classList.add("new"); }
        });
        if (fresh.length) {
          alarm(fresh);
        }
        var n = Number(document.body.getAttribute("data-refreshes") || "0") + 1;
        document.body.setAttribute("data-refreshes", String(n));
      })
      .catch(function () { setLive("connection lost; retrying"); })
      .then(function () {
        inFlight = false;
        if (again) {
          again = false;
          refresh();
        }
      });
  }
  board.addEventListener("focusout", function () {
    if (deferred) {
      deferred = false;
      setTimeout(refresh, 100);
    }
  });

  function setLive(text) {
    liveState.textContent = text;
    document.body.setAttribute("data-stream", text);
  }

  // Live: every notice on the event stream redraws the board. When the
  // stream is not there, the board is polled instead.
  var pollTimer = null;
  function poll() {
    if (!pollTimer) {
      setLive("updating every 10 s");
      pollTimer = setInterval(refresh, 10000);
    }
  }
  if (!window.EventSource) {
    poll();
    return;
  }
  var es = new EventSource("/api/v1/events");
  es.onopen = function () {
    if (pollTimer) {
      clearInterval(pollTimer);
      pollTimer = null;
    }
    setLive("live");
    refresh(); // anything missed while away
  };
  es.onmessage = refresh;
  ["alert", "alert.raised", "alert.changed", "alert.acknowledged", "alert.resolved",
    "alert.escalated", "alert.silenced", "command", "command.acknowledged"].forEach(
    function (t) { es.addEventListener(t, refresh); });
  es.onerror = function () {
    if (es.readyState === EventSource.CLOSED) {
      poll();
    } else {
      setLive("reconnecting");
    }
  };
  // A safety net for notices lost in between.
  setInterval(refresh, 60000);
})();
