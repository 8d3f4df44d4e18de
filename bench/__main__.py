"""Run every benchmark and print one table.  Usage: python -m bench"""

from __future__ import annotations

import platform

from . import archive, capture, console, dock, lawful, sealing


def main() -> None:
    print(f"bodycam bench on {platform.machine()} {platform.python_version()}, {__import__('os').cpu_count()} CPUs")
    rows = []
    for module in (sealing, capture, dock, archive, lawful, console):
        rows += module.run()
    width = max(len(r[0]) for r in rows)
    for name, figure, ratio in rows:
        print(f"{name:<{width}}  {figure}  {ratio}")


if __name__ == "__main__":
    main()
