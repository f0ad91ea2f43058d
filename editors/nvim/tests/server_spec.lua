-- The plugin against the REAL server (`python -m infill_cli.main serve` on a tiny ModernBERT): start through
-- vim.lsp, ghost text from textDocument/inlineCompletion, accepting it, and rewrites through the preview.
-- Needs INFILL_TEST_X_MODEL (tests/tiny_models.py build_x_model: it fills "xxxx" wherever that parses, so each
-- request has a known answer) and the repository root on PYTHONPATH (or infill installed).
local h = dofile(vim.g.infill_test_root .. "/tests/harness.lua")
local test, eq, truthy, wait_for = h.test, h.eq, h.truthy, h.wait_for

local model = assert(vim.env.INFILL_TEST_X_MODEL, "set INFILL_TEST_X_MODEL to the x model's directory")
local python = vim.env.INFILL_PYTHON or "python"
local READY_MS = 120000
local REQUEST_MS = 60000

local workdir = vim.fn.tempname()
vim.fn.mkdir(workdir, "p")

-- Messages the plugin shows, to check that the user is told what happened (and that no error was shown).
local notified = {}
vim.notify = function(message, level)
  table.insert(notified, { message = message, level = level })
end

local function errors()
  return vim.tbl_filter(function(n)
    return n.level == vim.log.levels.ERROR
  end, notified)
end

require("infill").setup({
  cmd = { python, "-m", "infill_cli.main", "serve", "--model", model, "--device", "cpu" },
  cmd_env = { PYTHONPATH = vim.env.PYTHONPATH },
  filetypes = { "python" },
  root_markers = { ".git" },
  debounce_ms = 10,
  settings = { maxTokens = 16, debounceMs = 0 },
  native = false,
})
local client = require("infill.client")
local suggest = require("infill.suggest")
local rewrite = require("infill.rewrite")

local function open(name, lines)
  local path = workdir .. "/" .. name
  vim.fn.writefile(lines, path)
  vim.cmd("edit " .. vim.fn.fnameescape(path))
  return vim.api.nvim_get_current_buf()
end

local function lines_of(bufnr)
  return vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)
end

-- Waits for the preview of a rewrite; fails at once with the message when the plugin reported an error.
local function wait_preview()
  notified = {}
  wait_for("the rewrite preview", function()
    return rewrite.pending ~= nil or #notified > 0
  end, REQUEST_MS)
  return truthy(rewrite.pending, "no preview; the plugin said " .. vim.inspect(notified))
end

local function ghost_marks(bufnr)
  return vim.api.nvim_buf_get_extmarks(bufnr, suggest.ns, 0, -1, { details = true })
end

test("opening a python file starts the server through vim.lsp and the model loads", function()
  local bufnr = open("start.py", { "x = 1" })
  local lsp_client = wait_for("the infill client to attach", function()
    return client.get(bufnr)
  end, 10000)
  eq("infill", lsp_client.name)
  eq(workdir, lsp_client.config.root_dir, "root_dir falls back to the file's directory")
  truthy(lsp_client.server_capabilities.inlineCompletionProvider, "server advertises inline completions")
  wait_for("infill/status ready", function()
    return client.status.state == "ready" or client.status.state == "error"
  end, READY_MS)
  eq("ready", client.status.state, "status: " .. vim.inspect(client.status))
  truthy(require("infill").status():find("^ready"), "statusline text: " .. require("infill").status())
end)

local shown -- { bufnr, row, col, text, before }

