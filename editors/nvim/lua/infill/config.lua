-- Options for the plugin: defaults merged with the user's `setup{}` table.
local M = {}

M.setup_done = false

-- Server settings (the LSP wire contract, camelCase). A key left nil is not sent, so the server's default
-- (or the model's own generation default for steps/threshold) applies.
local server_settings = {
  model = nil,
  device = "auto",
  maxTokens = 64,
  steps = nil,
  threshold = nil,
  debounceMs = 150,
  disabledLanguages = {},
  trustRemoteCode = false,
  threads = nil, -- CPU threads; nil: 1 for small models, one per physical core for large ones
  nextEdit = false, -- after a change, the server proposes an edit near it as an inline completion item
}

M.defaults = {
  -- Command line that starts the server over stdio.
  cmd = { "infill", "serve" },
  -- Extra environment for the server process, e.g. { INFILL_MODEL = "/models/infill-small" }.
  cmd_env = nil,
  -- Filetypes the server is started for (the languages the server has grammars for).
  filetypes = {
    "python",
    "javascript",
    "javascriptreact",
    "typescript",
    "typescriptreact",
    "go",
    "rust",
    "java",
    "c",
    "cpp",
  },
  -- Files that mark a project root; the file's directory is used when none is found.
  root_markers = { ".git", "pyproject.toml", "package.json", "go.mod", "Cargo.toml", "pom.xml" },
  settings = server_settings,
  -- Show inline completions (`:InfillToggle` flips it).
  enabled = true,
  -- "auto": use vim.lsp.inline_completion on Neovim 0.12+, else the plugin's own ghost text; false: always
  -- the plugin's own ghost text (which also has accept word / accept line).
  native = "auto",
  -- Client-side wait after the last keystroke before a completion is requested (own ghost text only).
  debounce_ms = 75,
  ghost_text = { hl_group = "Comment" },
  -- Highlight (InfillLowConfidence) the tokens an edit-mode rewrite (:InfillEdit, :InfillEditFunction)
  -- found unlikely.
  show_low_confidence = true,
  -- Insert-mode keys; set one to false to leave that key alone.
  keymaps = {
    accept = "<Tab>",
    accept_word = "<M-Right>",
    accept_line = "<M-Down>",
    dismiss = "<C-]>",
    -- A next-edit suggestion (settings.nextEdit) is accepted with `accept`, `accept_word`, `accept_line`
    -- too, in insert and normal mode; this key dismisses it.
    dismiss_next_edit = "<Esc>",
  },
  rewrite = {
    border = "rounded",
    -- Keys in the preview window. accept_keys leave out fills that did not pass the server's syntax check;
    -- force_accept_keys (like :InfillAccept!) apply them too.
    accept_keys = { "a", "<CR>" },
    force_accept_keys = { "A" },
    reject_keys = { "q", "<Esc>" },
  },
}

M.options = vim.deepcopy(M.defaults)

local function validate(options)
  vim.validate({
    cmd = { options.cmd, "table" },
    filetypes = { options.filetypes, "table" },
    root_markers = { options.root_markers, "table" },
    settings = { options.settings, "table" },
    enabled = { options.enabled, "boolean" },
    debounce_ms = { options.debounce_ms, "number" },
    keymaps = { options.keymaps, "table" },
  })
  if #options.cmd == 0 then
    error("infill: `cmd` must name the server executable, e.g. { 'infill', 'serve' }")
  end
end

local islist = vim.islist or vim.tbl_islist

-- A list the user gives replaces the default list; merging index by index (as tbl_deep_extend may) would keep
-- stale default entries, e.g. filetypes = { "python" } would still contain "javascriptreact".
local function replace_lists(options, opts)
  for key, value in pairs(opts) do
    if type(value) == "table" then
      -- `{}` counts as a list; it only replaces what is a list by default (keymaps = {} changes nothing).
      local default_is_list = type(options[key]) ~= "table" or islist(options[key])
      if islist(value) and (next(value) ~= nil or default_is_list) then
        options[key] = vim.deepcopy(value)
      elseif type(options[key]) == "table" then
        replace_lists(options[key], value)
      end
    end
  end
end

---@param opts table|nil user options
---@return table options
function M.setup(opts)
  local options = vim.tbl_deep_extend("force", vim.deepcopy(M.defaults), opts or {})
  replace_lists(options, opts or {})
  validate(options)
  M.options = options
  M.setup_done = true
  return options
end

return M
