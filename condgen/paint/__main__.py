from condgen.cli.paint import main

raise SystemExit(main())