test("typing triggers a request and the suggestion is shown as ghost text", function()
  local bufnr = open("complete.py", { "import os", "", "value = " })
  vim.api.nvim_win_set_cursor(0, { 3, 8 })
  vim.api.nvim_exec_autocmds("TextChangedI", { buffer = bufnr })
  truthy(suggest._pending(bufnr), "a request is scheduled")
  wait_for("the completion request to be answered", function()
    return not suggest._pending(bufnr)
  end, REQUEST_MS)
  local current = truthy(suggest.current(bufnr), "no suggestion shown after `value = `")
  truthy(current.text:find("^x+$"), "the x model's identifier: " .. current.text)
  local marks = ghost_marks(bufnr)
  eq(1, #marks, "one ghost-text extmark")
  eq({ 2, 8 }, { marks[1][2], marks[1][3] }, "extmark at the cursor")
  eq(current.text, marks[1][4].virt_text[1][1], "ghost text is the suggestion")
  shown = { bufnr = bufnr, row = 2, col = 8, text = current.text, before = lines_of(bufnr) }
end)

test("the accept key inserts the suggestion at the cursor", function()
  truthy(shown, "a suggestion was shown")
  vim.fn.maparg("<Tab>", "i", false, true).callback()
  local line = shown.before[shown.row + 1]
  local expected = vim.split(line:sub(1, shown.col) .. shown.text .. line:sub(shown.col + 1), "\n", { plain = true })
  local after = lines_of(shown.bufnr)
  for i, text in ipairs(expected) do
    eq(text, after[shown.row + i], "line " .. (shown.row + i))
  end
  eq(#shown.before + #expected - 1, #after, "line count")
  eq(0, #ghost_marks(shown.bufnr), "ghost text gone after accepting")
end)

test(":InfillFillHoles previews the fill and :InfillAccept applies it", function()
  local bufnr = open("holes.py", { "def double(x):", "    return <|fill|>", "", "print(double(2))" })
  vim.api.nvim_win_set_cursor(0, { 2, 0 })
  vim.cmd("InfillFillHoles")
  local pending = wait_preview()
  truthy(vim.api.nvim_win_is_valid(pending.win), "preview window open")
  eq("diff", vim.bo[pending.preview_buf].filetype)
  local preview = vim.api.nvim_buf_get_lines(pending.preview_buf, 0, -1, false)
  truthy(vim.tbl_contains(preview, "-    return <|fill|>"), "preview shows the hole going away")
  eq({ "def double(x):", "    return <|fill|>", "", "print(double(2))" }, lines_of(bufnr), "untouched before accept")
  vim.cmd("InfillAccept")
  eq(false, vim.api.nvim_win_is_valid(pending.win), "preview closed")
  local after = table.concat(lines_of(bufnr), "\n")
  eq(nil, after:find("<|fill|>", 1, true), "marker removed")
  truthy(after:find("^def double%(x%):\n    return x+\n"), "the hole filled, code before it kept: " .. after)
  truthy(after:find("print%(double%(2%)%)$"), "code after the hole kept")
  eq({}, errors())
end)

test(":InfillReject leaves the buffer as it was", function()
  local bufnr = open("reject.py", { "value = <|fill|>" })
  vim.cmd("InfillFillHoles")
  wait_preview()
  vim.cmd("InfillReject")
  eq(nil, rewrite.pending)
  eq({ "value = <|fill|>" }, lines_of(bufnr))
end)

test(":InfillFillHoles flags a fill that did not pass the syntax check; only :InfillAccept! applies it", function()
  local bufnr = open("unchecked.py", { "value = 1 <|fill|>" })
  vim.cmd("InfillFillHoles")
  local pending = wait_preview()
  truthy(notified[1] and notified[1].level == vim.log.levels.WARN, "a warning: " .. vim.inspect(notified))
  local preview = table.concat(vim.api.nvim_buf_get_lines(pending.preview_buf, 0, -1, false), "\n")
  truthy(preview:find("WARNING: the fill at line 1 did not pass the syntax check", 1, true), preview)
  eq(false, rewrite.accept(), ":InfillAccept applied an unchecked fill")
  eq({ "value = 1 <|fill|>" }, lines_of(bufnr))
  truthy(rewrite.accept(true), ":InfillAccept! applies it")
  truthy(lines_of(bufnr)[1]:find("^value = 1 x+$"), lines_of(bufnr)[1])
end)

test(":InfillRewrite on a line range previews the rewritten line", function()
  local bufnr = open("range.py", { "def mul(a, b):", "    result = a * b", "    return result" })
  vim.cmd("2,2InfillRewrite")
  local pending = wait_preview()
  eq(bufnr, pending.bufnr)
  eq("range", pending.target)
  local preview = vim.api.nvim_buf_get_lines(pending.preview_buf, 0, -1, false)
  truthy(vim.tbl_contains(preview, "-    result = a * b"), "the old line goes: " .. vim.inspect(preview))
  vim.cmd("InfillReject")
  eq({}, errors())
end)

test(":InfillRewriteFunction sends the cursor and previews the rewritten body", function()
  local bufnr = open("function.py", { "def mul(a, b):", "    result = a * b", "    return result", "" })
  vim.api.nvim_win_set_cursor(0, { 2, 6 })
  vim.cmd("InfillRewriteFunction")
  local pending = wait_preview()
  eq(bufnr, pending.bufnr)
  eq("function", pending.target)
  vim.cmd("InfillReject")
  eq({}, errors())
  eq({ "def mul(a, b):", "    result = a * b", "    return result", "" }, lines_of(bufnr))
end)

test("a buffer edited while the preview is open is not overwritten", function()
  local bufnr = open("stale.py", { "x = <|fill|>" })
  vim.cmd("InfillFillHoles")
  wait_preview()
  vim.api.nvim_buf_set_lines(bufnr, 0, -1, false, { "x = 2  # typed meanwhile" })
  eq(false, rewrite.accept())
  eq({ "x = 2  # typed meanwhile" }, lines_of(bufnr))
end)

test(":InfillToggle turns suggestions off", function()
  eq(true, require("infill").toggle() == false)
  truthy(require("infill").status():find("%(off%)$"), "statusline shows off")
  local bufnr = open("off.py", { "y = " })
  vim.api.nvim_win_set_cursor(0, { 1, 4 })
  vim.api.nvim_exec_autocmds("TextChangedI", { buffer = bufnr })
  vim.wait(200)
  eq(false, suggest._pending(bufnr), "no request while off")
  require("infill").toggle()
end)

h.run("nvim-server")
