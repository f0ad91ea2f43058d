-- Minimal init for the headless tests: this plugin on the runtimepath, nothing from the user's config.
local root = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":p:h:h")
vim.opt.runtimepath = { root, vim.env.VIMRUNTIME }
vim.opt.loadplugins = false
-- Headless tests never enter insert mode (the test runs inside one command); onemore lets the cursor sit after
-- the last character, where it is in insert mode while typing.
vim.opt.virtualedit = "onemore"
vim.opt.swapfile = false
vim.opt.shadafile = "NONE"
vim.g.infill_test_root = root
