"""Every `bodycam` command and option explains itself in --help: the lazy CLI
(bodycam/cli.py) is walked with every part it loads (read side, recorder, dock,
archive, demo, console)."""

from __future__ import annotations

import click
from click.testing import CliRunner

from bodycam.cli import OTHER_SOURCES, READ_SIDE, main


def walk(command: click.Command, path: tuple[str, ...], parent: click.Context | None = None):
    """(path, command, context) for this command and every subcommand under it."""
    ctx = click.Context(command, info_name=path[-1], parent=parent)
    yield path, command, ctx
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, f"{' '.join(path)} lists {name} but cannot load it"
            yield from walk(sub, (*path, name), ctx)


def every_command():
    found = list(walk(main, ("bodycam",)))
    # Nothing left out: every part the entry point loads is installed under test.
    assert main._unavailable == {}, main._unavailable
    assert main._loaded == {READ_SIDE, *OTHER_SOURCES}
    return found


def test_every_command_and_option_has_help():
    missing = []
    found = every_command()
    for path, command, _ in found:
        name = " ".join(path)
        if not (command.help or "").strip():
            missing.append(f"{name}: command has no help")
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden and not (param.help or "").strip():
                missing.append(f"{name} {'/'.join(param.opts)}: option has no help")
    assert len(found) > 40  # the walk reaches the nested groups (archive grant, pki, dock, ...)
    assert missing == []


def test_every_help_page_renders():
    """--help of each command runs without an error (a help text with a bad format string,
    a lazy import that fails) and lists each of its options."""
    for path, command, _ in every_command():
        result = CliRunner().invoke(main, [*path[1:], "--help"])
        assert result.exit_code == 0, (path, result.output)
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert param.opts[0] in result.output, (path, param.opts)


def test_command_lists_never_cut_a_summary_at_an_abbreviation():
    """Click ends a summary at the first word ending in a full stop, which cut
    "Find segments by any Art. 20 field" to "Find segments by any Art." in the
    list of commands; every list shows whole words past such abbreviations."""
    import re

    from bodycam.cli import short_help_of

    assert short_help_of("Find segments by any Art. 20 field and a time range.") == (
        "Find segments by any Art. 20 field and a time range")
    assert short_help_of("Seal written records (Art. 5-6) into a case. More.") == (
        "Seal written records (Art. 5-6) into a case")
    assert not short_help_of("Re-read every stored object: its SHA-256 and its lock (Art. 10).",
                             limit=55).endswith("(Art. …")
    groups = [path for path, command, _ in every_command() if isinstance(command, click.Group)]
    assert len(groups) >= 3
    for path in groups:
        output = CliRunner().invoke(main, [*path[1:], "--help"]).output
        listed = output.split("Commands:", 1)[1].splitlines() if "Commands:" in output else []
        for line in listed:
            assert not re.search(r"\b(Art|e\.g|i\.e)\.?\s*(…)?$", line.strip()), (path, line)
            assert not re.search(r"\(Art\.? …$", line.strip()), (path, line)
