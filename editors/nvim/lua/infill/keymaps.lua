-- Insert-mode keys for suggestions: accept whole / word / line, dismiss. A key does its usual thing when no
-- suggestion is shown.
local config = require("infill.config")
local suggest = require("infill.suggest")

local M = {}

M.setup_done = false

local function feed(key)
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes(key, true, false, true), "n", false)
end

local function map(key, desc, action)
  if not key then
    return
  end
  vim.keymap.set("i", key, function()
    if not (suggest.visible(0) and action()) then
      feed(key)
    end
  end, { desc = desc, silent = true })
end

function M.setup()
  if M.setup_done then
    return
  end
  M.setup_done = true
  local keys = config.options.keymaps
  map(keys.accept, "infill: accept suggestion", function()
    return suggest.accept(0, "all")
  end)
  map(keys.accept_word, "infill: accept next word", function()
    return suggest.accept(0, "word")
  end)
  map(keys.accept_line, "infill: accept next line", function()
    return suggest.accept(0, "line")
  end)
  map(keys.dismiss, "infill: dismiss suggestion", function()
    if suggest.current(0) == nil then
      return false
    end
    suggest.dismiss(vim.api.nvim_get_current_buf())
    return true
  end)
end

return M
