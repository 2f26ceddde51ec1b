from gosight.cli import main

raise SystemExit(main())
