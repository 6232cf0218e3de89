from degrade.cli import main

raise SystemExit(main())
