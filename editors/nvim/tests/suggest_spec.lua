-- Ghost text, accepting and the rewrite preview in a real headless Neovim, with completion items given
-- directly (tests/server_spec.lua drives the same code with the real server).
local h = dofile(vim.g.infill_test_root .. "/tests/harness.lua")
local test, eq, truthy = h.test, h.eq, h.truthy

local config = require("infill.config")
config.setup({ filetypes = { "python" }, settings = { maxTokens = 32 }, native = false })
local suggest = require("infill.suggest")
local rewrite = require("infill.rewrite")

local buffer = h.buffer

local function extmarks(bufnr)
  return vim.api.nvim_buf_get_extmarks(bufnr, suggest.ns, 0, -1, { details = true })
end

local function range(line, from, to)
  return { start = { line = line, character = from }, ["end"] = { line = line, character = to } }
end

test("config: user values override, lists replace, defaults stay", function()
  local options = config.setup({ filetypes = { "lua" }, settings = { maxTokens = 8 }, keymaps = {} })
  eq({ "lua" }, options.filetypes)
  eq(8, options.settings.maxTokens)
  eq("auto", options.settings.device)
  eq(150, options.settings.debounceMs)
  eq("<Tab>", options.keymaps.accept)
  eq(nil, options.settings.model)
  local ok, err = pcall(config.setup, { cmd = {} })
  eq(false, ok)
  truthy(tostring(err):find("cmd"), "error names the option")
  config.setup({ filetypes = { "python" }, native = false })
end)

