"""Entry point of the single-file executable built by gosight.spec."""

from gosight.cli import main

raise SystemExit(main())
