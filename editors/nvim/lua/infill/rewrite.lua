-- Rewrites through `infill/rewrite`: :InfillRewrite (a line range), :InfillRewriteFunction (around the cursor),
-- :InfillFillHoles (`<|fill|>` holes and infill:begin/infill:end regions). The result is previewed as a diff in
-- a floating window and applied only on :InfillAccept (or `a` / <CR> there), and only to the unchanged buffer.
-- A fill the server marks `validated = false` (no candidate passed its syntax check) is flagged in the preview
-- and left out by :InfillAccept; only :InfillAccept! (or `A`) applies it.
-- :InfillEdit and :InfillEditFunction do the same in edit mode: the server keeps the code and changes only the
-- tokens the model doubts, and reports them (`lowConfidence`), highlighted with InfillLowConfidence (config
-- `show_low_confidence`). The marks are extmarks, so they follow the code as the edits are applied.
local client = require("infill.client")
local config = require("infill.config")

local M = {}

M.setup_done = false
M.METHOD = "infill/rewrite"
M.ns = vim.api.nvim_create_namespace("infill.rewrite")
M.low_confidence_ns = vim.api.nvim_create_namespace("infill.low_confidence")

-- The preview waiting for a decision: { bufnr, edits, tick, encoding, win, preview_buf, target }.
M.pending = nil

local CONTENT_MODIFIED = -32801

local function notify(message, level)
  vim.notify("infill: " .. message, level or vim.log.levels.INFO)
end

local function close_preview()
  local pending = M.pending
  M.pending = nil
  if pending ~= nil and pending.win ~= nil and vim.api.nvim_win_is_valid(pending.win) then
    vim.api.nvim_win_close(pending.win, true)
  end
end

--- The buffer's text after applying edits, computed on a scratch copy (the real buffer is not touched).
local function text_after(bufnr, edits, encoding)
  local scratch = vim.api.nvim_create_buf(false, true)
  vim.api.nvim_buf_set_lines(scratch, 0, -1, false, vim.api.nvim_buf_get_lines(bufnr, 0, -1, false))
  vim.lsp.util.apply_text_edits(edits, scratch, encoding)
  local lines = vim.api.nvim_buf_get_lines(scratch, 0, -1, false)
  vim.api.nvim_buf_delete(scratch, { force = true })
  return table.concat(lines, "\n") .. "\n"
end

local diff = vim.text and vim.text.diff or vim.diff

--- A unified diff of what the edits would change.
function M.preview_lines(bufnr, edits, encoding)
  local before = table.concat(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), "\n") .. "\n"
  local after = text_after(bufnr, edits, encoding)
  local unified = diff(before, after, { result_type = "unified", ctxlen = 2 })
  if unified == nil or unified == "" then
    return nil
  end
  return vim.split(unified:gsub("\n$", ""), "\n", { plain = true })
end

--- The edits the server could not syntax-check (`validated = false`), and the 1-based lines they start on.
local function unchecked_of(edits)
  local unchecked, lines = {}, {}
  for _, edit in ipairs(edits) do
    if edit.validated == false then
      table.insert(unchecked, edit)
      table.insert(lines, edit.range.start.line + 1)
    end
  end
  return unchecked, lines
end

local function describe_unchecked(lines)
  if #lines == 1 then
    return "the fill at line " .. lines[1]
  end
  return #lines .. " fills (lines " .. table.concat(lines, ", ") .. ")"
end

local function key_names(keys)
  return table.concat(keys, " / ")
end

--- The preview's closing lines: a warning about unchecked fills first, then the keys.
local function footer(edits, unchecked_lines)
  local keys = config.options.rewrite
  local accept = key_names(keys.accept_keys) .. " / :InfillAccept"
  local force = key_names(keys.force_accept_keys) .. " / :InfillAccept!"
  local reject = key_names(keys.reject_keys) .. " / :InfillReject discard"
  if #unchecked_lines == 0 then
    return { "", accept .. " apply    " .. reject }
  end
  local warning = "WARNING: "
    .. describe_unchecked(unchecked_lines)
    .. " did not pass the syntax check; the code may not parse."
  if #unchecked_lines == #edits then
    return { "", warning, force .. " apply anyway    " .. reject }
  end
  return { "", warning, accept .. " apply the checked fills only    " .. force .. " apply all    " .. reject }
end

