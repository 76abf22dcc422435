-- An MCP client over stdio: starts `rune serve --stdio` with jobstart(),
-- speaks newline-delimited JSON-RPC (one message per line), does the
-- `initialize` handshake (protocol 2025-06-18; the server may answer with
-- any 2025 version), routes `notifications/progress` to the request whose
-- progress token they carry, and cancels with `notifications/cancelled`.
--
-- Bounds: a line from the daemon longer than `max_line_bytes` stops the
-- daemon (the stream can no longer be trusted) and fails every request;
-- at most `max_in_flight` requests wait for an answer; the last
-- STDERR_LINES lines of the daemon's stderr are kept for error messages.

local M = {}

--- The protocol version the client asks for.
M.PROTOCOL_VERSION = "2025-06-18"

--- Versions the client accepts in the server's answer.
M.SUPPORTED_VERSIONS = { ["2025-11-25"] = true, ["2025-06-18"] = true, ["2025-03-26"] = true }

--- Lines of the daemon's stderr kept for messages (each cut to STDERR_LINE_BYTES).
local STDERR_LINES = 20
local STDERR_LINE_BYTES = 500

-- vim.json exists from Neovim 0.6; older builds have the Vimscript functions.
local json = vim.json or { encode = vim.fn.json_encode, decode = vim.fn.json_decode }

local Client = {}
Client.__index = Client

--- Creates a client; nothing starts until the first request.
--- opts.cmd (list of strings), opts.env (table or nil), opts.max_line_bytes,
--- opts.max_in_flight.
function M.new(opts)
  return setmetatable({
    opts = opts,
    job = nil,
    ready = false,
    next_id = 1,
    pending = {}, -- id -> { method, handlers, token }
    in_flight = 0,
    queued = {}, -- encoded messages waiting for the handshake
    by_token = {}, -- progress token -> id
    partial = {}, -- pieces of the line being received
    partial_bytes = 0,
    stderr_tail = {},
    protocol_version = nil,
    server_info = nil,
  }, Client)
end

local function nonempty(value)
  return value ~= nil and value ~= vim.NIL
end

--- The last lines the daemon wrote on stderr, for error messages.
function Client:stderr()
  return table.concat(self.stderr_tail, "\n")
end

function Client:_send(message)
  local line = json.encode(message) .. "\n"
  if not self.ready and message.method ~= "initialize" and message.method ~= "notifications/initialized" then
    table.insert(self.queued, { id = message.id, line = line })
    return
  end
  vim.fn.chansend(self.job, line)
end

--- Starts the daemon if it is not running; returns true, or false and why.
function Client:start()
  if self.job then
    return true
  end
  local cmd = self.opts.cmd
  local job_opts = {
    on_stdout = function(_, data)
      self:_on_stdout(data)
    end,
    on_stderr = function(_, data)
      self:_on_stderr(data)
    end,
    on_exit = function(job, code)
      self:_on_exit(job, code)
    end,
  }
  if self.opts.env then
    job_opts.env = self.opts.env
  end
  local ok, job = pcall(vim.fn.jobstart, cmd, job_opts)
  if not ok or job <= 0 then
    local why = not ok and tostring(job) or (job == -1 and "it is not an executable" or "invalid arguments")
    return false, string.format(
      'Cannot start the Rune daemon %s: %s. Install rune ("deno task install" in the Rune checkout) '
        .. 'or set cmd in require("rune").setup().',
      vim.inspect(cmd),
      why
    )
  end
  self.job = job
  self.ready = false
  self.partial, self.partial_bytes = {}, 0
  self.stderr_tail = {}
  self:_handshake()
  return true
end

function Client:_handshake()
  local id = self.next_id
  self.next_id = id + 1
  self.pending[id] = {
    method = "initialize",
    handlers = {
      on_result = function(result)
        local version = result.protocolVersion
        if not M.SUPPORTED_VERSIONS[version] then
          self:_fail_all(string.format(
            "The Rune daemon speaks MCP %s, which this plugin does not: update the plugin.",
            tostring(version)
          ))
          self:stop()
          return
        end
        self.protocol_version = version
        self.server_info = result.serverInfo
        self.ready = true
        self:_send({ jsonrpc = "2.0", method = "notifications/initialized" })
        local queued = self.queued
        self.queued = {}
        for _, item in ipairs(queued) do
          vim.fn.chansend(self.job, item.line)
        end
      end,
      on_error = function(message)
        self:_fail_all("The Rune daemon refused the MCP handshake: " .. message)
        self:stop()
      end,
    },
  }
  self:_send({
    jsonrpc = "2.0",
    id = id,
    method = "initialize",
    params = {
      protocolVersion = M.PROTOCOL_VERSION,
      capabilities = vim.empty_dict(),
      clientInfo = { name = "rune.nvim", title = "Rune for Neovim", version = "0.1.0" },
    },
  })
end

