-- A tiny test runner for headless Neovim: `test(name, fn)` registers, `run()` runs them in order, prints one
-- line per test and a closing "N passed, N failed" line, and exits non-zero when anything failed.
local M = {}

local tests = {}

function M.test(name, fn)
  table.insert(tests, { name = name, fn = fn })
end

local function out(line)
  io.stdout:write(line .. "\n")
  io.stdout:flush()
end

--- An informational line under the running test.
function M.note(line)
  out("     " .. line)
end

function M.eq(expected, actual, what)
  if not vim.deep_equal(expected, actual) then
    error(
      ("%sexpected %s, got %s"):format(what and (what .. ": ") or "", vim.inspect(expected), vim.inspect(actual)),
      2
    )
  end
end

function M.truthy(value, what)
  if not value then
    error((what or "expected a true value") .. " (got " .. vim.inspect(value) .. ")", 2)
  end
  return value
end

--- A new buffer in the current window holding `lines`, with the cursor at (row, col) (0-based, byte column).
function M.buffer(lines, row, col)
  local bufnr = vim.api.nvim_create_buf(true, false)
  vim.api.nvim_set_current_buf(bufnr)
  vim.api.nvim_buf_set_lines(bufnr, 0, -1, false, lines)
  vim.api.nvim_win_set_cursor(0, { row + 1, col })
  return bufnr
end

--- Runs the event loop until check() returns a value (LSP replies and timers are processed meanwhile).
function M.wait_for(what, check, timeout_ms)
  local result
  local ok = vim.wait(timeout_ms or 20000, function()
    result = check()
    return result ~= nil and result ~= false
  end, 20)
  if not ok then
    error("timed out waiting for " .. what, 2)
  end
  return result
end

function M.run(suite)
  local passed, failed = 0, 0
  for _, t in ipairs(tests) do
    local started = vim.uv.hrtime()
    local ok, err = xpcall(t.fn, debug.traceback)
    local ms = math.floor((vim.uv.hrtime() - started) / 1e6)
    if ok then
      passed = passed + 1
      out(("ok   %s (%d ms)"):format(t.name, ms))
    else
      failed = failed + 1
      out(("FAIL %s (%d ms)\n%s"):format(t.name, ms, err))
    end
  end
  out(("%s: %d passed, %d failed"):format(suite, passed, failed))
  vim.cmd(failed == 0 and "qall!" or "cquit! 1")
end

return M