local function open_preview(lines, title)
  local buf = vim.api.nvim_create_buf(false, true)
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].filetype = "diff"
  vim.bo[buf].modifiable = false
  vim.bo[buf].bufhidden = "wipe"
  local width = 20
  for _, line in ipairs(lines) do
    width = math.max(width, vim.fn.strdisplaywidth(line))
  end
  width = math.min(width + 2, math.max(20, vim.o.columns - 4))
  local height = math.min(#lines, math.max(3, vim.o.lines - 6))
  local win = vim.api.nvim_open_win(buf, true, {
    relative = "editor",
    row = math.floor((vim.o.lines - height) / 2) - 1,
    col = math.floor((vim.o.columns - width) / 2),
    width = width,
    height = height,
    style = "minimal",
    border = config.options.rewrite.border,
    title = title,
    title_pos = "center",
  })
  local keys = config.options.rewrite
  for _, key in ipairs(keys.accept_keys) do
    vim.keymap.set("n", key, M.accept, { buffer = buf, nowait = true, desc = "infill: apply the rewrite" })
  end
  for _, key in ipairs(keys.force_accept_keys) do
    vim.keymap.set("n", key, function()
      M.accept(true)
    end, { buffer = buf, nowait = true, desc = "infill: apply the rewrite, unchecked fills included" })
  end
  for _, key in ipairs(keys.reject_keys) do
    vim.keymap.set("n", key, M.reject, { buffer = buf, nowait = true, desc = "infill: discard the rewrite" })
  end
  for i, line in ipairs(lines) do
    if line:find("^WARNING: ") then
      vim.api.nvim_buf_set_extmark(buf, M.ns, i - 1, 0, { line_hl_group = "WarningMsg" })
    end
  end
  return buf, win
end

local function first_line(message)
  return (tostring(message or "unknown error"):gsub("\n.*", ""))
end

local NOTHING = {
  range = "no rewrite found for the selection",
  ["function"] = "no rewrite found for this function",
  holes = "no holes (<|fill|> or infill:begin/infill:end) to fill",
}

-- Why the server gave no edit (its `reason` field), in the same words as the VS Code extension.
local REASONS = {
  noFunction = "the cursor is not inside a function",
  noValidEdit = "nothing the model proposed passed the syntax check",
  confident = "the model is confident in this code; nothing to change",
}

--- Highlights the `lowConfidence` ranges of an edit-mode result (replacing the buffer's earlier marks). A
--- mark's end moves right with text inserted at it, so a mark the edit replaces covers the new text.
function M.mark_low_confidence(bufnr, marks, encoding)
  vim.api.nvim_buf_clear_namespace(bufnr, M.low_confidence_ns, 0, -1)
  if not config.options.show_low_confidence then
    return 0
  end
  local count = 0
  for _, mark in ipairs(marks or {}) do
    local range = type(mark) == "table" and mark.range or nil
    local first = range and vim.api.nvim_buf_get_lines(bufnr, range.start.line, range.start.line + 1, false)[1]
    local last = range and vim.api.nvim_buf_get_lines(bufnr, range["end"].line, range["end"].line + 1, false)[1]
    if first ~= nil and last ~= nil then
      local byte_col = require("infill.suggest").byte_col
      local start_col = byte_col(first, range.start.character, encoding)
      local ok = pcall(vim.api.nvim_buf_set_extmark, bufnr, M.low_confidence_ns, range.start.line, start_col, {
        end_row = range["end"].line,
        end_col = byte_col(last, range["end"].character, encoding),
        hl_group = "InfillLowConfidence",
        right_gravity = false,
        end_right_gravity = true,
      })
      if ok then
        count = count + 1
      end
    end
  end
  return count
end

--- Sends `infill/rewrite` and opens the preview when edits come back.
---@param target "range"|"function"|"holes"
---@param range table|nil LSP range (for "range" and "function")
---@param mode "regenerate"|"edit"|nil edit: change only the tokens the model doubts (not for "holes")
function M.request(bufnr, target, range, mode)
  bufnr = client.buf(bufnr)
  local lsp_client = client.get(bufnr)
  if lsp_client == nil then
    notify("the server is not running for this buffer", vim.log.levels.WARN)
    return
  end
  close_preview()
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(bufnr) },
    version = client.version(bufnr),
    target = target,
    range = range,
    mode = mode,
  }
  local tick = vim.api.nvim_buf_get_changedtick(bufnr)
  local encoding = lsp_client.offset_encoding or "utf-16"
  client.request(lsp_client, M.METHOD, params, function(err, result)
    if err ~= nil then
      if err.code == CONTENT_MODIFIED then
        notify("the buffer changed while rewriting; the result was discarded")
      else
        notify("rewrite failed: " .. first_line(err.message), vim.log.levels.ERROR)
      end
      return
    end
    local edits = result and result.edits or {}
    if vim.api.nvim_buf_is_valid(bufnr) and vim.api.nvim_buf_get_changedtick(bufnr) == tick then
      M.mark_low_confidence(bufnr, result and result.lowConfidence, encoding)
    end
    if #edits == 0 then
      notify(REASONS[result and result.reason] or NOTHING[target])
      return
    end
    if not vim.api.nvim_buf_is_valid(bufnr) or vim.api.nvim_buf_get_changedtick(bufnr) ~= tick then
      notify("the buffer changed while rewriting; the result was discarded")
      return
    end
    M.preview(bufnr, target, edits, tick, encoding)
  end, bufnr)
end

