"""Commands of the command line beyond ``train``, ``analyze`` and ``datasets`` (which live in ``netdyn.cli``).

Each module here defines ``add_parser(subparsers)``, which adds its sub-command with ``handler`` set to the
function that runs it. A new command is a new module plus one line in ``COMMAND_MODULES``; the CLI's tests
(help, bad arguments) cover it without edits.
"""

COMMAND_MODULES = (
    "netdyn.commands.reproduce",
)
