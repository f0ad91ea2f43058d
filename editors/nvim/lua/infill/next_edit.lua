-- Next-edit suggestions (server setting `nextEdit`): when the server announces one with `infill/nextEditReady`
-- for the buffer's current version, the plugin asks for inline completions at the cursor and shows the item
-- that replaces text (one ghost text cannot show) as a diff-style preview: the old text struck through
-- (InfillNextEditDelete), the new text as virtual text after it (InfillNextEditAdd). Tab accepts it, Esc
-- dismisses it, accept word / accept line take part of it and keep previewing the rest. Any change of the
-- buffer drops it (its positions belong to the version it was made for).
local client = require("infill.client")
local config = require("infill.config")

local M = {}

M.setup_done = false
M.ns = vim.api.nvim_create_namespace("infill.next_edit")

local TRIGGER_INVOKED = 1

-- Per buffer: { tick, start_row, start_col, end_row, end_col, text } (0-based rows, byte columns); the old text
-- is the buffer's between start and end, `text` replaces it.
local shown = {}

local function byte_col(line, character, encoding)
  return require("infill.suggest").byte_col(line, character, encoding)
end

--- Byte offset into `lines` (joined with "\n") of (row, byte col), and back.
local function offset_of(lines, row, col)
  local offset = 0
  for i = 1, row do
    offset = offset + #lines[i] + 1
  end
  return offset + col
end

local function position_of(lines, offset)
  local row = 0
  while row < #lines - 1 and offset > #lines[row + 1] do
    offset = offset - #lines[row + 1] - 1
    row = row + 1
  end
  return row, offset
end

--- The smallest replacement that turns the text between two offsets into `new`: the common prefix and
--- suffix are left out, so only what changes is struck. Returns start, end offsets and the new text.
function M.minimal_replacement(text, start, finish, new)
  local old = text:sub(start + 1, finish)
  local head = 0
  while head < #old and head < #new and old:byte(head + 1) == new:byte(head + 1) do
    head = head + 1
  end
  local tail = 0
  while tail < #old - head and tail < #new - head and old:byte(#old - tail) == new:byte(#new - tail) do
    tail = tail + 1
  end
  return start + head, finish - tail, new:sub(head + 1, #new - tail)
end

--- The next-edit suggestion among inline completion items for a cursor at (row, col): the last item that is
--- not ghost text (it replaces text, or inserts away from the cursor), as a replacement; nil when none.
function M.suggestion_from_items(bufnr, items, row, col, encoding)
  local lines = vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)
  local text = table.concat(lines, "\n")
  local cursor = offset_of(lines, row, col)
  local found
  for _, item in ipairs(items) do
    local insert = type(item.insertText) == "table" and item.insertText.value or item.insertText
    local range = item.range
    if type(insert) == "string" and range ~= nil and lines[range.start.line + 1] and lines[range["end"].line + 1] then
      local s_row, e_row = range.start.line, range["end"].line
      local s = offset_of(lines, s_row, byte_col(lines[s_row + 1], range.start.character, encoding))
      local e = offset_of(lines, e_row, byte_col(lines[e_row + 1], range["end"].character, encoding))
      local start, finish, new = M.minimal_replacement(text, s, e, insert)
      local ghost = start == finish and start == cursor
      if not ghost and (start ~= finish or new ~= "") then
        local sr, sc = position_of(lines, start)
        local er, ec = position_of(lines, finish)
        found = { start_row = sr, start_col = sc, end_row = er, end_col = ec, text = new }
      end
    end
  end
  return found
end

local function render(bufnr, suggestion)
  vim.api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  if suggestion.start_row ~= suggestion.end_row or suggestion.start_col ~= suggestion.end_col then
    vim.api.nvim_buf_set_extmark(bufnr, M.ns, suggestion.start_row, suggestion.start_col, {
      end_row = suggestion.end_row,
      end_col = suggestion.end_col,
      hl_group = "InfillNextEditDelete",
    })
  end
  local opts = require("infill.suggest").virtual_text(suggestion.text, "InfillNextEditAdd")
  vim.api.nvim_buf_set_extmark(bufnr, M.ns, suggestion.end_row, suggestion.end_col, opts)
end