test("an item continuing the typed word shows only the rest, as inline ghost text", function()
  local bufnr = buffer({ "def add(a, b):", "    return a +" }, 1, 14)
  -- The server replaces "a +" (characters 11..14) with "a + b".
  local s =
    truthy(suggest.suggestion_from_item(bufnr, { insertText = "a + b", range = range(1, 11, 14) }, 1, 14, "utf-16"))
  eq(" b", s.text)
  eq(14, s.replace_end)
  suggest.show(bufnr, s)
  local marks = extmarks(bufnr)
  eq(1, #marks)
  eq(1, marks[1][2], "row")
  eq(14, marks[1][3], "col")
  eq({ { " b", "Comment" } }, marks[1][4].virt_text)
  eq("inline", marks[1][4].virt_text_pos)
  eq(s, suggest.current(bufnr))
end)

test("multi-line suggestions use virt_lines for the lines after the first", function()
  local bufnr = buffer({ "def f(x):", "" }, 1, 0)
  local s = truthy(suggest.suggestion_from_item(bufnr, { insertText = "    y = x\n    return y" }, 1, 0, "utf-16"))
  suggest.show(bufnr, s)
  local details = extmarks(bufnr)[1][4]
  eq({ { "    y = x", "Comment" } }, details.virt_text)
  eq({ { { "    return y", "Comment" } } }, details.virt_lines)
end)

test("items that do not continue the text at the cursor are not shown", function()
  local bufnr = buffer({ "x = foo" }, 0, 7)
  eq(nil, suggest.suggestion_from_item(bufnr, { insertText = "bar()", range = range(0, 4, 7) }, 0, 7, "utf-16"))
  eq(nil, suggest.suggestion_from_item(bufnr, { insertText = "()", range = range(1, 0, 0) }, 0, 7, "utf-16"))
  eq(nil, suggest.suggestion_from_item(bufnr, { insertText = "" }, 0, 7, "utf-16"))
  eq(nil, suggest.suggestion_from_item(bufnr, { insertText = "foo", range = range(0, 4, 7) }, 0, 7, "utf-16"))
end)

test("utf-16 ranges are converted to byte columns", function()
  -- "é" is 2 bytes but 1 UTF-16 unit; the cursor is after "s = 'é" (byte 7, character 6).
  local bufnr = buffer({ "s = 'é" }, 0, 7)
  local s = truthy(suggest.suggestion_from_item(bufnr, { insertText = "'é'", range = range(0, 4, 6) }, 0, 7, "utf-16"))
  eq("'", s.text)
  eq(7, s.replace_end)
end)

test("accept inserts the whole suggestion at the cursor and moves past it", function()
  local bufnr = buffer({ "def add(a, b):", "    return a +", "" }, 1, 14)
  suggest.show(bufnr, { row = 1, col = 14, replace_end = 14, text = " b\n# done" })
  truthy(suggest.accept(bufnr, "all"), "accepted")
  eq({ "def add(a, b):", "    return a + b", "# done", "" }, vim.api.nvim_buf_get_lines(bufnr, 0, -1, false))
  eq({ 3, 6 }, vim.api.nvim_win_get_cursor(0))
  eq(0, #extmarks(bufnr), "ghost text cleared")
  eq(false, suggest.accept(bufnr, "all"), "nothing left to accept")
end)

test("accept replaces the item's range after the cursor", function()
  local bufnr = buffer({ "print(x)" }, 0, 6)
  suggest.show(bufnr, { row = 0, col = 6, replace_end = 8, text = "y, z)" })
  suggest.accept(bufnr, "all")
  eq({ "print(y, z)" }, vim.api.nvim_buf_get_lines(bufnr, 0, -1, false))
end)

test("accept word and accept line insert a part and keep the rest shown", function()
  local bufnr = buffer({ "total = " }, 0, 8)
  suggest.show(bufnr, { row = 0, col = 8, replace_end = 8, text = "price * count\nprint(total)" })
  truthy(suggest.accept(bufnr, "word"))
  eq({ "total = price" }, vim.api.nvim_buf_get_lines(bufnr, 0, -1, false))
  eq(" * count\nprint(total)", truthy(suggest.current(bufnr), "rest still shown").text)
  truthy(suggest.accept(bufnr, "word"))
  eq({ "total = price *" }, vim.api.nvim_buf_get_lines(bufnr, 0, -1, false))
  truthy(suggest.accept(bufnr, "line"))
  eq({ "total = price * count" }, vim.api.nvim_buf_get_lines(bufnr, 0, -1, false))
  truthy(suggest.accept(bufnr, "line"))
  eq({ "total = price * count", "print(total)" }, vim.api.nvim_buf_get_lines(bufnr, 0, -1, false))
  eq(nil, suggest.current(bufnr), "all accepted")
end)

test("a suggestion for older text or another cursor position is not accepted", function()
  local bufnr = buffer({ "abc" }, 0, 3)
  suggest.show(bufnr, { row = 0, col = 3, replace_end = 3, text = "def" })
  vim.api.nvim_buf_set_lines(bufnr, 0, -1, false, { "abcx" })
  eq(false, suggest.accept(bufnr, "all"))
  suggest.show(bufnr, { row = 0, col = 3, replace_end = 3, text = "def" })
  vim.api.nvim_win_set_cursor(0, { 1, 1 })
  eq(false, suggest.accept(bufnr, "all"))
  eq({ "abcx" }, vim.api.nvim_buf_get_lines(bufnr, 0, -1, false))
end)

test("the accept key is mapped in insert mode and accepts the suggestion", function()
  require("infill.keymaps").setup()
  local map = vim.fn.maparg("<Tab>", "i", false, true)
  truthy(map.callback, "<Tab> has a Lua callback")
  local bufnr = buffer({ "x = " }, 0, 4)
  suggest.show(bufnr, { row = 0, col = 4, replace_end = 4, text = "1" })
  map.callback()
  eq({ "x = 1" }, vim.api.nvim_buf_get_lines(bufnr, 0, -1, false))
  truthy(vim.fn.maparg("<M-Right>", "i", false, true).callback, "accept word mapped")
  truthy(vim.fn.maparg("<M-Down>", "i", false, true).callback, "accept line mapped")
end)

test("rewrite preview: a unified diff of the edits, computed without touching the buffer", function()
  local bufnr = buffer({ "def f(a):", "    return <|fill|>", "" }, 0, 0)
  local edits = { { range = range(1, 11, 19), newText = "a * 2" } }
  local lines = truthy(rewrite.preview_lines(bufnr, edits, "utf-16"))
  truthy(vim.tbl_contains(lines, "-    return <|fill|>"), "old line in the diff")
  truthy(vim.tbl_contains(lines, "+    return a * 2"), "new line in the diff")
  eq({ "def f(a):", "    return <|fill|>", "" }, vim.api.nvim_buf_get_lines(bufnr, 0, -1, false))
  eq(nil, rewrite.preview_lines(bufnr, { { range = range(0, 0, 0), newText = "" } }, "utf-16"))
end)

test("rewrite line ranges cover whole lines; the last ends at the end of the buffer", function()
  local bufnr = buffer({ "a = 1", "b = 'é'", "c = 3é" }, 0, 0)
  eq({ start = { line = 0, character = 0 }, ["end"] = { line = 2, character = 0 } }, rewrite.line_range(bufnr, 1, 2))
  eq({ start = { line = 1, character = 0 }, ["end"] = { line = 2, character = 6 } }, rewrite.line_range(bufnr, 2, 3))
end)

test("accepting a preview applies it; a changed buffer refuses it", function()
  local bufnr = buffer({ "x = <|fill|>" }, 0, 0)
  rewrite.pending = { bufnr = bufnr, edits = { { range = range(0, 4, 12), newText = "42" } }, encoding = "utf-16" }
  rewrite.pending.tick = vim.api.nvim_buf_get_changedtick(bufnr)
  truthy(rewrite.accept(), "applied")
  eq({ "x = 42" }, vim.api.nvim_buf_get_lines(bufnr, 0, -1, false))
  rewrite.pending = { bufnr = bufnr, edits = { { range = range(0, 4, 6), newText = "7" } }, encoding = "utf-16" }
  rewrite.pending.tick = vim.api.nvim_buf_get_changedtick(bufnr)
  vim.api.nvim_buf_set_lines(bufnr, 0, -1, false, { "x = 43" })
  local notified = {}
  local notify = vim.notify
  vim.notify = function(message)
    table.insert(notified, message)
  end
  local applied = rewrite.accept()
  vim.notify = notify
  eq(false, applied)
  eq({ "x = 43" }, vim.api.nvim_buf_get_lines(bufnr, 0, -1, false))
  truthy(notified[1] and notified[1]:find("changed"), "the user is told why")
end)

-- Captures vim.notify while fn runs; returns the messages.
local function notifications(fn)
  local notified = {}
  local notify = vim.notify
  vim.notify = function(message, level)
    table.insert(notified, { message = message, level = level })
  end
  local ok, err = pcall(fn)
  vim.notify = notify
  assert(ok, err)
  return notified
end

local function preview_text()
  return table.concat(vim.api.nvim_buf_get_lines(rewrite.pending.preview_buf, 0, -1, false), "\n")
end

test("an unchecked fill is flagged and :InfillAccept refuses it; :InfillAccept! applies it", function()
  rewrite.setup()
  local bufnr = buffer({ "value = 1 <|fill|>" }, 0, 0)
  local tick = vim.api.nvim_buf_get_changedtick(bufnr)
  local edits = { { range = range(0, 10, 18), newText = "xxxx", validated = false } }
  local shown = notifications(function()
    rewrite.preview(bufnr, "holes", edits, tick, "utf-16")
  end)
  truthy(rewrite.pending, "preview open")
  truthy(shown[1] and shown[1].level == vim.log.levels.WARN, "a warning: " .. vim.inspect(shown))
  truthy(shown[1].message:find("the fill at line 1 did not pass the syntax check", 1, true), shown[1].message)
  local text = preview_text()
  truthy(text:find("WARNING: the fill at line 1 did not pass the syntax check", 1, true), text)
  truthy(text:find("A / :InfillAccept! apply anyway", 1, true), text)
  local title = vim.api.nvim_win_get_config(rewrite.pending.win).title
  truthy(vim.inspect(title):find("NOT syntax%-checked"), "title says so: " .. vim.inspect(title))

  local refused = notifications(function()
    vim.cmd("InfillAccept")
  end)
  eq({ "value = 1 <|fill|>" }, vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), "not applied")
  truthy(refused[1].message:find("not applied", 1, true), vim.inspect(refused))
  truthy(rewrite.pending and vim.api.nvim_win_is_valid(rewrite.pending.win), "the preview stays open")
  -- `a` in the preview window does the same as :InfillAccept; `A` applies anyway.
  notifications(function()
    eq(false, rewrite.accept())
  end)
  vim.api.nvim_set_current_win(rewrite.pending.win)
  vim.fn.maparg("A", "n", false, true).callback()
  eq(nil, rewrite.pending, "preview closed")
  eq({ "value = 1 xxxx" }, vim.api.nvim_buf_get_lines(bufnr, 0, -1, false))
end)

test("with checked and unchecked fills, :InfillAccept applies only the checked ones", function()
  local bufnr = buffer({ "a = <|fill|>", "b = 1 <|fill|>" }, 0, 0)
  local tick = vim.api.nvim_buf_get_changedtick(bufnr)
  local edits = {
    { range = range(0, 4, 12), newText = "2", validated = true },
    { range = range(1, 6, 14), newText = "xxxx", validated = false },
  }
  notifications(function()
    rewrite.preview(bufnr, "holes", edits, tick, "utf-16")
  end)
  truthy(preview_text():find("apply the checked fills only", 1, true), preview_text())
  local said = notifications(function()
    truthy(rewrite.accept(), "applied")
  end)
  eq({ "a = 2", "b = 1 <|fill|>" }, vim.api.nvim_buf_get_lines(bufnr, 0, -1, false))
  truthy(said[1].message:find("line 2 did not pass the syntax check and was left as it is", 1, true), vim.inspect(said))
end)

h.run("nvim-suggest")
