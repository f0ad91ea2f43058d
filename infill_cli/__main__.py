"""`python -m infill_cli`: the same as the `infill` command."""

from infill_cli.main import main

raise SystemExit(main())