--- Shows a suggestion (replacing any other in the buffer); the plugin's own ghost text gives way to it.
function M.show(bufnr, suggestion)
  suggestion.tick = suggestion.tick or vim.api.nvim_buf_get_changedtick(bufnr)
  shown[bufnr] = suggestion
  require("infill.suggest").clear(bufnr)
  render(bufnr, suggestion)
end

function M.dismiss(bufnr)
  bufnr = client.buf(bufnr)
  shown[bufnr] = nil
  if vim.api.nvim_buf_is_valid(bufnr) then
    vim.api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  end
end

--- The suggestion shown in a buffer, if the buffer is still the text it was made for.
function M.current(bufnr)
  bufnr = client.buf(bufnr)
  local suggestion = shown[bufnr]
  if suggestion == nil or vim.api.nvim_buf_get_changedtick(bufnr) ~= suggestion.tick then
    return nil
  end
  return suggestion
end

function M.visible(bufnr)
  return M.current(bufnr) ~= nil
end

--- Applies the suggestion, or the first word or line of its new text (all of the old text goes); what is
--- left of the new text stays previewed as an insertion.
---@param what "all"|"word"|"line"
---@return boolean accepted
function M.accept(bufnr, what)
  bufnr = client.buf(bufnr)
  local suggestion = M.current(bufnr)
  if suggestion == nil then
    return false
  end
  local suggest = require("infill.suggest")
  local part = suggest.accepted_part(suggestion.text, what)
  M.dismiss(bufnr)
  local s = suggestion
  local row, col = suggest.put_text(bufnr, s.start_row, s.start_col, s.end_row, s.end_col, part)
  local rest = suggestion.text:sub(#part + 1)
  if rest ~= "" then
    M.show(bufnr, { start_row = row, start_col = col, end_row = row, end_col = col, text = rest })
  end
  return true
end

--- Asks for inline completions at the cursor and previews the next-edit suggestion among them.
function M.request(bufnr)
  local lsp_client = client.get(bufnr)
  local win = vim.api.nvim_get_current_win()
  if lsp_client == nil or vim.api.nvim_win_get_buf(win) ~= bufnr or not config.options.enabled then
    return
  end
  local encoding = lsp_client.offset_encoding or "utf-16"
  local params = vim.lsp.util.make_position_params(win, encoding)
  params.context = { triggerKind = TRIGGER_INVOKED }
  local tick = vim.api.nvim_buf_get_changedtick(bufnr)
  local cursor = vim.api.nvim_win_get_cursor(win)
  client.request(lsp_client, "textDocument/inlineCompletion", params, function(err, result)
    if err ~= nil or result == nil or not vim.api.nvim_buf_is_valid(bufnr) then
      return
    end
    if vim.api.nvim_buf_get_changedtick(bufnr) ~= tick then
      return -- typed on meanwhile: the suggestion was for text that is gone
    end
    local suggestion = M.suggestion_from_items(bufnr, result.items or result, cursor[1] - 1, cursor[2], encoding)
    if suggestion ~= nil then
      suggestion.tick = tick
      M.show(bufnr, suggestion)
    end
  end, bufnr)
end

--- `infill/nextEditReady` {uri, version}: ask for the suggestion if the buffer is still at that version.
function M.on_ready(_, params)
  if type(params) ~= "table" or type(params.uri) ~= "string" then
    return
  end
  local bufnr = vim.uri_to_bufnr(params.uri)
  if vim.api.nvim_buf_is_loaded(bufnr) and client.version(bufnr) == params.version then
    M.request(bufnr)
  end
end

function M.setup()
  if M.setup_done then
    return
  end
  M.setup_done = true
  vim.api.nvim_set_hl(0, "InfillNextEditDelete", { default = true, strikethrough = true, fg = "Red", ctermfg = "Red" })
  vim.api.nvim_set_hl(0, "InfillNextEditAdd", { default = true, link = "DiffAdd" })
  local group = vim.api.nvim_create_augroup("infill.next_edit", { clear = true })
  vim.api.nvim_create_autocmd({ "TextChanged", "TextChangedI", "TextChangedP" }, {
    group = group,
    callback = function(args)
      if shown[args.buf] ~= nil and M.current(args.buf) == nil then
        M.dismiss(args.buf)
      end
    end,
  })
  vim.api.nvim_create_autocmd("BufWipeout", {
    group = group,
    callback = function(args)
      shown[args.buf] = nil
    end,
  })
end

return M
