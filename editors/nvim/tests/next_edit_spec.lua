-- Next-edit previews, their accepts and the low-confidence highlight in a real headless Neovim, with the
-- server's items and results given directly (tests/tmux_e2e.py drives them with the real server).
local h = dofile(vim.g.infill_test_root .. "/tests/harness.lua")
local test, eq, truthy = h.test, h.eq, h.truthy

local config = require("infill.config")
config.setup({ filetypes = { "python" }, native = false })
local next_edit = require("infill.next_edit")
local rewrite = require("infill.rewrite")
next_edit.setup()
rewrite.setup()
require("infill.keymaps").setup()

local buffer = h.buffer

local function range(line, from, to_line, to)
  return { start = { line = line, character = from }, ["end"] = { line = to_line, character = to } }
end

local function text(bufnr)
  return vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)
end

-- The server's item for `    return a + x|` (cursor at the end): it covers " a + x" and the cursor.
local LINE = "    return a + x"
local ITEM = { insertText = " a + b", range = range(0, 10, 0, #LINE) }

test("a replacement item becomes a preview: old text struck, new text as virtual text after it", function()
  local bufnr = buffer({ LINE, "print(a)" }, 0, #LINE)
  local ghost_only = { { insertText = " + 1", range = range(0, #LINE, 0, #LINE) } }
  eq(nil, next_edit.suggestion_from_items(bufnr, ghost_only, 0, #LINE, "utf-16"), "ghost text is not a next edit")
  local suggestion = next_edit.suggestion_from_items(bufnr, { ghost_only[1], ITEM }, 0, #LINE, "utf-16")
  eq({ start_row = 0, start_col = #LINE - 1, end_row = 0, end_col = #LINE, text = "b" }, suggestion)
  next_edit.show(bufnr, suggestion)
  local marks = vim.api.nvim_buf_get_extmarks(bufnr, next_edit.ns, 0, -1, { details = true })
  eq(2, #marks)
  eq("InfillNextEditDelete", marks[1][4].hl_group)
  eq({ #LINE - 1, #LINE }, { marks[1][3], marks[1][4].end_col })
  eq({ { "b", "InfillNextEditAdd" } }, marks[2][4].virt_text)
  truthy(vim.api.nvim_get_hl(0, { name = "InfillNextEditDelete" }).strikethrough, "struck through")
end)

test("Tab (the accept key) applies the suggestion; Esc dismisses one", function()
  local bufnr = buffer({ LINE, "print(a)" }, 0, #LINE)
  next_edit.show(bufnr, next_edit.suggestion_from_items(bufnr, { ITEM }, 0, #LINE, "utf-16"))
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes("<Tab>", true, false, true), "x", false)
  eq({ "    return a + b", "print(a)" }, text(bufnr))
  eq(false, next_edit.visible(bufnr))
  next_edit.show(bufnr, { start_row = 1, start_col = 6, end_row = 1, end_col = 7, text = "b" })
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes("<Esc>", true, false, true), "x", false)
  eq(false, next_edit.visible(bufnr))
  eq({ "    return a + b", "print(a)" }, text(bufnr), "dismissing changed nothing")
  eq(0, #vim.api.nvim_buf_get_extmarks(bufnr, next_edit.ns, 0, -1, {}))
end)

test("accept word and accept line take part of the new text and keep previewing the rest", function()
  local bufnr = buffer({ "x = old", "" }, 0, 7)
  next_edit.show(bufnr, { start_row = 0, start_col = 4, end_row = 0, end_col = 7, text = "total + 1\ny = 2" })
  truthy(next_edit.accept(bufnr, "word"))
  eq({ "x = total", "" }, text(bufnr))
  local rest = next_edit.current(bufnr)
  eq({ 0, 9, 0, 9, " + 1\ny = 2" }, { rest.start_row, rest.start_col, rest.end_row, rest.end_col, rest.text })
  truthy(next_edit.accept(bufnr, "line")) -- the rest of the line (as for ghost text), then the next line
  eq({ "x = total + 1", "" }, text(bufnr))
  truthy(next_edit.accept(bufnr, "all"))
  eq({ "x = total + 1", "y = 2", "" }, text(bufnr))
  eq(nil, next_edit.current(bufnr))
end)

test("a change of the buffer drops the preview; it is never applied to other text", function()
  local bufnr = buffer({ LINE }, 0, #LINE)
  next_edit.show(bufnr, next_edit.suggestion_from_items(bufnr, { ITEM }, 0, #LINE, "utf-16"))
  vim.api.nvim_buf_set_lines(bufnr, 0, -1, false, { "    return a + y" })
  eq(false, next_edit.accept(bufnr, "all"))
  eq({ "    return a + y" }, text(bufnr))
end)

test("low-confidence ranges are highlighted, follow the edit that replaces them, and can be turned off", function()
  local bufnr = buffer({ "def add(a, b):", "    return a + xy  # x" }, 1, 0)
  local marks = { { range = range(1, 14, 1, 17), confidence = 0.01 }, { range = range(1, 19, 1, 20) } }
  eq(2, rewrite.mark_low_confidence(bufnr, marks, "utf-16"))
  local found = vim.api.nvim_buf_get_extmarks(bufnr, rewrite.low_confidence_ns, 0, -1, { details = true })
  eq("InfillLowConfidence", found[1][4].hl_group)
  eq({ 1, 14, 17 }, { found[1][2], found[1][3], found[1][4].end_col })
  -- The edit replaces " xy" with " b": the mark covers " b", the one after it moves along.
  vim.lsp.util.apply_text_edits({ { range = range(1, 14, 1, 17), newText = " b" } }, bufnr, "utf-16")
  found = vim.api.nvim_buf_get_extmarks(bufnr, rewrite.low_confidence_ns, 0, -1, { details = true })
  eq({ { 14, 16 }, { 18, 19 } }, { { found[1][3], found[1][4].end_col }, { found[2][3], found[2][4].end_col } })
  truthy(vim.api.nvim_get_hl(0, { name = "InfillLowConfidence" }).undercurl, "undercurled")
  config.options.show_low_confidence = false
  eq(0, rewrite.mark_low_confidence(bufnr, marks, "utf-16"))
  eq(0, #vim.api.nvim_buf_get_extmarks(bufnr, rewrite.low_confidence_ns, 0, -1, {}))
  config.options.show_low_confidence = true
end)

test(":InfillEdit and :InfillEditFunction exist beside the rewrite commands", function()
  truthy(vim.api.nvim_get_commands({}).InfillEdit, ":InfillEdit")
  truthy(vim.api.nvim_get_commands({}).InfillEditFunction, ":InfillEditFunction")
end)

h.run("nvim-next-edit")
