-- :Rune compare {model} {model}...: one prompt to 2 to 8 models at once
-- (the daemon's ai_compare tool), each answer streaming into its own
-- vertical split of a new tab page, from the progress notifications tagged
-- with _meta.model. When all are done, each split ends with a summary line:
-- time to first token, total time, tokens per second and tokens, or the
-- model's error.

local core = require("rune")
local ui = require("rune.ui")

local M = {}

--- Fewest and most models one comparison takes (the ai_compare tool's bounds).
M.MIN_MODELS, M.MAX_MODELS = 2, 8

local function ms(value)
  return type(value) == "number" and string.format("%d ms", math.floor(value + 0.5)) or "-"
end

--- The summary line of one result entry.
function M.summary(entry)
  if type(entry.error) == "string" then
    return "-- error: " .. entry.error
  end
  local parts = { "ttft " .. ms(entry.ttft_ms), "total " .. ms(entry.total_ms) }
  if type(entry.tokens_per_second) == "number" then
    table.insert(parts, string.format("%.1f tokens/s", entry.tokens_per_second))
  end
  local usage = type(entry.usage) == "table" and entry.usage or {}
  if type(usage.completion_tokens) == "number" then
    table.insert(parts, string.format("%d tokens", usage.completion_tokens))
  end
  return "-- " .. table.concat(parts, ", ")
end

--- Compares `models` on `prompt`; returns the buffers, one per model, in order.
function M.run(models, prompt)
  if #models < M.MIN_MODELS or #models > M.MAX_MODELS then
    core.notify(string.format(
      "compare takes %d to %d models, got %d: :Rune compare MODEL MODEL [...] [-- PROMPT]",
      M.MIN_MODELS,
      M.MAX_MODELS,
      #models
    ))
    return nil
  end
  local index = {}
  for i, model in ipairs(models) do
    if index[model] then
      core.notify(string.format('"%s" is named twice: compare each model once.', model))
      return nil
    end
    index[model] = i
  end
  if prompt == nil or prompt == "" then
    core.notify("No prompt: select text and run :'<,'>Rune compare A B, or :Rune compare A B -- PROMPT.")
    return nil
  end

  local buffers, streamed = {}, {}
  for i, model in ipairs(models) do
    local buf = ui.scratch("compare", model, { filetype = "markdown" })
    ui.set_lines(buf, { "# " .. model, "" })
    ui.set_state(buf, "waiting")
    vim.b[buf].rune_model = model
    buffers[i], streamed[i] = buf, {}
    if i == 1 then
      vim.cmd("tab sbuffer " .. buf)
    else
      vim.cmd("rightbelow vertical sbuffer " .. buf)
    end
  end
  vim.cmd("wincmd =")

  local function each(fn)
    for i, buf in ipairs(buffers) do
      if vim.api.nvim_buf_is_valid(buf) then
        fn(i, buf)
      end
    end
  end
  local arguments = { models = models, prompt = prompt }
  if core.config().system then
    arguments.system = core.config().system
  end
  local id = core.call_tool("compare", "ai_compare", arguments, {
    on_progress = function(params)
      local model = type(params._meta) == "table" and params._meta.model or nil
      local i = index[model]
      if i and type(params.message) == "string" and params.message ~= "" then
        table.insert(streamed[i], params.message)
        ui.append(buffers[i], params.message)
        ui.set_state(buffers[i], "streaming")
      end
    end,
    on_result = function(result)
      local s = type(result.structuredContent) == "table" and result.structuredContent or {}
      local results = type(s.results) == "table" and s.results or nil
      if not results then
        local message = core.result_text(result)
        core.notify(message)
        each(function(_, buf)
          ui.append(buf, "\n-- error: " .. message)
          ui.set_state(buf, "failed")
        end)
        return
      end
      each(function(i, buf)
        local entry = results[i] or {}
        local text = table.concat(streamed[i])
        -- The result is the reference: a progress notification lost on the way does not show.
        if type(entry.response) == "string" and entry.response ~= text then
          local lines = { "# " .. models[i], "" }
          vim.list_extend(lines, ui.lines(entry.response))
          ui.set_lines(buf, lines)
          text = entry.response
        end
        ui.append(buf, (text ~= "" and "\n\n" or "") .. M.summary(entry))
        ui.set_state(buf, type(entry.error) == "string" and "failed" or "done")
      end)
      if result.isError == true then
        core.notify("every model failed: " .. core.result_text(result))
      end
    end,
    on_error = function(message)
      core.notify(message)
      each(function(_, buf)
        ui.append(buf, "\n-- error: " .. message)
        ui.set_state(buf, "failed")
      end)
    end,
    cancelled = function()
      each(function(i, buf)
        ui.append(buf, (#streamed[i] > 0 and "\n\n" or "") .. "-- cancelled")
        ui.set_state(buf, "cancelled")
      end)
    end,
  })
  if id then
    for _, buf in ipairs(buffers) do
      vim.b[buf].rune_request = id
      -- Closing any of the splits stops the whole comparison.
      ui.on_wipe(buf, function()
        core.cancel(id)
      end)
    end
  end
  return buffers
end

return M
