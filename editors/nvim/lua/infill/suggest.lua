-- Inline suggestions: `textDocument/inlineCompletion` after typing pauses, rendered as ghost text (extmarks),
-- accepted whole, by word or by line. On Neovim 0.12+ vim.lsp.inline_completion does the requesting and
-- rendering instead (config `native`), and only whole-suggestion accept is offered.
local client = require("infill.client")
local config = require("infill.config")

local M = {}

M.setup_done = false
M.ns = vim.api.nvim_create_namespace("infill.ghost")

local uv = vim.uv or vim.loop
local has_011 = vim.fn.has("nvim-0.11") == 1
local TRIGGER_INVOKED, TRIGGER_AUTOMATIC = 1, 2

-- Per buffer: { timer, pending = {client, id}, suggestion = {row, col, replace_end, text, tick}, own_tick }
-- row/col are 0-based, col and replace_end are byte columns; text is what would be inserted at (row, col) and
-- replaces the bytes col..replace_end of that line.
local buffers = {}

local function state(bufnr)
  local st = buffers[bufnr]
  if st == nil then
    st = {}
    buffers[bufnr] = st
  end
  return st
end

--- Whether vim.lsp.inline_completion (Neovim 0.12+) renders the suggestions.
function M.uses_native()
  return config.options.native ~= false and vim.lsp.inline_completion ~= nil
end

