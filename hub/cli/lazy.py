"""A click group whose subcommands are imported when used, so `hub --help` and a simple
command do not pay for importing every domain (the runtime pulls in all of them)."""

import importlib

import click

# name -> (module, attribute, summary). The summary is what `hub --help` lists; a test
# checks it is the command's own short help, so the two cannot drift apart.
LAZY_COMMANDS: dict[str, tuple[str, str, str]] = {
    "agencies": (
        "hub.cli.agencies",
        "agencies",
        "Register agencies, see their health, pause, resume and test them.",
    ),
    "audit": (
        "hub.cli.audit",
        "audit",
        "The audit log: a Merkle tree with signed checkpoints (ADR 0011).",
    ),
    "clients": (
        "hub.cli.identity",
        "clients",
        "OAuth clients of agency systems (client-credentials grant).",
    ),
    "console": (
        "hub.cli.console",
        "console",
        "Serve the compliance console; it calls the hub's REST API as the logged-in user.",
    ),
    "deliveries": (
        "hub.cli.agencies",
        "deliveries",
        "Inspect the delivery ledger and replay dead letters.",
    ),
    "holds": (
        "hub.cli.retention",
        "holds",
        "Legal holds: keep events whatever retention says, until two officers release them.",
    ),
    "keys": (
        "hub.cli.identity",
        "keys",
        "ES256 keys that sign access tokens (published at /.well-known/jwks.json).",
    ),
    "nodes": (
        "hub.cli.nodes",
        "nodes",
        "Register, list and revoke edge nodes (each signs its uploads with an Ed25519 key) "
        "and the cameras each owns.",
    ),
    "policy": (
        "hub.cli.policy",
        "policy_group",
        "Policy bundles: run their tests, build, sign and push them to the hub.",
    ),
    "privacy": (
        "hub.cli.retention",
        "privacy",
        "Crypto-shred personal data; rotate the PII master key.",
    ),
    "release": (
        "hub.cli.release",
        "release",
        "Sign and verify release folders (wheels, SBOM, SIGNATURES.json).",
    ),
    "retention": (
        "hub.cli.retention",
        "retention",
        "Delete what retention policy says has expired (legal holds always win).",
    ),
    "slo": ("hub.cli.ops", "slo", "Service level objectives (deploy/slo.yaml)."),
    "tokens": (
        "hub.cli.tokens",
        "tokens",
        "Create and list bearer tokens (stored only as hashes in HUB_API_TOKENS_FILE).",
    ),
    "upgrade": (
        "hub.cli.release",
        "upgrade",
        "Install the hub wheel of a signed release folder; refuse one that does not verify.",
    ),
    "users": (
        "hub.cli.identity",
        "users",
        "Console users (password grant; TOTP always for admins).",
    ),
}


class LazyGroup(click.Group):
    """Commands defined here plus those of LAZY_COMMANDS, imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name, sorted."""
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command, importing its module when it is a lazy one."""
        if cmd_name in LAZY_COMMANDS and cmd_name not in self.commands:
            module, attribute, _ = LAZY_COMMANDS[cmd_name]
            command = getattr(importlib.import_module(module), attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{module}.{attribute} is not a click command")
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from the summaries, without importing the lazy commands."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(n) for n in names)
        entries = []
        for name in names:
            if name in self.commands:
                entries.append((name, self.commands[name].get_short_help_str(limit)))
            else:
                entries.append((name, _shorten(LAZY_COMMANDS[name][2], limit)))
        with formatter.section("Commands"):
            formatter.write_dl(entries)


def _shorten(text: str, limit: int) -> str:
    """Cut a summary the way click cuts a short help (at a word, with an ellipsis)."""
    return click.Command(name="x", help=text).get_short_help_str(limit)
