from mer.cli import main

raise SystemExit(main())
