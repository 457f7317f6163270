// vla-bt viewer page: folds the frames of a run (live over the websocket, or a recording)
// into a state and draws it. Plain JavaScript, no libraries.
"use strict";

(function () {
  const KEYFRAME_EVERY = 200;     // a copy of the state every this many frames, for fast scrubbing
  const PAGE_FRAME_LIMIT = 50000; // older frames are folded into the base state
  const AUDIT_KEEP = 2000;
  const TRAIL_POINTS = 600;
  const EVENT_ROWS = 120;
  const CAMERA_EVERY_MS = 100;    // the camera image is fetched at most this often, and only after a new frame

  const $ = (selector) => document.querySelector(selector);
  const token = new URLSearchParams(location.search).get("token");

  const app = {
    mode: "live", header: null, base: emptyState(), frames: [], svgs: {}, keyframes: new Map(),
    live: emptyState(), index: -1, follow: true, playing: false, connected: false, shownRev: null,
    poses: [], renderPending: false, playTimer: null, lastError: null,
    camera: {available: false, wanted: false, busy: false, timer: null, last: 0, requests: 0, shown: 0, url: null},
  };
  window.vlaViewer = app; // for tests and for poking at from the console

  // -- the state -----------------------------------------------------------------------

  function emptyState() {
    return {tick: 0, t: null, rev: 0, tree: [], status: {}, bb: {}, audit: [], path: [], steps: {}, end: null};
  }

  function copyState(s) {
    return {tick: s.tick, t: s.t, rev: s.rev, tree: s.tree, status: Object.assign({}, s.status),
      bb: Object.assign({}, s.bb), audit: s.audit.slice(), path: s.path, steps: s.steps || {}, end: s.end};
  }

  // The same fold as vla_bt.viz.record.apply_frame.
  function applyFrame(state, frame) {
    if (frame.kind === "end") {
      const end = Object.assign({}, frame);
      delete end.audit;
      state.end = end;
    } else if (frame.tick !== undefined) {
      state.tick = frame.tick;
    }
    if (frame.t !== undefined) state.t = frame.t;
    if (frame.tree) {
      state.rev = frame.tree.rev;
      state.tree = frame.tree.nodes;
      const live = new Set(frame.tree.nodes.map((n) => n[0]));
      for (const id of Object.keys(state.status)) if (!live.has(id)) delete state.status[id];
    }
    if (frame.nodes) Object.assign(state.status, frame.nodes);
    const steps = frame.bb && frame.bb["/plan/steps"];
    if (Array.isArray(steps) && steps.length === 0) state.steps = {}; // a new response: its steps start afresh
    if (frame.nodes) {
      // a step's last outcome outlives its leaf's reset to INVALID (when the turn starts over)
      const stepOf = {};
      for (const node of state.tree) if (node[4]) stepOf[node[0]] = node[4];
      for (const id of Object.keys(frame.nodes)) {
        const status = frame.nodes[id][0];
        if (status !== "INVALID" && stepOf[id]) state.steps = Object.assign({}, state.steps, {[stepOf[id]]: status});
      }
    }
    if (frame.bb) Object.assign(state.bb, frame.bb);
    if (frame.bb_del) for (const key of frame.bb_del) delete state.bb[key];
    if (frame.audit && frame.audit.length) state.audit = state.audit.concat(frame.audit).slice(-AUDIT_KEEP);
    if (frame.sim && frame.sim.path !== undefined) state.path = frame.sim.path;
    return state;
  }

  function stateAt(index) {
    if (index < 0) return copyState(app.base);
    if (index >= app.frames.length - 1 && app.mode === "live") return app.live;
    let start = Math.floor((index + 1) / KEYFRAME_EVERY) * KEYFRAME_EVERY - 1;
    while (start >= 0 && !app.keyframes.has(start)) start -= KEYFRAME_EVERY;
    let state = start >= 0 ? copyState(app.keyframes.get(start)) : copyState(app.base);
    for (let i = start + 1; i <= index; i++) {
      applyFrame(state, app.frames[i]);
      if ((i + 1) % KEYFRAME_EVERY === 0 && !app.keyframes.has(i)) app.keyframes.set(i, copyState(state));
    }
    return state;
  }

  function notePose(frameIndex, frame) {
    const pose = frame.bb && frame.bb["/robot/pose"];
    if (Array.isArray(pose)) app.poses.push([frameIndex, pose[0], pose[1]]);
  }

  function trailUpTo(index) {
    let lo = 0, hi = app.poses.length; // first pose after index
    while (lo < hi) { const mid = (lo + hi) >> 1; if (app.poses[mid][0] <= index) lo = mid + 1; else hi = mid; }
    return app.poses.slice(Math.max(0, lo - TRAIL_POINTS), lo);
  }

  function reset(message) {
    app.mode = message.mode || "live";
    app.header = message.header || null;
    app.base = message.base || emptyState();
    app.frames = [];
    app.keyframes = new Map();
    app.poses = [];
    app.svgs = message.svgs || {};
    app.shownRev = null;
    app.live = copyState(app.base);
    for (const frame of message.frames || []) addFrame(frame);
    app.follow = app.mode === "live";
    $("#follow").checked = app.follow;
    app.index = app.follow ? app.frames.length - 1 : Math.min(0, app.frames.length - 1);
    $("#mode").textContent = app.mode;
    $("#play").disabled = false;
  }

  function addFrame(frame) {
    if (app.frames.length >= PAGE_FRAME_LIMIT) {
      const dropped = app.frames.splice(0, KEYFRAME_EVERY);
      for (const f of dropped) applyFrame(app.base, f);
      app.keyframes = new Map();
      app.poses = app.poses.filter((p) => p[0] >= KEYFRAME_EVERY).map((p) => [p[0] - KEYFRAME_EVERY, p[1], p[2]]);
      app.index = Math.max(-1, app.index - KEYFRAME_EVERY);
    }
    app.frames.push(frame);
    notePose(app.frames.length - 1, frame);
    applyFrame(app.live, frame);
  }

  // -- the connection ----------------------------------------------------------------------

  function connect() {
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws" +
      (token ? "?token=" + encodeURIComponent(token) : "");
    setConnection("wait", "connecting");
    const socket = new WebSocket(url);
    socket.onopen = () => setConnection("ok", "connected");
    socket.onmessage = (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch (error) { app.lastError = String(error); return; }
      if (message.type === "hello") {
        reset(message);
        setCamera(Boolean(message.camera) && app.mode === "live");
      } else if (message.type === "header") {
        app.header = message.header;
      } else if (message.type === "frame") {
        addFrame(message.frame);
        if (app.follow) app.index = app.frames.length - 1;
        wantCameraFrame();
      } else if (message.type === "svg") {
        app.svgs[message.rev] = message.svg;
        if (!message.svg) app.svgs[message.rev] = null;
      }
      scheduleRender();
    };
    socket.onclose = () => {
      setConnection("lost", app.mode === "replay" ? "closed" : "disconnected");
      if (app.mode === "live") setTimeout(connect, 2000);
    };
  }

  function setConnection(kind, text) {
    app.connected = kind === "ok";
    const badge = $("#conn");
    badge.className = "badge conn-" + kind;
    badge.textContent = text;
  }

  // -- the camera --------------------------------------------------------------------------
  // With camera perception the server has /frame.png: the latest camera frame with the detections drawn.
  // It is fetched again after frame messages: one request at a time, at most every CAMERA_EVERY_MS, so a
  // burst of ticks costs one image. The panel appears with the first image.

  function setCamera(available) {
    const camera = app.camera;
    camera.available = available;
    if (!available) {
      camera.wanted = false;
      $("#camera-panel").hidden = true;
      return;
    }
    wantCameraFrame();
  }

  function wantCameraFrame() {
    if (!app.camera.available) return;
    app.camera.wanted = true;
    pumpCamera();
  }

  function pumpCamera() {
    const camera = app.camera;
    if (!camera.wanted || camera.busy || camera.timer !== null) return;
    const wait = camera.last + CAMERA_EVERY_MS - Date.now();
    if (wait > 0) {
      camera.timer = setTimeout(() => { camera.timer = null; pumpCamera(); }, wait);
      return;
    }
    camera.wanted = false;
    camera.busy = true;
    camera.last = Date.now();
    camera.requests += 1;
    const url = "/frame.png?" + (token ? "token=" + encodeURIComponent(token) + "&" : "") + "n=" + camera.requests;
    fetch(url, {cache: "no-store"})
      .then((response) => (response.ok ? response.blob() : null)) // 404: no frame yet
      .then((blob) => (blob && blob.size ? showCameraFrame(blob) : null))
      .catch((error) => { app.lastError = String(error); })
      .finally(() => { camera.busy = false; pumpCamera(); });
  }

  // The new image is decoded off the page, then takes the old one's place: no flicker, never an empty frame.
  function showCameraFrame(blob) {
    const camera = app.camera;
    const url = URL.createObjectURL(blob);
    const next = new Image();
    next.id = "camera";
    next.alt = $("#camera").alt;
    next.src = url;
    return next.decode().then(() => {
      const previous = camera.url;
      camera.url = url;
      $("#camera").replaceWith(next);
      if (previous) URL.revokeObjectURL(previous);
      camera.shown += 1;
      $("#camera-panel").hidden = false;
      renderCamera();
    }, () => URL.revokeObjectURL(url));
  }

  function renderCamera() {
    const image = $("#camera");
    if ($("#camera-panel").hidden || !image.naturalWidth) return;
    const behind = app.index < app.frames.length - 1;
    $("#camera-info").textContent = image.naturalWidth + "×" + image.naturalHeight + " · latest frame" +
      (behind ? " (the timeline shows an earlier tick)" : "");
  }

  // -- drawing -------------------------------------------------------------------------------

  function scheduleRender() {
    if (app.renderPending) return;
    app.renderPending = true;
    setTimeout(() => { app.renderPending = false; render(); }, 30);
  }

  function esc(value) {
    return String(value === undefined || value === null ? "" : value)
      .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  }

  function fmt(number, digits) {
    return typeof number === "number" && isFinite(number) ? number.toFixed(digits === undefined ? 2 : digits) : "–";
  }

  function since(t) {
    const start = app.header && app.header.t;
    return typeof t === "number" && typeof start === "number" ? "+" + (t - start).toFixed(1) + " s" : "";
  }

  function render() {
    const index = Math.min(app.index, app.frames.length - 1);
    const state = stateAt(index);
    app.shown = state;
    renderHeader(state, index);
    renderTree(state);
    renderWorld(state, index);
    renderDialogue(state);
    renderPlan(state);
    renderSafety(state);
    renderPerception(state);
    renderCamera();
  }

  function rootOf(state) {
    return state.tree.find((n) => n[3] === null);
  }

  function renderHeader(state, index) {
    const tree = app.header && app.header.tree;
    const title = tree ? (tree.name || "tree") + (tree.path ? "  ·  " + tree.path : "") : "vla-bt";
    $("#title").textContent = title;
    document.title = (tree && tree.name ? tree.name + " – " : "") + "vla-bt viewer";
    const root = rootOf(state);
    let status = root ? (state.status[root[0]] || ["INVALID"])[0] : "INVALID";
    if (state.end) status = state.end.status || status;
    const badge = $("#root-status");
    badge.className = "badge st-" + status;
    badge.textContent = status;
    badge.title = state.end && state.end.reason ? state.end.reason : "";
    $("#clock").textContent = "tick " + state.tick + "  " + since(state.t);
    const scrub = $("#scrub");
    scrub.max = String(Math.max(0, app.frames.length - 1));
    scrub.value = String(Math.max(0, index));
    $("#frame-label").textContent = app.frames.length
      ? "frame " + (index + 1) + " / " + app.frames.length + " · tick " + state.tick + " " + since(state.t)
      : "no frames yet";
    $("#play").textContent = app.playing ? "❚❚" : "▶";
  }

  function sanitizeSvg(text) {
    const doc = new DOMParser().parseFromString(text, "image/svg+xml");
    const svg = doc.documentElement;
    if (!svg || svg.nodeName !== "svg") return null;
    for (const bad of svg.querySelectorAll("script, foreignObject")) bad.remove();
    for (const element of svg.querySelectorAll("*")) {
      for (const attribute of Array.from(element.attributes)) {
        const name = attribute.name.toLowerCase();
        if (name.startsWith("on") || ((name === "href" || name === "xlink:href") &&
            !attribute.value.startsWith("#"))) element.removeAttribute(attribute.name);
      }
    }
    svg.removeAttribute("width");
    svg.removeAttribute("height");
    return document.importNode(svg, true);
  }

  // Scale the tree picture to fit its box (Graphviz sizes are in points).
  function fitTree() {
    const holder = $("#tree-svg");
    const svg = holder.querySelector("svg");
    if (!svg || !svg.viewBox || !svg.viewBox.baseVal || !svg.viewBox.baseVal.width) return;
    const width = svg.viewBox.baseVal.width * 4 / 3, height = svg.viewBox.baseVal.height * 4 / 3;
    const box = holder.getBoundingClientRect();
    const scale = Math.max(0.2, Math.min((box.width - 8) / width, (box.height - 12) / height, 1.6));
    svg.style.width = Math.floor(width * scale) + "px";
    svg.style.height = Math.floor(height * scale) + "px";
  }
  window.addEventListener("resize", fitTree);

  function renderTree(state) {
    const holder = $("#tree-svg");
    if (app.shownRev !== state.rev) {
      const text = app.svgs[state.rev];
      if (text) {
        const svg = sanitizeSvg(text);
        holder.replaceChildren();
        if (svg) holder.appendChild(svg);
        holder.classList.remove("empty");
        app.shownRev = state.rev;
        fitTree();
      } else {
        holder.classList.add("empty");
        holder.textContent = state.tree.length
          ? (text === null ? "no tree picture (Graphviz's dot is not installed): see the table" : "drawing the tree…")
          : "waiting for the tree…";
      }
    }
    const byId = {};
    for (const node of state.tree) byId[node[0]] = node;
    if (app.shownRev === state.rev) {
      for (const node of state.tree) {
        const group = holder.querySelector("#" + CSS.escape(node[0]));
        if (!group) continue;
        const [status, message] = state.status[node[0]] || ["INVALID", ""];
        group.classList.remove("st-INVALID", "st-RUNNING", "st-SUCCESS", "st-FAILURE");
        group.classList.add("st-" + status);
        group.setAttribute("data-status", status);
        const edge = holder.querySelector("#e-" + CSS.escape(node[0]));
        if (edge) edge.classList.toggle("active", status === "RUNNING");
        const title = group.querySelector("title");
        if (title) title.textContent = node[1] + " · " + status + (message ? " · " + message : "");
      }
    }
    $("#tree-info").textContent = state.tree.length + " nodes · revision " + state.rev;
    // the table: every node in tree order, indented
    const children = {};
    for (const node of state.tree) (children[node[3]] = children[node[3]] || []).push(node);
    const rows = [];
    const walk = (node, depth) => {
      const [status, message] = state.status[node[0]] || ["INVALID", ""];
      rows.push('<tr class="st-' + esc(status) + '" data-node="' + esc(node[0]) + '" data-name="' + esc(node[1]) +
        '" data-status="' + esc(status) + '"><td class="name"><span class="indent" style="width:' + (depth * 14) +
        'px"></span>' + esc(node[1]) + '</td><td class="type">' + (node[2] !== node[1] ? esc(node[2]) : "") +
        '</td><td><span class="st st-' + esc(status) + '">' + esc(status) + '</span></td><td class="msg">' +
        esc(message) + "</td></tr>");
      for (const child of children[node[0]] || []) walk(child, depth + 1);
    };
    for (const root of children[null] || []) walk(root, 0);
    $("#nodes tbody").innerHTML = rows.join("");
  }

  // -- the world ------------------------------------------------------------------------------

  function cssColour(name) {
    return name && window.CSS && CSS.supports("color", name) ? name : "#9ca3af";
  }

  function renderWorld(state, index) {
    const world = (app.header && app.header.world) || {places: {}, objects: [], humans: [], workspace: [], no_go: [],
      robot: {pose: [0, 0, 0]}};
    const bb = state.bb;
    const pose = Array.isArray(bb["/robot/pose"]) ? bb["/robot/pose"] : (world.robot && world.robot.pose) || [0, 0, 0];
    const objects = Array.isArray(bb["/perception/objects"]) ? bb["/perception/objects"] : world.objects || [];
    const humans = Array.isArray(bb["/perception/humans"]) ? bb["/perception/humans"] : world.humans || [];
    const points = [pose.slice(0, 2)];
    for (const p of world.workspace || []) points.push(p);
    for (const z of world.no_go || []) for (const p of z.polygon) points.push(p);
    for (const name of Object.keys(world.places || {})) points.push(world.places[name]);
    for (const o of objects) points.push(o.pose);
    for (const h of humans) points.push(h.pose);
    const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
    const minX = Math.min(...xs) - 0.6, maxX = Math.max(...xs) + 0.6;
    const minY = Math.min(...ys) - 0.6, maxY = Math.max(...ys) + 0.6;
    const P = (p) => fmt(p[0], 3) + "," + fmt(-p[1], 3);
    const parts = [];
    for (let x = Math.ceil(minX); x <= maxX; x++) parts.push('<line class="grid" x1="' + x + '" y1="' + (-maxY) +
      '" x2="' + x + '" y2="' + (-minY) + '"/>');
    for (let y = Math.ceil(minY); y <= maxY; y++) parts.push('<line class="grid" x1="' + minX + '" y1="' + (-y) +
      '" x2="' + maxX + '" y2="' + (-y) + '"/>');
    if (world.workspace && world.workspace.length) {
      parts.push('<polygon class="workspace" points="' + world.workspace.map(P).join(" ") + '"/>');
    }
    for (const zone of world.no_go || []) {
      parts.push('<polygon class="nogo" points="' + zone.polygon.map(P).join(" ") + '"><title>no-go: ' +
        esc(zone.name) + "</title></polygon>");
      const cx = zone.polygon.reduce((a, p) => a + p[0], 0) / zone.polygon.length;
      const cy = zone.polygon.reduce((a, p) => a + p[1], 0) / zone.polygon.length;
      parts.push('<text class="label nogo-label" text-anchor="middle" x="' + fmt(cx) + '" y="' + fmt(-cy + 0.08) + '">' +
        esc(zone.name) + "</text>");
    }
    for (const name of Object.keys(world.places || {})) {
      const p = world.places[name];
      parts.push('<rect class="place" x="' + fmt(p[0] - 0.09) + '" y="' + fmt(-p[1] - 0.09) +
        '" width="0.18" height="0.18" transform="rotate(45 ' + P(p).replace(",", " ") + ')"/>');
      parts.push('<text class="label place-label" text-anchor="middle" x="' + fmt(p[0]) + '" y="' + fmt(-p[1] + 0.42) +
        '">' + esc(name) + "</text>");
    }
    const trail = trailUpTo(index);
    if (trail.length > 1) {
      parts.push('<polyline class="trail" points="' + trail.map((t) => P([t[1], t[2]])).join(" ") + '"/>');
    }
    if (state.path && state.path.length > 1) {
      parts.push('<polyline class="path" id="planned-path" points="' + state.path.map(P).join(" ") + '"/>');
      const goal = state.path[state.path.length - 1];
      parts.push('<circle class="goal" cx="' + fmt(goal[0]) + '" cy="' + fmt(-goal[1]) + '" r="0.16"/>');
    }
    for (const h of humans) {
      parts.push('<g class="person" data-id="' + esc(h.id) + '"><circle class="clearance" cx="' + fmt(h.pose[0]) +
        '" cy="' + fmt(-h.pose[1]) + '" r="0.5"/><circle class="human" cx="' + fmt(h.pose[0]) + '" cy="' +
        fmt(-h.pose[1]) + '" r="0.2"><title>' + esc(h.id) + '</title></circle><text class="label" x="' +
        fmt(h.pose[0] + 0.25) + '" y="' + fmt(-h.pose[1] + 0.08) + '">' + esc(h.id) + "</text></g>");
    }
    const holding = bb["/robot/holding"];
    const atPlace = {};
    for (const o of objects) {
      let [x, y] = o.pose;
      if (o.id === holding) { x = pose[0] + 0.22; y = pose[1] + 0.22; }
      const key = fmt(x, 1) + "," + fmt(y, 1);
      const slot = atPlace[key] = (atPlace[key] || 0) + 1; // fan out objects at the same spot
      const dx = o.id === holding ? 0 : ((slot - 1) % 4) * 0.24 - 0.36, dy = o.id === holding ? 0 : 0.3 +
        Math.floor((slot - 1) / 4) * 0.26;
      const ox = x + dx, oy = y + dy;
      parts.push('<g class="thing" data-id="' + esc(o.id) + '"><rect class="object" x="' + fmt(ox - 0.09) + '" y="' +
        fmt(-oy - 0.09) + '" width="0.18" height="0.18" fill="' + esc(cssColour(o.color)) + '"><title>' +
        esc(o.id + " (" + (o.color ? o.color + " " : "") + o.label + ")") + "</title></rect></g>");
    }
    const theta = (pose[2] || 0) * 180 / Math.PI;
    const stopped = bb["/robot/moving"] === false && state.audit.length &&
      state.audit[state.audit.length - 1].kind === "safe_stop";
    parts.push('<g id="robot" class="robot' + (stopped ? " stopped" : "") + '" data-x="' + fmt(pose[0], 3) +
      '" data-y="' + fmt(pose[1], 3) + '" transform="translate(' + P(pose).replace(",", " ") + ") rotate(" +
      fmt(-theta, 1) + ')"><circle class="robot-body" r="0.26"/><polygon class="robot-nose" ' +
      'points="0.3,0 0.06,0.13 0.06,-0.13"/><title>robot</title></g>');
    const svg = $("#world");
    svg.setAttribute("viewBox", fmt(minX, 3) + " " + fmt(-maxY, 3) + " " + fmt(maxX - minX, 3) + " " +
      fmt(maxY - minY, 3));
    svg.innerHTML = parts.join("");
    $("#world-info").textContent = world.path || "";
    const battery = bb["/robot/battery"];
    $("#robot-state").innerHTML = "robot at <b>(" + fmt(pose[0]) + ", " + fmt(pose[1]) + ", " + fmt(pose[2]) +
      ")</b> · holding <b>" + esc(holding || "nothing") + "</b> · battery <b>" +
      (typeof battery === "number" ? Math.round(battery * 100) + "%" : "–") + "</b> · " +
      (bb["/robot/moving"] ? "<b>moving</b> " + fmt(bb["/robot/speed"]) + " m/s" : "still");
  }

  // -- the blackboard ---------------------------------------------------------------------------

  function renderDialogue(state) {
    const history = Array.isArray(state.bb["/dialogue/history"]) ? state.bb["/dialogue/history"] : [];
    const list = $("#dialogue");
    list.innerHTML = history.map((turn) => '<li class="' + (turn.role === "user" ? "user" : "robot") +
      '"><span class="who">' + (turn.role === "user" ? "user" : "robot") + " " + esc(since(turn.t)) + "</span>" +
      esc(turn.text) + "</li>").join("") || '<li class="muted">nothing said yet</li>';
    list.scrollTop = list.scrollHeight;
  }

  function stepState(state, step) {
    const refused = state.audit.some((e) => e.kind === "rejected" && e.step === step.id);
    let node = null;
    for (const n of state.tree) if (n[4] === step.id) node = n; // the skill leaf comes after its Confirm
    if (!node) return refused ? "refused" : "waiting";
    let status = (state.status[node[0]] || ["INVALID"])[0];
    if (status === "INVALID" && state.steps && state.steps[step.id]) {
      status = state.steps[step.id];
      if (status === "RUNNING") return "halted"; // stopped before it finished (a guard holds, the turn ended)
    }
    if (refused && status === "FAILURE") return "refused";
    return {RUNNING: "running", SUCCESS: "done", FAILURE: "failed", INVALID: "waiting"}[status];
  }

  function renderPlan(state) {
    const steps = Array.isArray(state.bb["/plan/steps"]) ? state.bb["/plan/steps"] : [];
    const css = {running: "st-RUNNING", done: "st-SUCCESS", failed: "st-FAILURE", refused: "st-FAILURE",
      halted: "st-INVALID", waiting: "st-INVALID"};
    $("#plan tbody").innerHTML = steps.map((step) => {
      const s = stepState(state, step);
      return '<tr data-step="' + esc(step.id) + '" data-state="' + s + '"><td>' + esc(step.id) + "</td><td>" +
        esc(step.skill) + '</td><td class="mono">' + esc(JSON.stringify(step.args)) + "</td><td>" + esc(step.risk) +
        '</td><td><span class="st ' + css[s] + '">' + s + "</span></td></tr>";
    }).join("") || '<tr><td colspan="5" class="muted">no plan</td></tr>';
    const done = state.bb["/plan/done"], rejected = state.bb["/plan/rejected"];
    $("#plan-info").textContent = steps.length ? (done ? "response complete" : "model still streaming") +
      (rejected ? " · cut short: " + rejected : "") : "";
  }

  function describe(event) {
    const skip = new Set(["t", "kind"]);
    switch (event.kind) {
      case "command": return esc(event.skill) + ' <span class="mono">' + esc(JSON.stringify(event.args)) + "</span>" +
        (event.step ? " · " + esc(event.step) : "");
      case "guard_trip": return "<b>" + esc(event.guard) + "</b>: " + esc(event.condition) + " — " + esc(event.reason);
      case "guard_clear": return esc(event.guard) + ": " + esc(event.condition) + " holds again";
      case "safe_stop": return esc(event.reason);
      case "rejected": return esc(event.skill) + " refused: " + esc(event.reason);
      case "confirm": return esc(event.question) + " → <b>" + esc(event.answer) + "</b>";
      case "tree_swap": return "swapped " + esc((event.swapped || []).map((s) => s.what).join(", ")) +
        " (" + esc(event.policy) + ")";
      case "tree_reload_refused": return esc((event.errors || []).join("; "));
      default: return esc(Object.keys(event).filter((k) => !skip.has(k))
        .map((k) => k + "=" + JSON.stringify(event[k])).join(" "));
    }
  }

  function renderSafety(state) {
    const trips = state.audit.filter((e) => e.kind === "guard_trip").length;
    $("#trip-count").textContent = trips + " guard trip" + (trips === 1 ? "" : "s");
    const estop = state.bb["/safety/estop"];
    const last = state.bb["/safety/last_trip"];
    $("#safety").innerHTML = "e-stop <b>" + (estop ? "PRESSED" : "released") + "</b>" +
      (last ? " · last trip <b>" + esc(typeof last === "object" ? (last.guard || "") + " " +
        (last.condition || "") + ": " + (last.reason || "") : last) + "</b>" : "");
    const events = state.audit.slice(-EVENT_ROWS).reverse();
    $("#events").innerHTML = events.map((e) => '<li class="' + esc(e.kind) + '"><span class="when">' + esc(since(e.t)) +
      '</span><span class="kind">' + esc(e.kind) + "</span> " + describe(e) + "</li>").join("") ||
      '<li class="muted">no audit events</li>';
  }

  function renderPerception(state) {
    const objects = Array.isArray(state.bb["/perception/objects"]) ? state.bb["/perception/objects"] : [];
    const humans = Array.isArray(state.bb["/perception/humans"]) ? state.bb["/perception/humans"] : [];
    const pose = (p) => Array.isArray(p) ? "(" + fmt(p[0]) + ", " + fmt(p[1]) + ")" : "";
    $("#perception tbody").innerHTML = objects.map((o) => '<tr><td><span class="swatch" style="background:' +
      esc(cssColour(o.color)) + '"></span>' + esc(o.id) + "</td><td>" + esc((o.color ? o.color + " " : "") + o.label) +
      "</td><td>" + pose(o.pose) + "</td><td>" + (o.graspable ? "" : '<span class="muted">fixed</span>') +
      "</td></tr>").join("") + humans.map((h) => "<tr><td>" + esc(h.id) + "</td><td>person</td><td>" + pose(h.pose) +
      "</td><td></td></tr>").join("") || '<tr><td colspan="4" class="muted">nothing perceived yet</td></tr>';
  }

  // -- the timeline ----------------------------------------------------------------------------

  function seek(index) {
    app.index = Math.max(-1, Math.min(app.frames.length - 1, index));
    app.follow = app.mode === "live" && app.index === app.frames.length - 1 && app.follow;
    $("#follow").checked = app.follow;
    render();
    return app.shown;
  }
  app.seek = seek;
  app.stateAt = stateAt;

  function stop() {
    app.playing = false;
    clearTimeout(app.playTimer);
    render();
  }

  function playStep() {
    if (!app.playing) return;
    if (app.index >= app.frames.length - 1) {
      if (app.mode === "live") { app.follow = true; $("#follow").checked = true; }
      stop();
      return;
    }
    const here = app.frames[Math.max(0, app.index)], next = app.frames[app.index + 1];
    const speed = Number($("#speed").value) || 1;
    const wait = Math.min(1000, Math.max(0, ((next.t || 0) - (here.t || 0)) * 1000 / speed));
    app.playTimer = setTimeout(() => { app.index += 1; render(); playStep(); }, wait);
  }

  $("#play").addEventListener("click", () => {
    if (app.playing) { stop(); return; }
    if (app.index >= app.frames.length - 1) app.index = -1;
    app.playing = true;
    app.follow = false;
    $("#follow").checked = false;
    render();
    playStep();
  });
  $("#scrub").addEventListener("input", (event) => {
    if (app.playing) stop();
    app.follow = false;
    seek(Number(event.target.value));
  });
  $("#follow").addEventListener("change", (event) => {
    app.follow = event.target.checked;
    if (app.follow) { if (app.playing) stop(); app.index = app.frames.length - 1; }
    render();
  });
  document.addEventListener("keydown", (event) => {
    if (event.target && event.target.tagName === "INPUT" && event.target.type !== "range") return;
    if (event.key === "ArrowLeft") { app.follow = false; seek(app.index - 1); event.preventDefault(); }
    if (event.key === "ArrowRight") { app.follow = false; seek(app.index + 1); event.preventDefault(); }
    if (event.key === " ") { $("#play").click(); event.preventDefault(); }
  });

  connect();
})();
