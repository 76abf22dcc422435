/**
 * The playground served at `GET /`: a page, its stylesheet
 * (`/playground.css`) and its script (`/playground.js`), with no other
 * resources and no build step. Script and style come only from the page's
 * own origin: the Content-Security-Policy allows nothing inline, the page
 * cannot be framed, and responses are never sniffed or sent a referrer
 * (see {@linkcode PLAYGROUND_HEADERS}).
 *
 * In the browser it speaks MCP over WebSocket to `/ws` on the same host
 * (subprotocol `mcp`, plus `bearer.TOKEN` when a token is entered or given
 * as `#token=...` in the URL), does the `initialize` handshake and
 * `tools/list`, and offers three views:
 *
 * - **Generate**: lists the models that can generate text with
 *   `ai_ollama_list_models` (a model whose `capabilities` lack
 *   `completion`, e.g. an embedding model, is left out; a model without
 *   capabilities is offered) and streams `ai_ollama_generate` through
 *   `notifications/progress`; Cancel sends `notifications/cancelled`. While
 *   a thinking model reasons before its answer, the reasoning shows in an
 *   open box and the status says "thinking…"; when the answer starts the
 *   box folds away. An empty output (cancelled early, or a token limit spent
 *   thinking) says why in a note.
 * - **Chat**: a conversation with history, a system prompt and optional
 *   tools (a JSON array of functions). Replies stream in; a reply's tool
 *   calls are shown as such, and the next message sent is the result of
 *   the first call still unanswered (a `tool` message). Uses `ai_chat` with
 *   `provider/model` names from `ai_list_models` (or the `ai_ollama_*`
 *   tools when the daemon serves only per-provider tools). A failed or
 *   cancelled turn is marked and left out of the history; its text comes
 *   back into the input.
 * - **Compare**: two to four models side by side (`ai_compare`), each
 *   column streaming from the progress notifications tagged with
 *   `_meta.model`; while streaming a column shows when its first token came
 *   (measured in the page), at the end the daemon's time to first token,
 *   tokens per second, tokens and total time, or the model's error.
 *
 * Stable element ids (used by `tests/transports/playground_test.ts`):
 * `#status` (connection; `data-state` is `connecting`, `connected` or
 * `disconnected`), `#token`, `#connect`, `#error`, the view tabs
 * `#tab-generate`, `#tab-chat`, `#tab-compare` and their panels
 * `#view-generate`, `#view-chat`, `#view-compare`.
 * Generate: `#model` (`data-loads` counts completed model listings),
 * `#model-hint`, `#refresh`, `#prompt`, `#max-tokens`, `#generate`,
 * `#cancel`, `#run-status` (`data-state` is `idle`, `thinking`,
 * `generating`, `done`, `failed` or `cancelled`), `#output`,
 * `#output-note`, `#thinking-box` and `#thinking`.
 * Chat: `#chat-model` (`data-loads` counts completed listings, shared with
 * the compare pickers), `#chat-new`, `#chat-system`, `#chat-tools`,
 * `#chat-log` (one `li.message` per turn, `data-role` `user`,
 * `assistant` or `tool`, `data-state` `streaming`, `done`, `failed` or
 * `cancelled`; text in `.text`, tool calls in `.tool-call`),
 * `#chat-input`, `#chat-input-label`, `#chat-send`, `#chat-cancel`,
 * `#chat-status` (`data-state` as `#run-status`, with `tool` while a tool
 * result is awaited).
 * Compare: `#compare-model-1` to `#compare-model-4` (the last two may be
 * left at "none"), `#compare-prompt`, `#compare-max-tokens`,
 * `#compare-run`, `#compare-cancel`, `#compare-status` and
 * `#compare-results`, holding one `.column` per model (`data-model`,
 * `data-state`) with `#compare-answer-N` and `#compare-stats-N`.
 *
 * @module
 */

/** Headers of every playground response: nothing inline, no framing, no sniffing. */
export const PLAYGROUND_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; " +
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  // The page and its script change together with Rune: always ask again.
  "cache-control": "no-cache",
};

