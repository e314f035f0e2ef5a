from ser_diag.cli import main

raise SystemExit(main())
