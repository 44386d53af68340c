from videoformers.cli import main

raise SystemExit(main())
