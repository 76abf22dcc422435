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
 * as `#token=...` in the URL), does the `initialize` handshake, lists the
 * models that can generate text with `ai_ollama_list_models` (a model
 * whose `capabilities` lack `completion`, e.g. an embedding model, is left
 * out; a model without capabilities is offered) and streams
 * `ai_ollama_generate` through `notifications/progress`; Cancel sends
 * `notifications/cancelled`. While a thinking model reasons before its
 * answer, the reasoning shows in an open box and the status says
 * "thinking…"; when the answer starts the box folds away. An empty output
 * (cancelled early, or a token limit spent thinking) says why in a note.
 *
 * Stable element ids (used by `tests/transports/playground_test.ts`):
 * `#status` (connection; `data-state` is `connecting`, `connected` or
 * `disconnected`), `#token`, `#connect`, `#model` (`data-loads` counts
 * completed model listings), `#model-hint`, `#refresh`, `#prompt`,
 * `#max-tokens`, `#generate`, `#cancel`, `#run-status` (`data-state` is
 * `idle`, `thinking`, `generating`, `done`, `failed` or `cancelled`),
 * `#output`, `#output-note`, `#thinking-box`, `#thinking` and `#error`.
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

  <p id="error" role="alert" hidden></p>

  <details id="thinking-box" hidden>
    <summary>Thinking</summary>
    <pre id="thinking"></pre>
  </details>
  <h2 id="output-label">Output</h2>
  <p id="output-note" class="hint" role="status" hidden></p>
  <pre id="output" aria-labelledby="output-label" tabindex="0"></pre>
</main>
</body>
</html>
`;

/** The stylesheet served at `GET /playground.css`. */
export const PLAYGROUND_CSS = String
  .raw`:root { color-scheme: light dark; --accent: #4f46e5; --bad: #b91c1c; --muted: #6b7280; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, sans-serif; }
main { max-width: 52rem; margin: 0 auto; padding: 1rem 1.25rem 3rem; }
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

  var socket = null;      // the current WebSocket
  var ready = false;      // initialize handshake done on the current socket
  var nextId = 1;
  var pending = new Map(); // request id -> { resolve, reject }
  // The generation in progress: { id, token, thought, wrote, toggled }: whether thinking and
  // text have arrived, and whether the user opened or closed the thinking box meanwhile.
  var run = null;

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
  function updateButtons() {
    generateEl.disabled = !ready || run !== null || modelEl.value === "";
    cancelEl.disabled = run === null;
    refreshEl.disabled = !ready;
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
        progress(message.params || {});
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
    if (!run || params.progressToken !== run.token) return;
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

  function connect() {
    if (socket) {
      var old = socket;
      socket = null;
      old.onclose = null;
      old.close(1000, "reconnecting");
    }
    ready = false;
    if (run) {
      abandonRun();
      setRun("cancelled", "cancelled (reconnected)");
    }
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
      return loadModels();
    }).catch(function (error) {
      if (socket === ws) showError("MCP handshake failed: " + error.message);
    });
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
        // Only models that can generate text; without capabilities, a model is offered.
        var models = all.filter(function (m) {
          return !Array.isArray(m.capabilities) || m.capabilities.indexOf("completion") !== -1;
        });
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
    var entry = pending.get(run.id);
    pending.delete(run.id);
    run = null;
    if (entry) entry.reject(new Cancelled());
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
    try {
      notify("notifications/cancelled", { requestId: id, reason: "cancelled by the user" });
    } catch (error) {
      showError("Could not send the cancellation: " + error.message);
    }
    setRun("cancelled", "cancelled");
  }

  el("connection").addEventListener("submit", function (event) {
    event.preventDefault();
    connect();
  });
  el("run").addEventListener("submit", function (event) {
    event.preventDefault();
    generate();
  });
  cancelEl.addEventListener("click", cancel);
  thinkingBox.querySelector("summary").addEventListener("click", function () {
    if (run) run.toggled = true;
  });
  refreshEl.addEventListener("click", function () {
    if (ready) loadModels();
  });
  modelEl.addEventListener("change", updateButtons);
  promptEl.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      generate();
    }
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && run) cancel();
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
