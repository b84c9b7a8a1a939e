from chartproof.cli import main

raise SystemExit(main())