/** The page served at `GET /`. */
export const PLAYGROUND_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Rune playground</title>
<link rel="stylesheet" href="/playground.css">
<script src="/playground.js" defer></script>
</head>
<body>
<main>
  <header>
    <h1>Rune playground</h1>
    <p id="status" role="status" data-state="connecting">connecting&hellip;</p>
  </header>

  <form id="connection" class="row" novalidate>
    <label for="token">Token</label>
    <input id="token" type="password" autocomplete="off" spellcheck="false"
      aria-describedby="token-hint">
    <button id="connect" type="submit">Connect</button>
    <span id="token-hint" class="hint">only needed when the daemon requires one;
      also read from <code>#token=&hellip;</code> in the address</span>
  </form>

  <nav class="tabs" role="tablist" aria-label="Views">
    <button id="tab-generate" type="button" role="tab" aria-selected="true"
      aria-controls="view-generate">Generate</button>
    <button id="tab-chat" type="button" role="tab" aria-selected="false"
      aria-controls="view-chat">Chat</button>
    <button id="tab-compare" type="button" role="tab" aria-selected="false"
      aria-controls="view-compare">Compare</button>
  </nav>

  <p id="error" role="alert" hidden></p>

  <section id="view-generate" role="tabpanel" aria-labelledby="tab-generate">
    <form id="run" novalidate>
      <div class="row">
        <label for="model">Model</label>
        <select id="model" data-loads="0"></select>
        <button id="refresh" type="button" disabled>Reload models</button>
        <span id="model-hint" class="hint"></span>
      </div>
      <label for="prompt">Prompt</label>
      <textarea id="prompt" rows="5" aria-describedby="prompt-hint"
        placeholder="Why is the sky blue?"></textarea>
      <div class="row">
        <label for="max-tokens">Max tokens</label>
        <input id="max-tokens" type="number" min="1" step="1" placeholder="no limit">
        <button id="generate" type="submit" disabled>Generate</button>
        <button id="cancel" type="button" disabled>Cancel</button>
        <span id="run-status" role="status" data-state="idle"></span>
      </div>
      <p id="prompt-hint" class="hint">Ctrl+Enter generates, Escape cancels.</p>
    </form>

    <details id="thinking-box" hidden>
      <summary>Thinking</summary>
      <pre id="thinking"></pre>
    </details>
    <h2 id="output-label">Output</h2>
    <p id="output-note" class="hint" role="status" hidden></p>
    <pre id="output" aria-labelledby="output-label" tabindex="0"></pre>
  </section>

  <section id="view-chat" role="tabpanel" aria-labelledby="tab-chat" hidden>
    <form id="chat-form" novalidate>
      <div class="row">
        <label for="chat-model">Model</label>
        <select id="chat-model" data-loads="0"></select>
        <button id="chat-new" type="button">New chat</button>
        <span id="chat-status" role="status" data-state="idle"></span>
      </div>
      <details id="chat-settings">
        <summary>System prompt and tools</summary>
        <label for="chat-system">System prompt</label>
        <textarea id="chat-system" rows="2" placeholder="You are a helpful assistant."></textarea>
        <label for="chat-tools">Tools: a JSON array of functions the model may call</label>
        <textarea id="chat-tools" rows="4" spellcheck="false"
          placeholder='[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]'></textarea>
      </details>
      <ol id="chat-log" aria-live="polite" aria-label="Conversation"></ol>
      <label for="chat-input" id="chat-input-label">Message</label>
      <textarea id="chat-input" rows="3" aria-describedby="chat-hint"></textarea>
      <div class="row">
        <button id="chat-send" type="submit" disabled>Send</button>
        <button id="chat-cancel" type="button" disabled>Cancel</button>
        <span id="chat-hint" class="hint">Ctrl+Enter sends, Escape cancels.</span>
      </div>
    </form>
  </section>

  <section id="view-compare" role="tabpanel" aria-labelledby="tab-compare" hidden>
    <form id="compare-form" novalidate>
      <div class="row">
        <label for="compare-model-1">Models</label>
        <select id="compare-model-1" aria-label="Model 1"></select>
        <select id="compare-model-2" aria-label="Model 2"></select>
        <select id="compare-model-3" aria-label="Model 3 (optional)"></select>
        <select id="compare-model-4" aria-label="Model 4 (optional)"></select>
      </div>
      <label for="compare-prompt">Prompt</label>
      <textarea id="compare-prompt" rows="4" placeholder="Write a haiku about the sea."></textarea>
      <div class="row">
        <label for="compare-max-tokens">Max tokens</label>
        <input id="compare-max-tokens" type="number" min="1" step="1" placeholder="no limit">
        <button id="compare-run" type="submit" disabled>Compare</button>
        <button id="compare-cancel" type="button" disabled>Cancel</button>
        <span id="compare-status" role="status" data-state="idle"></span>
      </div>
    </form>
    <div id="compare-results" class="columns" data-count="0"></div>
  </section>
