-- Test harness loaded into `nvim --headless` by tests/clients/nvim_test.ts.
--
-- It reads one JSON request per line on stdin and answers on stdout with a
-- line "@@harness " .. JSON (Neovim writes its own messages to stderr):
--
--   { "id": 1, "lua": "return 1 + 1" }           -> { "id": 1, "ok": true, "value": 2 }
--   { "id": 2, "until": "return cond", "ms": N }  -> { "id": 2, "ok": true } once cond is true,
--        checked now and after every User RuneProgress / RuneDone event; after N ms (a
--        failure bound only) -> { "id": 2, "ok": false, "error": "..." }
--
-- vim.notify is recorded in _G.notes ({ message, level } entries). EOF on
-- stdin quits Neovim.

_G.notes = {}
vim.notify = function(message, level)
  table.insert(_G.notes, { message = message, level = level or vim.log.levels.INFO })
end

local function reply(message)
  local ok, line = pcall(vim.json.encode, message)
  if not ok then
    line = vim.json.encode({ id = message.id, ok = false, error = "the value is not JSON: " .. line })
  end
  io.stdout:write("@@harness " .. line .. "\n")
  io.stdout:flush()
end

local waiters = {}

local function check_waiters()
  for key, waiter in pairs(waiters) do
    local ok, value = pcall(waiter.cond)
    if not ok or value then
      waiters[key] = nil
      waiter.timer:stop()
      waiter.timer:close()
      if ok then
        reply({ id = waiter.id, ok = true })
      else
        reply({ id = waiter.id, ok = false, error = tostring(value) })
      end
    end
  end
end

vim.api.nvim_create_autocmd("User", {
  pattern = { "RuneProgress", "RuneDone" },
  callback = check_waiters,
})

local function run(request)
  if request["until"] then
    local cond, err = loadstring(request["until"])
    if not cond then
      reply({ id = request.id, ok = false, error = err })
      return
    end
    local timer = vim.loop.new_timer()
    local key = {}
    waiters[key] = { id = request.id, cond = cond, timer = timer }
    timer:start(request.ms or 15000, 0, vim.schedule_wrap(function()
      if waiters[key] then
        waiters[key] = nil
        timer:close()
        reply({ id = request.id, ok = false, error = "timed out waiting for: " .. request["until"] })
      end
    end))
    check_waiters()
    return
  end
  local chunk, err = loadstring(request.lua)
  if not chunk then
    reply({ id = request.id, ok = false, error = err })
    return
  end
  local ok, value = pcall(chunk)
  if ok then
    reply({ id = request.id, ok = true, value = value })
  else
    reply({ id = request.id, ok = false, error = tostring(value) })
  end
end

local pending = ""
local stdin = vim.loop.new_pipe(false)
stdin:open(0)
stdin:read_start(function(err, data)
  if err or not data then
    vim.schedule(function()
      vim.cmd("qa!")
    end)
    return
  end
  pending = pending .. data
  while true do
    local newline = pending:find("\n", 1, true)
    if not newline then
      break
    end
    local line = pending:sub(1, newline - 1)
    pending = pending:sub(newline + 1)
    vim.schedule(function()
      run(vim.json.decode(line))
    end)
  end
end)

reply({ id = 0, ok = true, value = "ready" })