--- Sends a request. handlers: on_result(result), on_error(message),
--- on_progress(params) (asks for progress when given). Returns the request
--- id, or nil when it could not be sent (on_error has been called).
function Client:request(method, params, handlers)
  local ok, why = self:start()
  if not ok then
    handlers.on_error(why)
    return nil
  end
  if self.in_flight >= self.opts.max_in_flight then
    handlers.on_error(string.format(
      "%d Rune requests are already running: wait for one, or :Rune cancel.",
      self.in_flight
    ))
    return nil
  end
  local id = self.next_id
  self.next_id = id + 1
  params = vim.deepcopy(params or vim.empty_dict())
  local token
  if handlers.on_progress then
    token = "rune-nvim-" .. id
    params._meta = { progressToken = token }
    self.by_token[token] = id
  end
  self.pending[id] = { method = method, handlers = handlers, token = token }
  self.in_flight = self.in_flight + 1
  self:_send({ jsonrpc = "2.0", id = id, method = method, params = params })
  return id
end

--- Forgets request `id` and returns its entry.
function Client:_take(id)
  local entry = self.pending[id]
  if not entry then
    return nil
  end
  self.pending[id] = nil
  if entry.method ~= "initialize" then
    self.in_flight = self.in_flight - 1
  end
  if entry.token then
    self.by_token[entry.token] = nil
  end
  return entry
end

--- Cancels request `id` (the daemon aborts its upstream call and sends no
--- answer). Returns true when it was running.
function Client:cancel(id, reason)
  if not self:_take(id) then
    return false
  end
  for i, item in ipairs(self.queued) do
    if item.id == id then
      -- Never sent: nothing to tell the daemon.
      table.remove(self.queued, i)
      return true
    end
  end
  if self.job then
    self:_send({
      jsonrpc = "2.0",
      method = "notifications/cancelled",
      params = { requestId = id, reason = reason or "cancelled by the user" },
    })
  end
  return true
end

--- Stops the daemon (requests still running fail).
function Client:stop()
  if self.job then
    vim.fn.jobstop(self.job)
  end
end

function Client:_fail_all(message)
  local ids = vim.tbl_keys(self.pending)
  table.sort(ids)
  for _, id in ipairs(ids) do
    local entry = self:_take(id)
    -- The handshake's own failure is what `message` reports.
    if entry and entry.method ~= "initialize" then
      entry.handlers.on_error(message)
    end
  end
  self.queued = {}
end

function Client:_on_stdout(data)
  for i, piece in ipairs(data) do
    if i > 1 then
      -- The pieces so far end a line.
      local line = table.concat(self.partial)
      self.partial, self.partial_bytes = {}, 0
      self:_on_line(line)
      if not self.job then
        return
      end
    end
    if piece ~= "" then
      table.insert(self.partial, piece)
      self.partial_bytes = self.partial_bytes + #piece
      if self.partial_bytes > self.opts.max_line_bytes then
        self.partial, self.partial_bytes = {}, 0
        self:_fail_all(string.format(
          "The Rune daemon sent a message longer than %d bytes (max_line_bytes in setup()); it was stopped.",
          self.opts.max_line_bytes
        ))
        self:stop()
        return
      end
    end
  end
end

function Client:_on_stderr(data)
  for i, piece in ipairs(data) do
    -- Each piece after the first starts a line; the tail keeps whole lines only roughly.
    if i > 1 or #self.stderr_tail == 0 then
      table.insert(self.stderr_tail, "")
    end
    local last = #self.stderr_tail
    self.stderr_tail[last] = (self.stderr_tail[last] .. piece):sub(1, STDERR_LINE_BYTES)
    if #self.stderr_tail > STDERR_LINES then
      table.remove(self.stderr_tail, 1)
    end
  end
end

function Client:_on_line(line)
  line = line:gsub("\r$", "")
  if line == "" then
    return
  end
  local ok, message = pcall(json.decode, line)
  if not ok or type(message) ~= "table" then
    vim.notify("Rune: the daemon wrote a line that is not JSON: " .. line:sub(1, 200), vim.log.levels.WARN)
    return
  end
  local method, id = message.method, message.id
  if type(method) == "string" then
    if nonempty(id) then
      -- A request from the daemon: answer pings, refuse the rest.
      if method == "ping" then
        self:_send({ jsonrpc = "2.0", id = id, result = vim.empty_dict() })
      else
        self:_send({
          jsonrpc = "2.0",
          id = id,
          error = { code = -32601, message = "Method not found: " .. method },
        })
      end
    elseif method == "notifications/progress" and type(message.params) == "table" then
      local request = self.by_token[message.params.progressToken]
      local entry = request and self.pending[request]
      if entry and entry.handlers.on_progress then
        entry.handlers.on_progress(message.params)
      end
    end
    return
  end
  if not nonempty(id) then
    return
  end
  -- A reply to a cancelled request (or none of ours) is dropped.
  local entry = self:_take(id)
  if not entry then
    return
  end
  if nonempty(message.error) then
    local err = message.error
    local text = type(err) == "table" and tostring(err.message) or tostring(err)
    entry.handlers.on_error((text:gsub("^MCP error %-?%d+: ", "")))
  else
    entry.handlers.on_result(nonempty(message.result) and message.result or {})
  end
end

function Client:_on_exit(job, code)
  if job ~= self.job then
    return
  end
  self.job = nil
  self.ready = false
  local tail = self:stderr()
  local pending = next(self.pending) ~= nil
  if pending then
    self:_fail_all(string.format(
      "The Rune daemon exited (code %d)%s",
      code,
      tail ~= "" and (":\n" .. tail) or "."
    ))
  end
end

return M
