-- infill for Neovim: inline suggestions and rewrites from the `infill serve` language server.
--   require("infill").setup({ cmd = { "infill", "serve" }, settings = { model = "/path/to/model" } })
local M = {}

M.setup_done = false

--- Requires Neovim 0.10+ (inline virtual text, vim.fs.root); 0.12+ uses vim.lsp.inline_completion.
function M.setup(opts)
  if M.setup_done then
    vim.notify("infill: setup() was already called; restart Neovim to change options", vim.log.levels.WARN)
    return
  end
  if vim.fn.has("nvim-0.10") ~= 1 then
    vim.notify("infill: needs Neovim 0.10 or newer", vim.log.levels.ERROR)
    return
  end
  M.setup_done = true
  require("infill.config").setup(opts)
  require("infill.client").setup()
  require("infill.suggest").setup()
  require("infill.next_edit").setup()
  require("infill.keymaps").setup()
  require("infill.rewrite").setup()

  vim.api.nvim_create_user_command("InfillToggle", function()
    M.toggle()
  end, { desc = "infill: turn inline suggestions on or off" })
  vim.api.nvim_create_user_command("InfillStatus", function()
    vim.notify("infill: " .. M.status())
  end, { desc = "infill: show the server state" })
end

--- Turns inline suggestions on or off; returns the new state.
function M.toggle()
  local enabled = not require("infill.config").options.enabled
  require("infill.suggest").set_enabled(enabled)
  return enabled
end

--- One word for a statusline: starting / loading / ready / busy / error / stopped, plus "off" when toggled off.
function M.status()
  local status = require("infill.client").status
  local text = status.state
  if status.message then
    text = text .. ": " .. status.message
  end
  if not require("infill.config").options.enabled then
    text = text .. " (off)"
  end
  return text
end

return M
