from __future__ import annotations

from lakehouse_silverizer.cli import main

raise SystemExit(main())
