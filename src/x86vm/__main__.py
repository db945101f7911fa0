from x86vm.cli import main

raise SystemExit(main())
