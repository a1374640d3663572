"""The commands of the command line, one module each; ``netdyn.cli`` assembles the parser from them.

Each module here defines ``add_parser(subparsers)``, which adds its sub-command with ``handler`` set to the
function that runs it, and holds nothing beyond argv -> specs -> the library's API. A new command is a new module
plus one line in ``COMMAND_MODULES``; the CLI's tests (help, bad arguments) cover it without edits:
``tests/test_bad_input.py`` gives every option a wrong and an out-of-range value, and every folder option a missing
path, a file and a read-only place. Declare what a value is with the types of ``netdyn.commands._options``
(``Whole``, ``Number``, ``Text``, ``NumberList``, ``Count``, ``Amount``, ``Folder("read" | "write" | "run")``),
check a folder it writes with ``netdyn._io.check_writable_folder`` before starting the work, and raise
``netdyn.errors`` exceptions (``UsageError`` for a bad combination of arguments): the CLI turns them into one line
and the right exit status. A command module never imports ``netdyn.cli``.
"""

COMMAND_MODULES = (
    "netdyn.commands.train",
    "netdyn.commands.analyze",
    "netdyn.commands.datasets",
    "netdyn.commands.reproduce",
    "netdyn.commands.transitions",
    "netdyn.commands.sweep",
    "netdyn.commands.recommend",
    "netdyn.commands.prune",
    "netdyn.commands.compare",
)