--- Opens the preview of an `infill/rewrite` result for the buffer as it was at `tick`; unchecked fills are
--- flagged in the title, in the preview and with a warning message.
function M.preview(bufnr, target, edits, tick, encoding)
  local lines = M.preview_lines(bufnr, edits, encoding)
  if lines == nil then
    notify("the rewrite changes nothing")
    return
  end
  local _, unchecked_lines = unchecked_of(edits)
  vim.list_extend(lines, footer(edits, unchecked_lines))
  local title = " infill: " .. target .. " "
  if #unchecked_lines > 0 then
    title = title .. "(NOT syntax-checked) "
    notify(describe_unchecked(unchecked_lines) .. " did not pass the syntax check; review it", vim.log.levels.WARN)
  end
  close_preview()
  M.pending = { bufnr = bufnr, edits = edits, tick = tick, encoding = encoding, target = target }
  M.pending.preview_buf, M.pending.win = open_preview(lines, title)
end

--- Applies the previewed edits; refuses when the buffer changed since the request. Fills that did not pass
--- the syntax check are left out unless `force` (:InfillAccept!); when nothing else is left, the preview stays
--- open and nothing is applied.
---@param force boolean|nil also apply unchecked fills
---@return boolean applied
function M.accept(force)
  local pending = M.pending
  if pending == nil then
    notify("no rewrite to apply")
    return false
  end
  local edits = pending.edits
  local unchecked, unchecked_lines = unchecked_of(edits)
  if #unchecked > 0 and not force then
    edits = vim.tbl_filter(function(edit)
      return edit.validated ~= false
    end, edits)
    if #edits == 0 then
      notify(
        ("not applied: %s did not pass the syntax check; %s or :InfillAccept! applies it anyway"):format(
          describe_unchecked(unchecked_lines),
          key_names(config.options.rewrite.force_accept_keys)
        ),
        vim.log.levels.WARN
      )
      return false
    end
  end
  close_preview()
  if
    not vim.api.nvim_buf_is_valid(pending.bufnr) or vim.api.nvim_buf_get_changedtick(pending.bufnr) ~= pending.tick
  then
    notify("the buffer changed since the preview; the rewrite was discarded", vim.log.levels.WARN)
    return false
  end
  vim.lsp.util.apply_text_edits(edits, pending.bufnr, pending.encoding)
  if #edits < #pending.edits then
    local verb = #unchecked_lines == 1 and "was" or "were"
    notify(("%s did not pass the syntax check and %s left as it is"):format(describe_unchecked(unchecked_lines), verb))
  end
  return true
end

function M.reject()
  close_preview()
end

--- The LSP range of whole lines line1..line2 (1-based, inclusive); it ends at the start of the next line, or
--- at the end of the buffer's last line.
function M.line_range(bufnr, line1, line2)
  local last = vim.api.nvim_buf_line_count(bufnr)
  if line2 < last then
    return { start = { line = line1 - 1, character = 0 }, ["end"] = { line = line2, character = 0 } }
  end
  local text = vim.api.nvim_buf_get_lines(bufnr, last - 1, last, false)[1] or ""
  local lsp_client = client.get(bufnr)
  local encoding = lsp_client and lsp_client.offset_encoding or "utf-16"
  local character = vim.lsp.util.character_offset(bufnr, last - 1, #text, encoding)
  return { start = { line = line1 - 1, character = 0 }, ["end"] = { line = last - 1, character = character } }
end

local function cursor_range()
  local lsp_client = client.get(0)
  local encoding = lsp_client and lsp_client.offset_encoding or "utf-16"
  local position = vim.lsp.util.make_position_params(0, encoding).position
  return { start = position, ["end"] = position }
end

function M.setup()
  if M.setup_done then
    return
  end
  M.setup_done = true
  vim.api.nvim_set_hl(0, "InfillLowConfidence", { default = true, undercurl = true, sp = "Orange", bg = "#4a3a10" })
  vim.api.nvim_create_user_command("InfillRewrite", function(opts)
    M.request(0, "range", M.line_range(vim.api.nvim_get_current_buf(), opts.line1, opts.line2))
  end, { range = true, desc = "infill: rewrite the lines in the range" })
  vim.api.nvim_create_user_command("InfillRewriteFunction", function()
    M.request(0, "function", cursor_range())
  end, { desc = "infill: rewrite the function around the cursor" })
  vim.api.nvim_create_user_command("InfillEdit", function(opts)
    M.request(0, "range", M.line_range(vim.api.nvim_get_current_buf(), opts.line1, opts.line2), "edit")
  end, { range = true, desc = "infill: edit the lines in the range in place (only doubted tokens change)" })
  vim.api.nvim_create_user_command("InfillEditFunction", function()
    M.request(0, "function", cursor_range(), "edit")
  end, { desc = "infill: edit the function around the cursor in place (only doubted tokens change)" })
  vim.api.nvim_create_user_command("InfillFillHoles", function()
    M.request(0, "holes", nil)
  end, { desc = "infill: fill <|fill|> holes and infill:begin/end regions" })
  vim.api.nvim_create_user_command("InfillAccept", function(opts)
    M.accept(opts.bang)
  end, { bang = true, desc = "infill: apply the previewed rewrite (!: unchecked fills too)" })
  vim.api.nvim_create_user_command("InfillReject", function()
    M.reject()
  end, { desc = "infill: discard the previewed rewrite" })
end

return M