--- The byte column of an LSP character offset (in `encoding` units) in a line.
function M.byte_col(line, character, encoding)
  if encoding == "utf-8" then
    return math.min(character, #line)
  end
  local ok, col
  if has_011 then
    ok, col = pcall(vim.str_byteindex, line, encoding, character, false)
  else
    ok, col = pcall(vim.str_byteindex, line, character, encoding == "utf-16")
  end
  return ok and col or #line
end

local function item_text(item)
  -- insertText is a string, or a StringValue ({kind = "snippet", value}) the server does not send.
  if type(item.insertText) == "table" then
    return item.insertText.value
  end
  return item.insertText
end

--- Turns an inline completion item into what to show at the cursor: the text after what is already typed,
--- and the byte range of the line it replaces. nil when the item does not continue the text at the cursor.
---@param row integer 0-based cursor line
---@param col integer 0-based cursor byte column
function M.suggestion_from_item(bufnr, item, row, col, encoding)
  local text = item_text(item)
  if type(text) ~= "string" or text == "" then
    return nil
  end
  local line = vim.api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ""
  local start_col, end_col = col, col
  if item.range ~= nil then
    if item.range.start.line ~= row or item.range["end"].line ~= row then
      return nil
    end
    start_col = M.byte_col(line, item.range.start.character, encoding)
    end_col = M.byte_col(line, item.range["end"].character, encoding)
  end
  if start_col > col or end_col < col then
    return nil
  end
  -- The range may start before the cursor (a word being typed): show only what follows it.
  local typed = line:sub(start_col + 1, col)
  if text:sub(1, #typed) ~= typed then
    return nil
  end
  local ghost = text:sub(#typed + 1)
  if ghost == "" then
    return nil
  end
  return { row = row, col = col, replace_end = end_col, text = ghost }
end

--- Extmark options that show `text` in `hl` as virtual text at a position: its first line inline, the others
--- as virtual lines below.
function M.virtual_text(text, hl)
  local lines = vim.split(text, "\n", { plain = true })
  local opts = { virt_text = { { lines[1], hl } }, virt_text_pos = "inline", hl_mode = "combine" }
  if #lines > 1 then
    opts.virt_lines = {}
    for i = 2, #lines do
      table.insert(opts.virt_lines, { { lines[i], hl } })
    end
  end
  return opts
end

local function render(bufnr, suggestion)
  vim.api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  local opts = M.virtual_text(suggestion.text, config.options.ghost_text.hl_group)
  vim.api.nvim_buf_set_extmark(bufnr, M.ns, suggestion.row, suggestion.col, opts)
end

--- Shows a suggestion as ghost text (replacing any other in the buffer).
function M.show(bufnr, suggestion)
  suggestion.tick = suggestion.tick or vim.api.nvim_buf_get_changedtick(bufnr)
  state(bufnr).suggestion = suggestion
  render(bufnr, suggestion)
end

--- Removes the ghost text (a pending request stays).
function M.clear(bufnr)
  local st = state(bufnr)
  st.suggestion = nil
  if vim.api.nvim_buf_is_valid(bufnr) then
    vim.api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  end
end

local function cancel_pending(st)
  if st.pending ~= nil then
    pcall(client.cancel, st.pending.client, st.pending.id)
    st.pending = nil
  end
end

--- Removes the ghost text and stops any pending or scheduled request.
function M.dismiss(bufnr)
  local st = state(bufnr)
  if st.timer ~= nil then
    st.timer:stop()
  end
  st.scheduled = false
  cancel_pending(st)
  M.clear(bufnr)
end

--- Whether a request is scheduled or waiting for its answer.
function M._pending(bufnr)
  local st = buffers[bufnr]
  return st ~= nil and (st.scheduled == true or st.pending ~= nil)
end

local function cursor_in(bufnr)
  local win = vim.api.nvim_get_current_win()
  if vim.api.nvim_win_get_buf(win) ~= bufnr then
    return nil
  end
  local cursor = vim.api.nvim_win_get_cursor(win)
  return cursor[1] - 1, cursor[2], win
end

--- The suggestion shown in a buffer, if it still belongs to the text and cursor it was made for.
function M.current(bufnr)
  bufnr = client.buf(bufnr)
  local suggestion = state(bufnr).suggestion
  if suggestion == nil or vim.api.nvim_buf_get_changedtick(bufnr) ~= suggestion.tick then
    return nil
  end
  local row, col = cursor_in(bufnr)
  if row ~= suggestion.row or col ~= suggestion.col then
    return nil
  end
  return suggestion
end

--- Sends `textDocument/inlineCompletion` for the cursor now and shows the first usable item.
---@param trigger_kind integer|nil 1 invoked (up to 3 items), 2 automatic (default)
function M.request(bufnr, trigger_kind)
  bufnr = client.buf(bufnr)
  local st = state(bufnr)
  cancel_pending(st)
  local lsp_client = client.get(bufnr)
  local row, col, win = cursor_in(bufnr)
  if lsp_client == nil or row == nil or not config.options.enabled then
    return
  end
  local encoding = lsp_client.offset_encoding or "utf-16"
  local params = vim.lsp.util.make_position_params(win, encoding)
  params.context = { triggerKind = trigger_kind or TRIGGER_AUTOMATIC }
  local tick = vim.api.nvim_buf_get_changedtick(bufnr)
  local request_id
  local function on_result(err, result)
    if st.pending ~= nil and st.pending.id == request_id then
      st.pending = nil
    end
    if err ~= nil or result == nil or not vim.api.nvim_buf_is_valid(bufnr) then
      return
    end
    local now_row, now_col = cursor_in(bufnr)
    if vim.api.nvim_buf_get_changedtick(bufnr) ~= tick or now_row ~= row or now_col ~= col then
      return -- the user moved on; this answer is for text that no longer exists
    end
    for _, item in ipairs(result.items or result) do
      local suggestion = M.suggestion_from_item(bufnr, item, row, col, encoding)
      if suggestion ~= nil then
        suggestion.tick = tick
        M.show(bufnr, suggestion)
        return
      end
    end
  end
  local ok, id = client.request(lsp_client, "textDocument/inlineCompletion", params, on_result, bufnr)
  if ok and id ~= nil then
    request_id = id
    st.pending = { client = lsp_client, id = id }
  end
end

--- Hides the current ghost text and requests a new suggestion after `debounce_ms`.
function M.schedule(bufnr)
  local st = state(bufnr)
  M.clear(bufnr)
  if not config.options.enabled then
    return
  end
  st.timer = st.timer or uv.new_timer()
  st.timer:stop()
  st.scheduled = true
  st.timer:start(
    config.options.debounce_ms,
    0,
    vim.schedule_wrap(function()
      st.scheduled = false
      if vim.api.nvim_buf_is_valid(bufnr) then
        M.request(bufnr, TRIGGER_AUTOMATIC)
      end
    end)
  )
end

--- The next word of a suggestion (with the whitespace before it), or its next run of punctuation.
function M.next_word(text)
  return text:match("^%s*[%w_]+") or text:match("^%s*[^%w_%s]+") or text
end

--- The rest of the current line of a suggestion; when it starts with a line break, the whole next line.
function M.next_line(text)
  local first = text:find("\n", 1, true)
  if first == nil then
    return text
  end
  if first > 1 then
    return text:sub(1, first - 1)
  end
  local second = text:find("\n", 2, true)
  return second and text:sub(1, second - 1) or text
end

--- What an accept takes of a suggestion's text: all of it, its next word, or its next line.
---@param what "all"|"word"|"line"
function M.accepted_part(text, what)
  if what == "word" then
    return M.next_word(text)
  elseif what == "line" then
    return M.next_line(text)
  end
  return text
end

--- Replaces the buffer's text from (row, col) to (end_row, end_col) with `text` and puts the cursor (when the
--- buffer is in the current window) after it; returns that position (0-based row, byte column).
function M.put_text(bufnr, row, col, end_row, end_col, text)
  local lines = vim.split(text, "\n", { plain = true })
  vim.api.nvim_buf_set_text(bufnr, row, col, end_row, end_col, lines)
  local after_row = row + #lines - 1
  local after_col = (#lines == 1 and col or 0) + #lines[#lines]
  local win = vim.api.nvim_get_current_win()
  if vim.api.nvim_win_get_buf(win) == bufnr then
    vim.api.nvim_win_set_cursor(win, { after_row + 1, after_col })
  end
  return after_row, after_col
end

--- Inserts the suggestion, or its next word or line (then the rest stays shown).
---@param what "all"|"word"|"line"
---@return boolean accepted
function M.accept(bufnr, what)
  bufnr = client.buf(bufnr)
  if M.uses_native() then
    return what == "all" and vim.lsp.inline_completion.get({ bufnr = bufnr }) or false
  end
  local suggestion = M.current(bufnr)
  if suggestion == nil then
    return false
  end
  local part = M.accepted_part(suggestion.text, what)
  local whole = part == suggestion.text
  -- Only a whole accept replaces the range after the cursor; a partial one inserts in front of it.
  local end_col = whole and suggestion.replace_end or suggestion.col
  local row, col = M.put_text(bufnr, suggestion.row, suggestion.col, suggestion.row, end_col, part)
  M.clear(bufnr)
  local st = state(bufnr)
  if not whole then
    local tick = vim.api.nvim_buf_get_changedtick(bufnr)
    -- Our own edit fires TextChangedI/CursorMovedI; own_tick keeps them from hiding the rest.
    st.own_tick = tick
    M.show(bufnr, {
      row = row,
      col = col,
      replace_end = col + (suggestion.replace_end - suggestion.col),
      text = suggestion.text:sub(#part + 1),
      tick = tick,
    })
  end
  return true
end

--- Whether a suggestion is shown at the cursor (keymaps fall through to the key when not).
function M.visible(bufnr)
  if M.uses_native() then
    return true -- vim.lsp.inline_completion.get() reports itself whether it accepted anything
  end
  return M.current(bufnr) ~= nil
end

function M.set_enabled(enabled)
  config.options.enabled = enabled
  if M.uses_native() then
    vim.lsp.inline_completion.enable(enabled)
  elseif not enabled then
    for bufnr in pairs(buffers) do
      if vim.api.nvim_buf_is_valid(bufnr) then
        M.dismiss(bufnr)
      end
    end
  end
end

local function on_text_changed(args)
  local st = state(args.buf)
  if st.own_tick ~= nil and st.own_tick == vim.api.nvim_buf_get_changedtick(args.buf) then
    return
  end
  st.own_tick = nil
  if client.get(args.buf) ~= nil then
    M.schedule(args.buf)
  end
end

local function on_cursor_moved(args)
  local st = state(args.buf)
  if st.suggestion ~= nil and M.current(args.buf) == nil then
    on_text_changed(args)
  end
end

function M.setup()
  if M.setup_done then
    return
  end
  M.setup_done = true
  local group = vim.api.nvim_create_augroup("infill.suggest", { clear = true })
  if M.uses_native() then
    vim.api.nvim_create_autocmd("LspAttach", {
      group = group,
      callback = function(args)
        local attached = vim.lsp.get_client_by_id(args.data.client_id)
        if attached ~= nil and attached.name == client.NAME and config.options.enabled then
          vim.lsp.inline_completion.enable(true, { bufnr = args.buf })
        end
      end,
    })
    return
  end
  vim.api.nvim_create_autocmd({ "TextChangedI", "TextChangedP" }, { group = group, callback = on_text_changed })
  vim.api.nvim_create_autocmd("CursorMovedI", { group = group, callback = on_cursor_moved })
  vim.api.nvim_create_autocmd({ "InsertLeave", "BufLeave" }, {
    group = group,
    callback = function(args)
      M.dismiss(args.buf)
    end,
  })
  vim.api.nvim_create_autocmd("BufWipeout", {
    group = group,
    callback = function(args)
      local st = buffers[args.buf]
      if st ~= nil and st.timer ~= nil then
        st.timer:stop()
        st.timer:close()
      end
      buffers[args.buf] = nil
    end,
  })
end

M.TRIGGER_INVOKED = TRIGGER_INVOKED
M.TRIGGER_AUTOMATIC = TRIGGER_AUTOMATIC

return M
