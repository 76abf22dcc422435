-- Defines :Rune; the plugin itself loads on first use (require("rune")).
if vim.g.loaded_rune then
  return
end
vim.g.loaded_rune = true

if vim.fn.has("nvim-0.7") == 0 then
  vim.notify("Rune: Neovim 0.7 or later is needed.", vim.log.levels.ERROR)
  return
end

vim.api.nvim_create_user_command("Rune", function(opts)
  require("rune").command(opts)
end, {
  nargs = "*",
  range = true,
  desc = "Rune: models, generate, chat, compare, cancel (see :help rune)",
  complete = function(arglead, cmdline)
    return require("rune").complete(arglead, cmdline)
  end,
})

vim.api.nvim_create_autocmd("VimLeavePre", {
  group = vim.api.nvim_create_augroup("rune", { clear = true }),
  callback = function()
    if package.loaded["rune"] then
      require("rune").stop()
    end
  end,
})
