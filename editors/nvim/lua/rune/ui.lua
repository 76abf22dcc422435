-- Buffers and windows of the plugin: scratch buffers (buftype=nofile) that
-- fill as text streams in, the windows that show them, and the User
-- autocommands other code (and the tests) can wait on.

local M = {}

local counter = 0

--- Creates an unlisted scratch buffer named rune://KIND/N[/SUFFIX].
--- opts.modifiable (default false: only the plugin writes), opts.filetype,
--- opts.bufhidden (default "wipe").
function M.scratch(kind, suffix, opts)
  opts = opts or {}
  counter = counter + 1
  local buf = vim.api.nvim_create_buf(false, true)
  vim.bo[buf].buftype = "nofile"
  vim.bo[buf].bufhidden = opts.bufhidden or "wipe"
  vim.bo[buf].swapfile = false
  if opts.filetype then
    vim.bo[buf].filetype = opts.filetype
  end
  local name = "rune://" .. kind .. "/" .. counter .. (suffix and ("/" .. suffix) or "")
  pcall(vim.api.nvim_buf_set_name, buf, name)
  vim.bo[buf].modifiable = opts.modifiable == true
  return buf
end

--- Runs fn with `buf` modifiable, restoring the option after.
local function writing(buf, fn)
  local was = vim.bo[buf].modifiable
  vim.bo[buf].modifiable = true
  local ok, err = pcall(fn)
  vim.bo[buf].modifiable = was
  if not ok then
    error(err)
  end
end

--- Replaces every line of `buf`.
function M.set_lines(buf, lines)
  if not vim.api.nvim_buf_is_valid(buf) then
    return
  end
  writing(buf, function()
    vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  end)
end

--- Splits text into buffer lines (a buffer line holds no newline; CR is dropped).
function M.lines(text)
  return vim.split((text:gsub("\r", "")), "\n", { plain = true })
end

--- Appends text at the end of `buf` (continuing its last line); windows
--- whose cursor was on the last line follow the text.
function M.append(buf, text)
  if text == "" or not vim.api.nvim_buf_is_valid(buf) then
    return
  end
  local last = vim.api.nvim_buf_line_count(buf)
  local following = {}
  for _, win in ipairs(vim.api.nvim_list_wins()) do
    if vim.api.nvim_win_get_buf(win) == buf and vim.api.nvim_win_get_cursor(win)[1] == last then
      table.insert(following, win)
    end
  end
  local lines = M.lines(text)
  local tail = vim.api.nvim_buf_get_lines(buf, last - 1, last, false)[1] or ""
  lines[1] = tail .. lines[1]
  writing(buf, function()
    vim.api.nvim_buf_set_lines(buf, last - 1, last, false, lines)
  end)
  local now = vim.api.nvim_buf_line_count(buf)
  for _, win in ipairs(following) do
    pcall(vim.api.nvim_win_set_cursor, win, { now, 0 })
  end
end

--- The whole text of `buf` (lines joined with newlines).
function M.text(buf)
  return table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), "\n")
end

--- Shows `buf` in a new window: how = "split", "vsplit" or "tab". Returns the window.
function M.open(buf, how)
  if how == "tab" then
    vim.cmd("tabnew")
  elseif how == "split" then
    vim.cmd("belowright split")
  else
    vim.cmd("belowright vsplit")
  end
  local win = vim.api.nvim_get_current_win()
  vim.api.nvim_win_set_buf(win, buf)
  return win
end

--- Sets b:rune_state of `buf` ("waiting", "streaming", "done", "cancelled", "failed").
function M.set_state(buf, state)
  if vim.api.nvim_buf_is_valid(buf) then
    vim.api.nvim_buf_set_var(buf, "rune_state", state)
  end
end

--- Fires `User {pattern}` (RuneProgress: text arrived; RuneDone: a request ended).
function M.emit(pattern)
  vim.api.nvim_exec_autocmds("User", { pattern = pattern, modeline = false })
end

--- Calls fn once `buf` has been wiped out (its window closed, for scratch buffers).
function M.on_wipe(buf, fn)
  vim.api.nvim_create_autocmd("BufWipeout", {
    buffer = buf,
    once = true,
    callback = function()
      -- After the wipe: fn must not touch a buffer that is going away.
      vim.schedule(fn)
    end,
  })
end

return M