</main>
</body>
</html>
`;

/** The stylesheet served at `GET /playground.css`. */
export const PLAYGROUND_CSS = String
  .raw`:root { color-scheme: light dark; --accent: #4f46e5; --bad: #b91c1c; --muted: #6b7280; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, sans-serif; }
main { max-width: 72rem; margin: 0 auto; padding: 1rem 1.25rem 3rem; }
header { display: flex; flex-wrap: wrap; align-items: baseline; gap: .25rem 1rem; }
h1 { font-size: 1.35rem; margin: .5rem 0; }
h2 { font-size: 1rem; margin: 1rem 0 .25rem; }
form { margin: .75rem 0; }
label { font-weight: 600; }
.row { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem; margin: .5rem 0; }
.hint, #status, #run-status { color: var(--muted); font-weight: normal; }
#status[data-state="connected"]::before { content: "\25CF  "; color: #16a34a; }
#status[data-state="disconnected"]::before { content: "\25CF  "; color: var(--bad); }
input, select, textarea, button { font: inherit; }
input, select, textarea { padding: .3rem .45rem; border: 1px solid #9ca3af; border-radius: 4px; }
textarea { display: block; width: 100%; resize: vertical; margin-top: .25rem; }
#max-tokens { width: 8rem; }
button { padding: .35rem .9rem; border-radius: 4px; border: 1px solid var(--accent);
  background: transparent; color: inherit; cursor: pointer; }
button[type="submit"]:not(#connect) { background: var(--accent); color: #fff; }
button:disabled { opacity: .45; cursor: default; }
:focus-visible { outline: 2px solid var(--accent); outline-offset: 2px; }
#error { color: var(--bad); border-left: 3px solid var(--bad); padding: .25rem .75rem;
  white-space: pre-wrap; }
pre { white-space: pre-wrap; word-break: break-word; margin: 0; padding: .75rem;
  border: 1px solid #9ca3af; border-radius: 4px; min-height: 6rem; max-height: 60vh;
  overflow: auto; font: 14px/1.45 ui-monospace, monospace; }
#thinking { min-height: 0; color: var(--muted); }
#output-note { margin: 0 0 .25rem; }
.tabs { display: flex; gap: .25rem; margin: 1rem 0 .5rem; border-bottom: 1px solid #9ca3af; }
.tabs button { border: 1px solid transparent; border-bottom: none; border-radius: 4px 4px 0 0; }
.tabs button[aria-selected="true"] { border-color: #9ca3af; font-weight: 600;
  background: var(--accent); color: #fff; }
#chat-settings { margin: .5rem 0; }
#chat-settings textarea { margin-bottom: .5rem; font: 13px/1.4 ui-monospace, monospace; }
#chat-log { list-style: none; margin: .75rem 0; padding: 0; max-height: 60vh; overflow: auto; }
.message { margin: 0 0 .6rem; padding: .4rem .7rem; border-left: 3px solid #9ca3af;
  border-radius: 2px; }
.message[data-role="user"] { border-color: var(--accent); }
.message[data-role="tool"] { border-color: #d97706; }
.message[data-state="failed"], .message[data-state="cancelled"] { opacity: .55; }
.message .who { display: block; font-size: .8rem; font-weight: 600; color: var(--muted); }
.message .text { white-space: pre-wrap; word-break: break-word; }
.tool-call { font: 13px/1.45 ui-monospace, monospace; margin-top: .25rem; padding: .25rem .5rem;
  border: 1px dashed #d97706; border-radius: 4px; white-space: pre-wrap; word-break: break-word; }
.columns { display: grid; gap: .75rem; margin-top: .75rem; grid-template-columns: 1fr; }
.columns[data-count="2"] { grid-template-columns: repeat(2, minmax(0, 1fr)); }
.columns[data-count="3"] { grid-template-columns: repeat(3, minmax(0, 1fr)); }
.columns[data-count="4"] { grid-template-columns: repeat(4, minmax(0, 1fr)); }
.column h3 { font-size: .95rem; margin: 0 0 .15rem; word-break: break-all; }
.column .stats { margin: 0 0 .35rem; font-size: .85rem; color: var(--muted); }
.column[data-state="failed"] .stats { color: var(--bad); }
@media (max-width: 40rem) { .columns[data-count] { grid-template-columns: 1fr; } }
`;

/**
 * The script served at `GET /playground.js`. It must stay free of
 * backticks and `${` because it is a template literal.
 */
export const PLAYGROUND_JS = String.raw`"use strict";
(function () {
  var PROTOCOL_VERSION = "2025-06-18";
  var el = function (id) { return document.getElementById(id); };
  var statusEl = el("status"), tokenEl = el("token"), modelEl = el("model");
  var refreshEl = el("refresh"), promptEl = el("prompt"), maxTokensEl = el("max-tokens");
  var generateEl = el("generate"), cancelEl = el("cancel"), runStatusEl = el("run-status");
  var outputEl = el("output"), thinkingEl = el("thinking"), thinkingBox = el("thinking-box");
  var errorEl = el("error"), noteEl = el("output-note"), modelHintEl = el("model-hint");
  var chatModelEl = el("chat-model"), chatNewEl = el("chat-new"), chatStatusEl = el("chat-status");
  var chatSystemEl = el("chat-system"), chatToolsEl = el("chat-tools"), chatLogEl = el("chat-log");
  var chatInputEl = el("chat-input"), chatInputLabel = el("chat-input-label");
  var chatSendEl = el("chat-send"), chatCancelEl = el("chat-cancel");
  var comparePickers = [1, 2, 3, 4].map(function (n) { return el("compare-model-" + n); });
  var comparePromptEl = el("compare-prompt"), compareMaxEl = el("compare-max-tokens");
  var compareRunEl = el("compare-run"), compareCancelEl = el("compare-cancel");
  var compareStatusEl = el("compare-status"), compareResultsEl = el("compare-results");
  var VIEWS = ["generate", "chat", "compare"];
  var COMPARE_MIN = 2;

  var socket = null;      // the current WebSocket
  var ready = false;      // initialize handshake done on the current socket
  var tools = {};         // names of the tools the daemon offers
  var nextId = 1;
  var pending = new Map(); // request id -> { resolve, reject }
  // The generation in progress: { id, token, thought, wrote, toggled }: whether thinking and
  // text have arrived, and whether the user opened or closed the thinking box meanwhile.
  var run = null;
  // The chat: the messages so far, the tool calls still waiting for a result, and the turn
  // in progress ({ id, token, entry, user, text, answered }).
  var chat = { history: [], awaiting: [] };
  var chatRun = null;
  // The comparison in progress: { id, token, started, columns: { model -> column } }.
  var compareRun = null;
  var view = "generate";

  function RpcError(error) {
    this.name = "RpcError";
    this.code = error && error.code;
    // The MCP SDK puts "MCP error CODE: " in front of its messages; say the code once.
    var text = String((error && error.message) || "").replace(/^MCP error -?\d+: /, "");
    this.message = "JSON-RPC error " + this.code + ": " + text;
  }
  function Cancelled() { this.name = "Cancelled"; this.message = "cancelled"; }

  function setStatus(state, text) {
    statusEl.dataset.state = state;
    statusEl.textContent = text;
    updateButtons();
  }
  function setRun(state, text) {
    runStatusEl.dataset.state = state;
    runStatusEl.textContent = text;
    updateButtons();
  }
  function setChatStatus(state, text) {
    chatStatusEl.dataset.state = state;
    chatStatusEl.textContent = text;
    updateButtons();
  }
  function setCompareStatus(state, text) {
    compareStatusEl.dataset.state = state;
    compareStatusEl.textContent = text;
    updateButtons();
  }
  function showError(message) {
    errorEl.textContent = message;
    errorEl.hidden = false;
  }
  function clearError() {
    errorEl.textContent = "";
    errorEl.hidden = true;
  }
  // Says why the output is empty; an empty text hides the note.
  function setNote(text) {
    noteEl.textContent = text;
    noteEl.hidden = text === "";
  }
  function compareModels() {
    return comparePickers.map(function (p) { return p.value; })
      .filter(function (v) { return v !== ""; });
  }
  function updateButtons() {
    generateEl.disabled = !ready || run !== null || modelEl.value === "";
    cancelEl.disabled = run === null;
    refreshEl.disabled = !ready;
    chatSendEl.disabled = !ready || chatRun !== null || chatModelEl.value === "";
    chatCancelEl.disabled = chatRun === null;
    compareRunEl.disabled = !ready || compareRun !== null || compareModels().length < COMPARE_MIN;
    compareCancelEl.disabled = compareRun === null;
  }

  function send(message) {
    if (!socket || socket.readyState !== WebSocket.OPEN) throw new Error("Not connected");
    socket.send(JSON.stringify(message));
  }
  function notify(method, params) {
    var message = { jsonrpc: "2.0", method: method };
    if (params) message.params = params;
    send(message);
  }
  function request(method, params, id) {
    if (id === undefined) id = nextId++;
    return new Promise(function (resolve, reject) {
      send({ jsonrpc: "2.0", id: id, method: method, params: params });
      pending.set(id, { resolve: resolve, reject: reject });
    });
  }
  function rejectAll(error) {
    var entries = Array.from(pending.values());
    pending.clear();
    entries.forEach(function (entry) { entry.reject(error); });
  }
  function textOf(result) {
    return (result.content || []).filter(function (c) { return c.type === "text"; })
      .map(function (c) { return c.text; }).join("\n");
  }
  // Forgets request id: its reply, if one still comes, is dropped.
  function abandon(id) {
    var entry = pending.get(id);
    pending.delete(id);
    if (entry) entry.reject(new Cancelled());
  }
  function sendCancel(id) {
    try {
      notify("notifications/cancelled", { requestId: id, reason: "cancelled by the user" });
    } catch (error) {
      showError("Could not send the cancellation: " + error.message);
    }
  }

  function receive(data) {
    var message;
    try {
      message = JSON.parse(data);
    } catch (_) {
      showError("The server sent a frame that is not JSON: " + String(data).slice(0, 200));
      return;
    }
    (Array.isArray(message) ? message : [message]).forEach(handle);
  }
  function handle(message) {
    if (!message || typeof message !== "object") return;
    if (typeof message.method === "string") {
      if (message.id !== undefined && message.id !== null) {
        // A request from the server: answer pings, refuse the rest.
        if (message.method === "ping") send({ jsonrpc: "2.0", id: message.id, result: {} });
        else send({ jsonrpc: "2.0", id: message.id,
          error: { code: -32601, message: "Method not found: " + message.method } });
      } else if (message.method === "notifications/progress") {
        var params = message.params || {};
        if (run && params.progressToken === run.token) progress(params);
        else if (chatRun && params.progressToken === chatRun.token) chatProgress(params);
        else if (compareRun && params.progressToken === compareRun.token) compareProgress(params);
      }
      return;
    }
    var entry = pending.get(message.id);
    if (!entry) return; // a reply to a cancelled request
    pending.delete(message.id);
    if (message.error) entry.reject(new RpcError(message.error));
    else entry.resolve(message.result);
  }

  function progress(params) {
    var thought = params._meta && params._meta.thinking;
    if (typeof thought === "string" && thought !== "") {
      if (!run.thought && !run.wrote) {
        // Until the answer starts, the reasoning is the only sign of life: show it open.
        thinkingBox.hidden = false;
        thinkingBox.open = true;
        setRun("thinking", "thinking\u2026");
      }
      run.thought = true;
      append(thinkingEl, thought);
    }
    if (typeof params.message === "string" && params.message !== "") {
      if (!run.wrote && run.thought) {
        // The answer starts: fold the reasoning away unless the user chose otherwise.
        if (!run.toggled) thinkingBox.open = false;
        setRun("generating", "generating\u2026");
      }
      run.wrote = true;
      append(outputEl, params.message);
    }
  }
  function append(target, text) {
    var atEnd = target.scrollHeight - target.scrollTop - target.clientHeight < 24;
    target.append(text);
    if (atEnd) target.scrollTop = target.scrollHeight;
  }

  function describeClose(event, opened) {
    var detail = "code " + event.code + (event.reason ? ": " + event.reason : ", no reason given");
    if (!opened) {
      return "Could not connect to " + event.target.url + " (" + detail + "). The daemon " +
        "is not running or refused the connection; if it requires a token, enter it above " +
        "or open this page with #token=YOUR_TOKEN.";
    }
    return "The connection closed (" + detail + ").";
  }

  function tokenFromFragment() {
    var match = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (!match) return null;
    // Keep the token out of the address bar, history and screenshots.
    history.replaceState(null, "", location.pathname + location.search);
    try {
      return decodeURIComponent(match[1]);
    } catch (_) {
      return match[1];
    }
  }

  // Every run in progress ends: the connection it used is gone.
  function endRuns(state, text) {
    if (run) {
      abandonRun();
      setRun(state, text);
    }
    if (chatRun) chatFailed(state, text);
    if (compareRun) compareEnded(state, text);
  }

  function connect() {
    if (socket) {
      var old = socket;
      socket = null;
      old.onclose = null;
      old.close(1000, "reconnecting");
    }
    ready = false;
    endRuns("cancelled", "cancelled (reconnected)");
    rejectAll(new Error("Reconnecting"));
    clearError();
    var url = new URL("/ws", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    url.hash = "";
    url.search = "";
    var token = tokenEl.value.trim();
    var ws;
    try {
      ws = new WebSocket(url.href, token ? ["mcp", "bearer." + token] : ["mcp"]);
    } catch (error) {
      setStatus("disconnected", "disconnected");
      showError("Cannot open " + url.href + ": " + error.message +
        (token ? " (a token may only contain letters, digits and !#$%&'*+-.^_|~)" : ""));
      return;
    }
    socket = ws;
    var opened = false;
    setStatus("connecting", "connecting to " + url.host + "\u2026");
    ws.onopen = function () {
      opened = true;
      handshake(ws);
    };
    ws.onmessage = function (event) {
      if (socket === ws) receive(event.data);
    };
    ws.onerror = function () {
      // The close event that follows says what happened.
    };
    ws.onclose = function (event) {
      if (socket !== ws) return;
      socket = null;
      ready = false;
      var message = describeClose(event, opened);
      if (run) setRun("failed", "failed");
      run = null;
      endRuns("failed", "failed");
      rejectAll(new Error(message));
      setStatus("disconnected", "disconnected (code " + event.code +
        (event.reason ? ": " + event.reason : "") + ")");
      showError(message);
    };
  }

  function handshake(ws) {
    setStatus("connecting", "initializing\u2026");
    request("initialize", {
      protocolVersion: PROTOCOL_VERSION,
      capabilities: {},
      clientInfo: { name: "rune-playground", title: "Rune playground", version: "1" },
    }).then(function (result) {
      if (socket !== ws) return;
      notify("notifications/initialized");
      ready = true;
      var info = result.serverInfo || {};
      setStatus("connected", "connected to " + (info.name || "server") +
        (info.version ? " " + info.version : "") + " (MCP " + result.protocolVersion + ")");
      return request("tools/list", {}).then(function (listed) {
        tools = {};
        (listed.tools || []).forEach(function (t) { tools[t.name] = true; });
        return Promise.all([loadModels(), loadRouterModels()]);
      });
    }).catch(function (error) {
      if (socket === ws) showError("MCP handshake failed: " + error.message);
    });
  }

  // Models that can generate text; without capabilities, a model is offered.
  function canGenerate(m) {
    return !Array.isArray(m.capabilities) || m.capabilities.indexOf("completion") !== -1;
  }

  function loadModels() {
    refreshEl.disabled = true;
    return request("tools/call", { name: "ai_ollama_list_models", arguments: {} })
      .then(function (result) {
        if (result.isError) {
          showError(textOf(result) || "Listing the models failed.");
          return;
        }
        var all = (result.structuredContent && result.structuredContent.models) || [];
        var models = all.filter(canGenerate);
        var hidden = all.length - models.length;
        modelHintEl.textContent = hidden === 0 ? "" : hidden === 1
          ? "(1 model that cannot generate text is not listed)"
          : "(" + hidden + " models that cannot generate text are not listed)";
        var previous = modelEl.value;
        modelEl.replaceChildren.apply(modelEl, models.map(function (m) {
          var details = [m.parameter_size, m.quantization].filter(Boolean).join(" ");
          return new Option(details ? m.name + " (" + details + ")" : m.name, m.name);
        }));
        if (previous && models.some(function (m) { return m.name === previous; })) {
          modelEl.value = previous;
        }
        if (all.length === 0) {
          showError("No models are installed on Ollama: run \"ollama pull llama3.2\".");
        } else if (models.length === 0) {
          showError("No installed model can generate text (" + all.map(function (m) {
            return m.name;
          }).join(", ") + " cannot): run \"ollama pull llama3.2\".");
        }
      }, function (error) {
        showError("Listing the models failed: " + error.message);
      }).then(function () {
        modelEl.dataset.loads = String(Number(modelEl.dataset.loads || 0) + 1);
        updateButtons();
      });
  }

  // The provider/model names of every provider (ai_list_models), for chat and compare;
  // a daemon with only per-provider tools lists Ollama's, named "ollama/...".
  function loadRouterModels() {
    var router = tools.ai_list_models === true;
    return request("tools/call", {
      name: router ? "ai_list_models" : "ai_ollama_list_models",
      arguments: {},
    }).then(function (result) {
      var all = (result.structuredContent && result.structuredContent.models) || [];
      var names = all.filter(canGenerate).map(function (m) {
        return router ? m.name : "ollama/" + m.name;
      });
      fillSelect(chatModelEl, names, names[0]);
      comparePickers.forEach(function (picker, i) {
        var optional = i >= COMPARE_MIN;
        fillSelect(picker, names, optional ? "" : names[i] || "", optional);
      });
    }, function (error) {
      showError("Listing the models failed: " + error.message);
    }).then(function () {
      chatModelEl.dataset.loads = String(Number(chatModelEl.dataset.loads || 0) + 1);
      updateButtons();
    });
  }
  // Fills a select with names (and "none" when optional), keeping the choice when listed.
  function fillSelect(select, names, fallback, optional) {
    var previous = select.value;
    var options = names.map(function (name) { return new Option(name, name); });
    if (optional) options.unshift(new Option("(none)", ""));
    select.replaceChildren.apply(select, options);
    var keep = previous !== "" && names.indexOf(previous) !== -1;
    select.value = keep ? previous : fallback;
  }

  function generate() {
    if (!ready || run) return;
    var args = { model: modelEl.value, prompt: promptEl.value };
    var max = maxTokensEl.value.trim();
    if (max !== "") args.options = { num_predict: Number(max) };
    var id = nextId++;
    var current = { id: id, token: "generate-" + id, thought: false, wrote: false, toggled: false };
    run = current;
    clearError();
    setNote("");
    outputEl.textContent = "";
    thinkingEl.textContent = "";
    thinkingBox.open = false;
    thinkingBox.hidden = true;
    setRun("generating", "generating\u2026");
    var started = performance.now();
    request("tools/call", {
      name: "ai_ollama_generate",
      arguments: args,
      _meta: { progressToken: current.token },
    }, id).then(function (result) {
      if (run !== current) return;
      run = null;
      if (result.isError) {
        showError(textOf(result) || "The generation failed.");
        setRun("failed", "failed");
        return;
      }
      var s = result.structuredContent || {};
      outputEl.textContent = typeof s.response === "string" ? s.response : textOf(result);
      if (s.thinking) {
        thinkingEl.textContent = s.thinking;
        thinkingBox.hidden = false;
      }
      if (outputEl.textContent === "") {
        setNote(s.thinking && s.done_reason === "length"
          ? "No output: the model spent the whole token limit thinking. Raise Max tokens."
          : "The model returned no output.");
        if (s.thinking) thinkingBox.open = true;
      }
      var tokens = s.usage && s.usage.completion_tokens;
      setRun("done", "done (" + (s.done_reason || "stop") +
        (tokens ? ", " + tokens + " tokens" : "") + ", " +
        Math.round(performance.now() - started) + " ms)");
    }, function (error) {
      if (run !== current || error instanceof Cancelled) return;
      run = null;
      showError(error.message);
      setRun("failed", "failed");
    });
  }

  function abandonRun() {
    if (!run) return;
    var id = run.id;
    run = null;
    abandon(id);
  }

  function cancel() {
    if (!run) return;
    var id = run.id;
    if (outputEl.textContent === "") {
      setNote(run.thought
        ? "Cancelled while the model was thinking, before any output."
        : "Cancelled before any output.");
    }
    abandonRun();
    sendCancel(id);
    setRun("cancelled", "cancelled");
  }

  // ---- Chat

  // Adds one turn to the log: role "user", "assistant" or "tool".
  function chatEntry(role, who, text) {
    var li = document.createElement("li");
    li.className = "message";
    li.dataset.role = role;
    li.dataset.state = "done";
    var label = document.createElement("span");
    label.className = "who";
    label.textContent = who;
    var body = document.createElement("div");
    body.className = "text";
    body.textContent = text;
    li.append(label, body);
    chatLogEl.append(li);
    chatLogEl.scrollTop = chatLogEl.scrollHeight;
    return li;
  }
  function callText(call) {
    var fn = call["function"] || {};
    return fn.name + "(" + JSON.stringify(fn.arguments || {}) + ")";
  }
  function showToolCalls(entry, calls) {
    calls.forEach(function (call) {
      var box = document.createElement("div");
      box.className = "tool-call";
      box.textContent = "Tool call: " + callText(call);
      entry.append(box);
    });
  }
  // Labels the input: a message, or the result of the first tool call still unanswered.
  function promptForInput() {
    var next = chat.awaiting[0];
    chatInputLabel.textContent = next ? "Result of " + callText(next) : "Message";
    chatSendEl.textContent = next ? "Send result" : "Send";
  }
  function parseTools() {
    var text = chatToolsEl.value.trim();
    if (text === "") return undefined;
    var value;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new Error("The tools are not valid JSON: " + error.message);
    }
    if (!Array.isArray(value)) {
      throw new Error("The tools must be a JSON array of {\"type\": \"function\", \"function\": {...}}.");
    }
    return value;
  }
  function newChat() {
    if (chatRun) chatCancel();
    chat = { history: [], awaiting: [] };
    chatLogEl.replaceChildren();
    chatInputEl.value = "";
    promptForInput();
    setChatStatus("idle", "");
  }
  function chatModelName(model) {
    // Without the router tools, Ollama's own tools take its bare names.
    return tools.ai_chat ? model : model.replace(/^ollama\//, "");
  }

  function chatSend() {
    if (!ready || chatRun) return;
    var text = chatInputEl.value.trim();
    if (text === "") return;
    var toolList;
    try {
      toolList = parseTools();
    } catch (error) {
      showError(error.message);
      return;
    }
    clearError();
    var model = chatModelEl.value;
    var message, userEntry;
    var call = chat.awaiting[0];
    if (call) {
      message = { role: "tool", content: text, tool_name: (call["function"] || {}).name };
      if (call.id) message.tool_call_id = call.id;
      userEntry = chatEntry("tool", "Result of " + callText(call), text);
    } else {
      message = { role: "user", content: text };
      userEntry = chatEntry("user", "You", text);
    }
    chat.history.push(message);
    chatInputEl.value = "";
    if (call) {
      chat.awaiting.shift();
      if (chat.awaiting.length > 0) {
        // More calls to answer before the model goes on.
        promptForInput();
        setChatStatus("tool", "waiting for the result of " + callText(chat.awaiting[0]));
        return;
      }
    }
    promptForInput();
    var messages = chat.history.slice();
    var system = chatSystemEl.value.trim();
    if (system !== "") messages.unshift({ role: "system", content: system });
    var args = { model: chatModelName(model), messages: messages };
    if (toolList) args.tools = toolList;
    var id = nextId++;
    var entry = chatEntry("assistant", model, "");
    entry.dataset.state = "streaming";
    var current = { id: id, token: "chat-" + id, entry: entry, user: userEntry, text: text,
      answered: call };
    chatRun = current;
    setChatStatus("generating", "generating\u2026");
    request("tools/call", {
      name: tools.ai_chat ? "ai_chat" : "ai_ollama_chat",
      arguments: args,
      _meta: { progressToken: current.token },
    }, id).then(function (result) {
      if (chatRun !== current) return;
      if (result.isError) {
        showError(textOf(result) || "The chat failed.");
        chatFailed("failed", "failed");
        return;
      }
      chatRun = null;
      var s = result.structuredContent || {};
      var reply = s.message || { role: "assistant", content: textOf(result) };
      entry.querySelector(".text").textContent = reply.content || "";
      entry.dataset.state = "done";
      var calls = Array.isArray(reply.tool_calls) ? reply.tool_calls : [];
      showToolCalls(entry, calls);
      var kept = { role: "assistant", content: reply.content || "" };
      if (calls.length > 0) kept.tool_calls = calls;
      chat.history.push(kept);
      chat.awaiting = calls.slice();
      promptForInput();
      if (calls.length > 0) {
        setChatStatus("tool", "waiting for the result of " + callText(calls[0]));
      } else {
        var tokens = s.usage && s.usage.completion_tokens;
        setChatStatus("done", "done" + (tokens ? " (" + tokens + " tokens)" : ""));
      }
    }, function (error) {
      if (chatRun !== current || error instanceof Cancelled) return;
      showError(error.message);
      chatFailed("failed", "failed");
    });
  }
  function chatProgress(params) {
    if (typeof params.message === "string" && params.message !== "") {
      append(chatRun.entry.querySelector(".text"), params.message);
    }
  }
  // The turn in progress failed or was cancelled: it leaves the history and its text
  // comes back into the input.
  function chatFailed(state, text) {
    var current = chatRun;
    chatRun = null;
    current.entry.dataset.state = state;
    current.user.dataset.state = state;
    chat.history.pop();
    // A tool result that failed to go through: its call waits for an answer again.
    if (current.answered) chat.awaiting.unshift(current.answered);
    if (chatInputEl.value.trim() === "") chatInputEl.value = current.text;
    promptForInput();
    setChatStatus(state, text);
  }
  function chatCancel() {
    if (!chatRun) return;
    var id = chatRun.id;
    abandon(id);
    sendCancel(id);
    chatFailed("cancelled", "cancelled");
  }

  // ---- Compare

  function compareColumn(index, model) {
    var column = document.createElement("article");
    column.className = "column";
    column.dataset.model = model;
    column.dataset.state = "waiting";
    var title = document.createElement("h3");
    title.textContent = model;
    var stats = document.createElement("p");
    stats.className = "stats";
    stats.id = "compare-stats-" + index;
    stats.textContent = "waiting for the first token\u2026";
    var answer = document.createElement("pre");
    answer.className = "answer";
    answer.id = "compare-answer-" + index;
    answer.tabIndex = 0;
    column.append(title, stats, answer);
    return { element: column, stats: stats, answer: answer, first: null };
  }
  function formatStats(entry) {
    if (typeof entry.error === "string") return "error: " + entry.error;
    var parts = [];
    if (typeof entry.ttft_ms === "number") parts.push("first token " + Math.round(entry.ttft_ms) + " ms");
    if (typeof entry.tokens_per_second === "number") {
      parts.push(entry.tokens_per_second.toFixed(1) + " tokens/s");
    }
    var tokens = entry.usage && entry.usage.completion_tokens;
    if (typeof tokens === "number") parts.push(tokens + " tokens");
    parts.push(Math.round(entry.total_ms) + " ms in all");
    return parts.join(" \u00b7 ");
  }

  function compare() {
    if (!ready || compareRun) return;
    var models = compareModels();
    var unique = models.filter(function (m, i) { return models.indexOf(m) === i; });
    if (unique.length !== models.length) {
      showError("Pick each model once: " + models.join(", ") + ".");
      return;
    }
    clearError();
    var args = { models: models, prompt: comparePromptEl.value };
    var max = compareMaxEl.value.trim();
    if (max !== "") args.options = { max_tokens: Number(max) };
    var id = nextId++;
    var columns = {};
    var elements = models.map(function (model, i) {
      columns[model] = compareColumn(i + 1, model);
      return columns[model].element;
    });
    compareResultsEl.dataset.count = String(models.length);
    compareResultsEl.replaceChildren.apply(compareResultsEl, elements);
    var current = { id: id, token: "compare-" + id, started: performance.now(), columns: columns,
      models: models };
    compareRun = current;
    setCompareStatus("generating", "generating\u2026");
    request("tools/call", {
      name: "ai_compare",
      arguments: args,
      _meta: { progressToken: current.token },
    }, id).then(function (result) {
      if (compareRun !== current) return;
      compareRun = null;
      var results = result.structuredContent && result.structuredContent.results;
      if (!Array.isArray(results)) {
        showError(textOf(result) || "The comparison failed.");
        compareEnded("failed", "failed", current);
        return;
      }
      results.forEach(function (entry, i) {
        var column = columns[models[i]];
        if (!column) return;
        if (typeof entry.response === "string") column.answer.textContent = entry.response;
        column.stats.textContent = formatStats(entry);
        column.element.dataset.state = typeof entry.error === "string" ? "failed" : "done";
      });
      if (result.isError) {
        setCompareStatus("failed", "failed: every model failed");
      } else {
        setCompareStatus("done", "done (" + Math.round(performance.now() - current.started) +
          " ms)");
      }
    }, function (error) {
      if (compareRun !== current || error instanceof Cancelled) return;
      compareRun = null;
      showError(error.message);
      compareEnded("failed", "failed", current);
    });
  }
  function compareProgress(params) {
    var model = params._meta && params._meta.model;
    var column = compareRun.columns[model];
    if (!column || typeof params.message !== "string" || params.message === "") return;
    if (column.first === null) {
      column.first = performance.now() - compareRun.started;
      column.element.dataset.state = "streaming";
      column.stats.textContent = "first token after " + Math.round(column.first) +
        " ms \u00b7 streaming\u2026";
    }
    append(column.answer, params.message);
  }
  // Marks the columns still open with state (the comparison was cancelled or failed).
  function compareEnded(state, text, current) {
    current = current || compareRun;
    if (compareRun === current) compareRun = null;
    Object.keys(current.columns).forEach(function (model) {
      var column = current.columns[model];
      if (column.element.dataset.state === "done" || column.element.dataset.state === "failed") {
        return;
      }
      column.element.dataset.state = state;
      column.stats.textContent = state;
    });
    setCompareStatus(state, text);
  }
  function compareCancel() {
    if (!compareRun) return;
    var id = compareRun.id;
    abandon(id);
    sendCancel(id);
    compareEnded("cancelled", "cancelled");
  }

  // ---- Views

  function showView(name) {
    view = name;
    VIEWS.forEach(function (other) {
      var tab = el("tab-" + other);
      tab.setAttribute("aria-selected", String(other === name));
      tab.tabIndex = other === name ? 0 : -1;
      el("view-" + other).hidden = other !== name;
    });
  }
  VIEWS.forEach(function (name, i) {
    var tab = el("tab-" + name);
    tab.addEventListener("click", function () { showView(name); });
    tab.addEventListener("keydown", function (event) {
      var step = event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0;
      if (step === 0) return;
      var next = VIEWS[(i + step + VIEWS.length) % VIEWS.length];
      showView(next);
      el("tab-" + next).focus();
    });
  });

  el("connection").addEventListener("submit", function (event) {
    event.preventDefault();
    connect();
  });
  el("run").addEventListener("submit", function (event) {
    event.preventDefault();
    generate();
  });
  el("chat-form").addEventListener("submit", function (event) {
    event.preventDefault();
    chatSend();
  });
  el("compare-form").addEventListener("submit", function (event) {
    event.preventDefault();
    compare();
  });
  cancelEl.addEventListener("click", cancel);
  chatCancelEl.addEventListener("click", chatCancel);
  compareCancelEl.addEventListener("click", compareCancel);
  chatNewEl.addEventListener("click", newChat);
  thinkingBox.querySelector("summary").addEventListener("click", function () {
    if (run) run.toggled = true;
  });
  refreshEl.addEventListener("click", function () {
    if (ready) {
      loadModels();
      loadRouterModels();
    }
  });
  modelEl.addEventListener("change", updateButtons);
  chatModelEl.addEventListener("change", updateButtons);
  comparePickers.forEach(function (picker) { picker.addEventListener("change", updateButtons); });
  [[promptEl, generate], [chatInputEl, chatSend], [comparePromptEl, compare]].forEach(
    function (pair) {
      pair[0].addEventListener("keydown", function (event) {
        if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
          event.preventDefault();
          pair[1]();
        }
      });
    },
  );
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    if (view === "generate" && run) cancel();
    else if (view === "chat" && chatRun) chatCancel();
    else if (view === "compare" && compareRun) compareCancel();
  });
  window.addEventListener("hashchange", function () {
    var token = tokenFromFragment();
    if (token !== null) {
      tokenEl.value = token;
      connect();
    }
  });

  var initial = tokenFromFragment();
  if (initial !== null) tokenEl.value = initial;
  promptForInput();
  connect();
})();
`;

const ASSETS: Record<string, { body: string; type: string }> = {
  "/": { body: PLAYGROUND_HTML, type: "text/html; charset=utf-8" },
  "/playground.css": { body: PLAYGROUND_CSS, type: "text/css; charset=utf-8" },
  "/playground.js": { body: PLAYGROUND_JS, type: "text/javascript; charset=utf-8" },
};

/** The playground's response for `GET pathname`, or undefined when it is not one of its paths. */
export function playgroundResponse(pathname: string): Response | undefined {
  const asset = ASSETS[pathname];
  if (!asset) return undefined;
  return new Response(asset.body, {
    headers: { "content-type": asset.type, ...PLAYGROUND_HEADERS },
  });
}
