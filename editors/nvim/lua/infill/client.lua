-- Starts `infill serve` through vim.lsp for the configured filetypes and tracks the server's `infill/status`.
local config = require("infill.config")

local M = {}

M.setup_done = false
M.NAME = "infill"

-- Last `infill/status` from the server: state is "stopped" until one arrives.
M.status = { state = "stopped", message = nil }

local has_011 = vim.fn.has("nvim-0.11") == 1

--- Sends a request with the method-call form of the running Neovim (0.11 made the client methods `:`-style).
---@return boolean ok, integer|nil request_id
function M.request(client, method, params, handler, bufnr)
  if has_011 then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

function M.cancel(client, request_id)
  if has_011 then
    client:cancel_request(request_id)
  else
    client.cancel_request(request_id)
  end
end

--- A buffer number, with nil and 0 meaning the current buffer.
function M.buf(bufnr)
  return (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
end

--- The infill client attached to a buffer, if any.
---@param bufnr integer|nil
function M.get(bufnr)
  bufnr = M.buf(bufnr)
  local clients = vim.lsp.get_clients({ bufnr = bufnr, name = M.NAME })
  return clients[1]
end

--- The version the server knows for a buffer (what `infill/rewrite` must send): vim.lsp sends 0 on didOpen
--- and the changedtick with each didChange.
function M.version(bufnr)
  return vim.lsp.util.buf_versions[bufnr]
end

local function on_status(_, params)
  if type(params) ~= "table" or type(params.state) ~= "string" then
    return
  end
  M.status = { state = params.state, message = params.message }
  if params.state == "error" then
    vim.notify("infill: " .. (params.message or "server error"), vim.log.levels.ERROR)
  end
  vim.api.nvim_exec_autocmds("User", { pattern = "InfillStatus", modeline = false, data = M.status })
end

local function root_dir(bufnr)
  local markers = config.options.root_markers
  if vim.fs.root then
    local root = vim.fs.root(bufnr, markers)
    if root then
      return root
    end
  end
  local name = vim.api.nvim_buf_get_name(bufnr)
  if name == "" then
    return vim.fn.getcwd()
  end
  local found = vim.fs.find(markers, { upward = true, path = vim.fs.dirname(name) })[1]
  return found and vim.fs.dirname(found) or vim.fs.dirname(name)
end

--- Starts (or reuses) the server for a buffer and attaches it.
---@return integer|nil client_id
function M.attach(bufnr)
  bufnr = M.buf(bufnr)
  local opts = config.options
  local cmd = opts.cmd
  if vim.fn.executable(cmd[1]) ~= 1 then
    vim.notify_once(
      ("infill: `%s` not found; install infill or set `cmd` in require('infill').setup{}"):format(cmd[1]),
      vim.log.levels.ERROR
    )
    return nil
  end
  if M.status.state == "stopped" then
    M.status = { state = "starting" }
  end
  return vim.lsp.start({
    name = M.NAME,
    cmd = cmd,
    cmd_env = opts.cmd_env,
    root_dir = root_dir(bufnr),
    init_options = opts.settings,
    settings = { infill = opts.settings },
    handlers = {
      ["infill/status"] = on_status,
      ["infill/nextEditReady"] = function(err, params)
        require("infill.next_edit").on_ready(err, params)
      end,
    },
    on_exit = function()
      M.status = { state = "stopped" }
    end,
  }, { bufnr = bufnr })
end

--- Pushes changed settings to the running servers.
function M.push_settings()
  for _, client in ipairs(vim.lsp.get_clients({ name = M.NAME })) do
    local params = { settings = { infill = config.options.settings } }
    if has_011 then
      client:notify("workspace/didChangeConfiguration", params)
    else
      client.notify("workspace/didChangeConfiguration", params)
    end
  end
end

function M.setup()
  if M.setup_done then
    return
  end
  M.setup_done = true
  local group = vim.api.nvim_create_augroup("infill.client", { clear = true })
  vim.api.nvim_create_autocmd("FileType", {
    group = group,
    pattern = config.options.filetypes,
    callback = function(args)
      M.attach(args.buf)
    end,
  })
  -- Buffers whose filetype was set before setup() ran.
  for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(bufnr) and vim.tbl_contains(config.options.filetypes, vim.bo[bufnr].filetype) then
      M.attach(bufnr)
    end
  end
end

return M
