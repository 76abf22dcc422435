-- :Rune chat: a chat buffer with history. The user writes under the last
-- "## You" header and sends with <CR> (normal mode) or :Rune send; the
-- reply streams in under a "## MODEL" header, then a new "## You" header
-- waits for the next turn. The history sent to the model is kept here,
-- not parsed back from the buffer, so editing earlier turns changes only
-- the view.

local core = require("rune")
local ui = require("rune.ui")

local M = {}

local ns = vim.api.nvim_create_namespace("rune_chat")
local YOU = "## You"

-- buf -> { buf, model, history, input_mark, reply_mark, request }
local chats = {}

local function mark_pos(chat, mark)
  local pos = vim.api.nvim_buf_get_extmark_by_id(chat.buf, ns, mark, {})
  return pos[1], pos[2]
end

-- Inserts text at the reply mark; the mark moves past it (right gravity).
local function insert_at_reply(chat, text)
  if text == "" or not vim.api.nvim_buf_is_valid(chat.buf) then
    return
  end
  local row, col = mark_pos(chat, chat.reply_mark)
  vim.api.nvim_buf_set_text(chat.buf, row, col, row, col, ui.lines(text))
end

-- Windows showing the chat put the cursor on its last line.
local function follow(chat)
  local last = vim.api.nvim_buf_line_count(chat.buf)
  for _, win in ipairs(vim.api.nvim_list_wins()) do
    if vim.api.nvim_win_get_buf(win) == chat.buf then
      pcall(vim.api.nvim_win_set_cursor, win, { last, 0 })
    end
  end
end

-- After a reply (or a failed one): a new "## You" header, its input prefilled with `text`.
local function next_turn(chat, text)
  local lines = { "", "", YOU }
  vim.list_extend(lines, ui.lines(text or ""))
  insert_at_reply(chat, table.concat(lines, "\n"))
  local row = mark_pos(chat, chat.reply_mark)
  local header = row - #ui.lines(text or "")
  vim.api.nvim_buf_del_extmark(chat.buf, ns, chat.input_mark)
  chat.input_mark = vim.api.nvim_buf_set_extmark(chat.buf, ns, header, 0, {})
  vim.api.nvim_buf_del_extmark(chat.buf, ns, chat.reply_mark)
  chat.reply_mark = nil
  chat.request = nil
  ui.set_state(chat.buf, "idle")
  follow(chat)
end

--- Opens a new chat buffer. opts.model (default: the configured model),
--- opts.text (put in the first input, e.g. a visual selection).
function M.open(opts)
  opts = opts or {}
  local model = opts.model or core.model()
  if not model then
    core.notify('No model: :Rune chat MODEL, or set model in require("rune").setup() or $RUNE_MODEL.')
    return nil
  end
  local config = core.config()
  local buf = ui.scratch("chat", model, { modifiable = true, filetype = "markdown", bufhidden = "hide" })
  local lines = { "# Chat with " .. model, "", YOU }
  vim.list_extend(lines, ui.lines(opts.text or ""))
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  local chat = {
    buf = buf,
    model = model,
    history = {},
    input_mark = vim.api.nvim_buf_set_extmark(buf, ns, 2, 0, {}),
  }
  if config.system then
    table.insert(chat.history, { role = "system", content = config.system })
  end
  chats[buf] = chat
  vim.b[buf].rune_model = model
  ui.set_state(buf, "idle")
  local keymaps = config.keymaps or {}
  if keymaps.send then
    vim.keymap.set("n", keymaps.send, function()
      M.send(buf)
    end, { buffer = buf, desc = "Rune: send this chat turn" })
  end
  if keymaps.cancel then
    vim.keymap.set("n", keymaps.cancel, function()
      if chat.request then
        core.cancel(chat.request)
      end
    end, { buffer = buf, desc = "Rune: stop the reply" })
  end
  vim.api.nvim_create_autocmd("BufWipeout", {
    buffer = buf,
    once = true,
    callback = function()
      if chat.request then
        core.cancel(chat.request)
      end
      chats[buf] = nil
    end,
  })
  ui.open(buf, config.open)
  follow(chat)
  return buf
end

--- The history of the chat in `buf` (messages sent so far, with replies).
function M.history(buf)
  local chat = chats[buf or vim.api.nvim_get_current_buf()]
  return chat and chat.history or nil
end

--- Sends what is written under the last "## You" header of the chat in
--- `buf` (default: the current buffer).
function M.send(buf)
  buf = buf or vim.api.nvim_get_current_buf()
  local chat = chats[buf]
  if not chat then
    core.notify("This is not a Rune chat buffer: open one with :Rune chat.")
    return nil
  end
  if chat.request then
    core.notify("A reply is still coming: wait for it, or stop it with :Rune cancel.")
    return nil
  end
  local header = mark_pos(chat, chat.input_mark)
  local text = vim.trim(table.concat(vim.api.nvim_buf_get_lines(buf, header + 1, -1, false), "\n"))
  if text == "" then
    core.notify('Write your message under the last "## You", then send it with <CR> or :Rune send.')
    return nil
  end
  local turn = ui.lines(text)
  vim.list_extend(turn, { "", "## " .. chat.model, "" })
  vim.api.nvim_buf_set_lines(buf, header + 1, -1, false, turn)
  chat.reply_mark = vim.api.nvim_buf_set_extmark(buf, ns, vim.api.nvim_buf_line_count(buf) - 1, 0, {})
  table.insert(chat.history, { role = "user", content = text })
  ui.set_state(buf, "waiting")
  follow(chat)
  local streamed = {}
  local function failed(note)
    table.remove(chat.history)
    insert_at_reply(chat, (#streamed > 0 and "\n" or "") .. note)
    -- The message comes back as the next input, to send again or edit.
    next_turn(chat, text)
  end
  chat.request = core.call_tool("chat", "ai_chat", {
    model = chat.model,
    messages = vim.deepcopy(chat.history),
  }, {
    on_progress = function(params)
      if type(params.message) == "string" and params.message ~= "" then
        table.insert(streamed, params.message)
        insert_at_reply(chat, params.message)
        ui.set_state(buf, "streaming")
        follow(chat)
      end
    end,
    on_result = function(result)
      if not vim.api.nvim_buf_is_valid(buf) then
        return
      end
      if result.isError == true then
        local message = core.result_text(result)
        core.notify(message)
        failed("[error: " .. message .. "]")
        return
      end
      local s = type(result.structuredContent) == "table" and result.structuredContent or {}
      local message = type(s.message) == "table" and s.message or {}
      local content = type(message.content) == "string" and message.content or table.concat(streamed)
      if #streamed == 0 then
        insert_at_reply(chat, content)
      end
      table.insert(chat.history, { role = "assistant", content = content })
      next_turn(chat)
    end,
    on_error = function(message)
      core.notify(message)
      if vim.api.nvim_buf_is_valid(buf) then
        failed("[error: " .. message .. "]")
      end
    end,
    cancelled = function()
      if vim.api.nvim_buf_is_valid(buf) then
        failed("[cancelled]")
      end
    end,
  })
  if not chat.request then
    -- Not sent (the daemon could not start): on_error has already put the turn back.
    return nil
  end
  return chat.request
end

return M
