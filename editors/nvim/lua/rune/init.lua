-- Rune for Neovim: local and cloud language models from the editor, through
-- the Rune MCP daemon (`rune serve --stdio`, started on first use).
--
--   require("rune").setup({ cmd = { "rune", "serve", "--stdio" }, model = "llama3.2" })
--
-- Commands (see :help rune): :Rune models, :Rune generate {prompt} (or a
-- visual selection), :Rune chat [model], :Rune compare {model} {model}...,
-- :Rune cancel, :Rune model [name]. Output goes to scratch buffers that
-- fill as tokens arrive.

local client_mod = require("rune.client")
local ui = require("rune.ui")

local M = {}

--- Defaults of setup().
M.defaults = {
  -- The daemon, spoken to over stdio.
  cmd = { "rune", "serve", "--stdio" },
  -- Environment of the daemon (nil: Neovim's own).
  env = nil,
  -- The model for generate and chat, as provider/model (a bare name means
  -- Ollama); nil means $RUNE_MODEL.
  model = nil,
  -- System prompt for generate, chat and compare.
  system = nil,
  -- Where output opens: "vsplit", "split" or "tab" (compare always opens a tab).
  open = "vsplit",
  -- Longest message read from the daemon, in bytes (the daemon's own limit is 32 MiB).
  max_line_bytes = 32 * 1024 * 1024,
  -- Most requests waiting for an answer at once.
  max_in_flight = 16,
  -- Chat buffer mappings (normal mode).
  keymaps = { send = "<CR>", cancel = "<C-c>" },
}

local config = vim.deepcopy(M.defaults)
local client = nil
-- Requests the user can cancel: id -> { kind, cancelled = fn }.
local running = {}
-- Model names from the last listing, for completion.
local known_models = {}

--- Shows an error (or a message at `level`) with vim.notify.
function M.notify(message, level)
  vim.notify("Rune: " .. message, level or vim.log.levels.ERROR)
end

--- Configures the plugin; may be called again (a new cmd, env or limit restarts the daemon).
function M.setup(opts)
  local previous = config
  config = vim.tbl_deep_extend("force", vim.deepcopy(M.defaults), opts or {})
  local changed = false
  for _, key in ipairs({ "cmd", "env", "max_line_bytes", "max_in_flight" }) do
    changed = changed or not vim.deep_equal(previous[key], config[key])
  end
  if client and changed then
    client:stop()
    client = nil
  end
end

--- The current configuration.
function M.config()
  return config
end

--- The MCP client (started on first request).
function M.client()
  if not client then
    client = client_mod.new({
      cmd = config.cmd,
      env = config.env,
      max_line_bytes = config.max_line_bytes,
      max_in_flight = config.max_in_flight,
    })
  end
  return client
end

--- The model for generate and chat: setup's, else $RUNE_MODEL.
function M.model()
  local model = config.model or vim.env.RUNE_MODEL
  if model == nil or model == "" then
    return nil
  end
  return model
end

--- Number of requests running (that :Rune cancel would cancel).
function M.running()
  return vim.tbl_count(running)
end

--- The text of a tool result's text content.
function M.result_text(result)
  local parts = {}
  for _, item in ipairs(type(result.content) == "table" and result.content or {}) do
    if type(item) == "table" and item.type == "text" and type(item.text) == "string" then
      table.insert(parts, item.text)
    end
  end
  return table.concat(parts, "\n")
end

--- Calls an MCP tool, tracked for :Rune cancel. handlers as in
--- client:request, plus cancelled() (called by :Rune cancel). Each handler
--- is called at most once overall, then `User RuneDone` fires.
function M.call_tool(kind, name, arguments, handlers)
  local id
  local function finish(fn)
    return function(...)
      if id then
        running[id] = nil
      end
      if fn then
        fn(...)
      end
      ui.emit("RuneDone")
    end
  end
  local request_handlers = {
    on_result = finish(handlers.on_result),
    on_error = finish(handlers.on_error),
  }
  if handlers.on_progress then
    request_handlers.on_progress = function(params)
      handlers.on_progress(params)
      ui.emit("RuneProgress")
    end
  end
  id = M.client():request("tools/call", { name = name, arguments = arguments }, request_handlers)
  if id then
    running[id] = { kind = kind, cancelled = finish(handlers.cancelled) }
  end
  return id
end

--- Cancels request `id` (or every running request when nil); returns how many.
function M.cancel(id)
  local ids = id and { id } or vim.tbl_keys(running)
  local count = 0
  for _, each in ipairs(ids) do
    local entry = running[each]
    if entry and client and client:cancel(each) then
      count = count + 1
      entry.cancelled()
    end
  end
  return count
end

--- Stops the daemon (it is started again on the next command).
function M.stop()
  if client then
    client:stop()
    client = nil
  end
end

--- Lists the models of every provider in a scratch buffer.
function M.models()
  local buf = ui.scratch("models", nil, {})
  ui.set_lines(buf, { "Listing models…" })
  ui.set_state(buf, "waiting")
  ui.open(buf, config.open)
  M.call_tool("models", "ai_list_models", vim.empty_dict(), {
    on_result = function(result)
      local s = type(result.structuredContent) == "table" and result.structuredContent or {}
      local lines = {}
      known_models = {}
      for _, m in ipairs(type(s.models) == "table" and s.models or {}) do
        table.insert(known_models, m.name)
        local details = {}
        for _, field in ipairs({ m.parameter_size, m.quantization }) do
          if type(field) == "string" then
            table.insert(details, field)
          end
        end
        if m.loaded == true then
          table.insert(details, "(loaded)")
        end
        table.insert(details, 1, m.name)
        table.insert(lines, table.concat(details, "  "))
      end
      for _, e in ipairs(type(s.errors) == "table" and s.errors or {}) do
        table.insert(lines, string.format("%s: %s", e.provider, e.error))
      end
      if result.isError == true and #lines == 0 then
        lines = ui.lines(M.result_text(result))
      end
      ui.set_lines(buf, #lines > 0 and lines or { "No models." })
      ui.set_state(buf, result.isError == true and "failed" or "done")
      if result.isError == true then
        M.notify(M.result_text(result))
      end
    end,
    on_error = function(message)
      ui.set_lines(buf, ui.lines(message))
      ui.set_state(buf, "failed")
      M.notify(message)
    end,
    cancelled = function()
      ui.set_state(buf, "cancelled")
    end,
  })
  return buf
end

--- Model names from the last listing (for completion).
function M.known_models()
  return known_models
end

--- Streams a completion of `prompt` into a scratch buffer; returns it.
--- opts.model overrides the configured model.
function M.generate(prompt, opts)
  opts = opts or {}
  local model = opts.model or M.model()
  if not model then
    M.notify('No model: set model in require("rune").setup(), $RUNE_MODEL, or run :Rune model NAME.')
    return nil
  end
  if prompt == nil or prompt == "" then
    M.notify("No prompt: :Rune generate PROMPT, or select text and run :'<,'>Rune generate.")
    return nil
  end
  local buf = ui.scratch("generate", model, { filetype = "markdown" })
  ui.set_state(buf, "waiting")
  ui.open(buf, config.open)
  local streamed = {}
  local arguments = { model = model, prompt = prompt }
  if config.system then
    arguments.system = config.system
  end
  local id = M.call_tool("generate", "ai_generate", arguments, {
    on_progress = function(params)
      if type(params.message) == "string" and params.message ~= "" then
        table.insert(streamed, params.message)
        ui.append(buf, params.message)
        ui.set_state(buf, "streaming")
      end
    end,
    on_result = function(result)
      if result.isError == true then
        ui.set_state(buf, "failed")
        M.notify(M.result_text(result))
        return
      end
      local s = type(result.structuredContent) == "table" and result.structuredContent or {}
      -- The result is the reference: a progress notification lost on the way does not show.
      if type(s.response) == "string" and s.response ~= table.concat(streamed) then
        ui.set_lines(buf, ui.lines(s.response))
      end
      ui.set_state(buf, "done")
    end,
    on_error = function(message)
      ui.set_state(buf, "failed")
      M.notify(message)
    end,
    cancelled = function()
      ui.set_state(buf, "cancelled")
    end,
  })
  if id then
    vim.b[buf].rune_request = id
    -- Closing the output stops the generation.
    ui.on_wipe(buf, function()
      M.cancel(id)
    end)
  else
    ui.set_state(buf, "failed")
  end
  return buf
end

--- The text of the visual selection (when the command got the range of
--- the last one), or of lines line1..line2.
function M.selection(line1, line2)
  local start, stop = vim.fn.getpos("'<"), vim.fn.getpos("'>")
  local lines = vim.api.nvim_buf_get_lines(0, line1 - 1, line2, false)
  if vim.fn.visualmode() == "v" and start[2] == line1 and stop[2] == line2 and #lines > 0 then
    -- Characterwise: cut the first and last lines at the selection's columns.
    local last = lines[#lines]
    local stop_col = math.min(stop[3], #last)
    -- The mark is on the last character's first byte: take its continuation bytes too.
    while stop_col < #last and last:byte(stop_col + 1) >= 0x80 and last:byte(stop_col + 1) < 0xC0 do
      stop_col = stop_col + 1
    end
    lines[#lines] = last:sub(1, stop_col)
    lines[1] = lines[1]:sub(start[3])
  end
  return table.concat(lines, "\n")
end

--- Sets or shows the model for generate and chat.
function M.set_model(name)
  if name and name ~= "" then
    config.model = name
  end
  local model = M.model()
  M.notify("model: " .. (model or "none (set one with :Rune model NAME)"), vim.log.levels.INFO)
end

local SUBCOMMANDS = { "models", "generate", "chat", "send", "compare", "cancel", "model", "stop" }

--- Runs `:Rune ARGS` (opts as nvim_create_user_command passes them).
function M.command(opts)
  local sub, rest = (opts.args or ""):match("^%s*(%S*)%s*(.-)%s*$")
  local selection = opts.range and opts.range > 0 and M.selection(opts.line1, opts.line2) or nil
  if sub == "models" then
    M.models()
  elseif sub == "generate" then
    local prompt = rest
    if selection then
      prompt = rest ~= "" and (rest .. "\n\n" .. selection) or selection
    elseif prompt == "" then
      prompt = vim.fn.input("Prompt: ")
    end
    M.generate(prompt)
  elseif sub == "chat" then
    require("rune.chat").open({ model = rest ~= "" and rest or nil, text = selection })
  elseif sub == "send" then
    require("rune.chat").send()
  elseif sub == "compare" then
    -- Models, then optionally "--" and the prompt.
    local models, prompt = {}, nil
    for word, stop in rest:gmatch("(%S+)()") do
      if word == "--" then
        prompt = vim.trim(rest:sub(stop))
        break
      end
      table.insert(models, word)
    end
    if selection then
      prompt = (prompt and prompt ~= "") and (prompt .. "\n\n" .. selection) or selection
    elseif not prompt or prompt == "" then
      prompt = vim.fn.input("Prompt: ")
    end
    require("rune.compare").run(models, prompt)
  elseif sub == "cancel" then
    local count = M.cancel()
    M.notify(count == 0 and "nothing to cancel" or string.format("cancelled %d request(s)", count), vim.log.levels.INFO)
  elseif sub == "model" then
    M.set_model(rest)
  elseif sub == "stop" then
    M.stop()
  else
    M.notify(string.format('unknown command "%s": use one of %s', sub, table.concat(SUBCOMMANDS, ", ")))
  end
end

--- Completion of :Rune arguments.
function M.complete(arglead, cmdline)
  local words = {}
  for word in cmdline:gmatch("%S+") do
    table.insert(words, word)
  end
  local typing_first = #words == 1 or (#words == 2 and arglead ~= "")
  local candidates = typing_first and SUBCOMMANDS or {}
  local sub = words[2]
  if not typing_first and (sub == "compare" or sub == "chat" or sub == "model") then
    candidates = known_models
    if #known_models == 0 then
      -- Fill the list for the next <Tab>, without waiting.
      M.call_tool("models", "ai_list_models", vim.empty_dict(), {
        on_result = function(result)
          local s = type(result.structuredContent) == "table" and result.structuredContent or {}
          known_models = {}
          for _, m in ipairs(type(s.models) == "table" and s.models or {}) do
            table.insert(known_models, m.name)
          end
        end,
        on_error = function() end,
        cancelled = function() end,
      })
    end
  end
  return vim.tbl_filter(function(c)
    return c:sub(1, #arglead) == arglead
  end, candidates)
end

return M
