-- Keys for suggestions: accept whole / word / line, dismiss. A next-edit preview (infill.next_edit) takes
-- them first, in insert and normal mode; then the ghost text. A key does its usual thing when
-- no suggestion is shown.
local config = require("infill.config")
local next_edit = require("infill.next_edit")
local suggest = require("infill.suggest")

local M = {}

M.setup_done = false

local function feed(key)
  -- "i": before the keys typed after it, which may already wait in the typeahead (<Esc> then `:w`).
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes(key, true, false, true), "in", false)
end

local function map(key, modes, desc, action)
  if not key then
    return
  end
  vim.keymap.set(modes, key, function()
    if not action() then
      feed(key)
    end
  end, { desc = desc, silent = true })
end

local function accept(what)
  return function()
    if next_edit.visible(0) then
      return next_edit.accept(0, what)
    end
    -- (Ghost text is only shown in insert mode: leaving it dismisses the ghost text.)
    return suggest.visible(0) and suggest.accept(0, what)
  end
end

function M.setup()
  if M.setup_done then
    return
  end
  M.setup_done = true
  local keys = config.options.keymaps
  local both = { "i", "n" }
  map(keys.accept, both, "infill: accept suggestion", accept("all"))
  map(keys.accept_word, both, "infill: accept next word", accept("word"))
  map(keys.accept_line, both, "infill: accept next line", accept("line"))
  map(keys.dismiss, "i", "infill: dismiss suggestion", function()
    if suggest.current(0) == nil then
      return false
    end
    suggest.dismiss(vim.api.nvim_get_current_buf())
    return true
  end)
  map(keys.dismiss_next_edit, both, "infill: dismiss next-edit suggestion", function()
    if not next_edit.visible(0) then
      return false
    end
    next_edit.dismiss(0)
    return false -- <Esc> still leaves insert mode
  end)
end

return M
