from condgen.paint.cli import main

raise SystemExit(main())
