from condgen.cli.main import main

raise SystemExit(main())
